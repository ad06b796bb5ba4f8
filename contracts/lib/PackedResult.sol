// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title PackedResult
 * @notice A posted result's weights, 8 uint32 per word as posted, and its offender flags, in slots that are
 * pre-filled once so that every later post rewrites nonzero slots (5,000 gas) instead of creating fresh
 * ones (22,100).
 * @dev Words are stored inverted (`~word`) so that eight zero weights never empty a slot. `flags` is
 * meaningful only when the caller says so (flags that fit 32 bits are kept in the round header).
 */
library PackedResult {
    struct Slots {
        uint256[32] weights;
        uint256 flags;
    }

    /// @dev Writes nonzero placeholders for the words `maxTrainers` weights use, and for the flags.
    function prefill(Slots storage s, uint256 maxTrainers) internal {
        uint256 words = (maxTrainers + 7) >> 3;
        for (uint256 w; w < words; ++w) {
            s.weights[w] = 1;
        }
        s.flags = 1;
    }

    /// @dev Stores the packed weight words (8 uint32 per word, weight i in bits [32 (i % 8), 32 (i % 8) + 32)
    /// of word i / 8) and returns the sum of the weights whose bit is clear in `excluded`.
    function store(Slots storage s, uint256[] calldata words, uint256 excluded) internal returns (uint256 sum) {
        uint256 m = words.length;
        for (uint256 k; k < m; ++k) {
            uint256 word = words[k];
            s.weights[k] = ~word;
            unchecked {
                // at most 256 weights below 2^32: the sum stays below 2^40
                uint256 skip = excluded >> (k << 3);
                for (uint256 j; j < 8; ++j) {
                    if ((skip >> j) & 1 == 0) sum += (word >> (j << 5)) & 0xffffffff;
                }
            }
        }
    }

    /// @dev The i-th weight of a post (meaningless past its length).
    function at(Slots storage s, uint256 i) internal view returns (uint256) {
        return (~s.weights[i >> 3] >> ((i & 7) << 5)) & 0xffffffff;
    }

    /// @dev The first `n` weights.
    function read(Slots storage s, uint256 n) internal view returns (uint32[] memory weights) {
        weights = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast) -- `at` returns 32 bits
            weights[i] = uint32(at(s, i));
        }
    }
}
