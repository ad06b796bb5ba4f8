// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title SubmitterList
 * @notice A round's submitters in submission order, their addresses packed back to back (160 bits each,
 * 8 per 5 words): settling a round reads 5 cold slots per 8 trainers instead of 8.
 * @dev Submitter i occupies bits [160 i, 160 i + 160) of the word sequence; an address may straddle two
 * words. A list is reused (a ring entry): `push` overwrites its field, and words are pre-filled with a
 * nonzero placeholder before first use, so a submission rewrites a nonzero slot (5,000 gas) instead of
 * creating one (22,100). The length is kept by the caller.
 */
library SubmitterList {
    struct List {
        mapping(uint256 word => uint256) words;
    }

    uint256 private constant ADDRESS_MASK = type(uint160).max;

    /// @dev Writes `who` as submitter `i`, over whatever an earlier use of the list left there.
    function push(List storage list, uint256 i, address who) internal {
        unchecked {
            // i < 256: no overflow; off > 96 makes 256 - off positive
            uint256 v = uint160(who);
            uint256 bit = i * 160;
            uint256 w = bit >> 8;
            uint256 off = bit & 255;
            list.words[w] = (list.words[w] & ~(ADDRESS_MASK << off)) | (v << off);
            if (off > 96) {
                uint256 high = 256 - off; // bits of the address that spill into the next word
                list.words[w + 1] = (list.words[w + 1] & ~(ADDRESS_MASK >> high)) | (v >> high);
            }
        }
    }

    /// @dev Makes sure the words that `n` submitters use hold a nonzero value; `ready` words already do.
    /// Returns the new number of ready words.
    function prefill(List storage list, uint256 ready, uint256 n) internal returns (uint256 words) {
        words = (n * 160 + 255) >> 8;
        for (uint256 w = ready; w < words; ++w) {
            list.words[w] = 1;
        }
        if (words < ready) words = ready;
    }

    /// @dev Submitter `i` (address(0) past the end); `i` must be at most 256.
    function at(List storage list, uint256 i) internal view returns (address) {
        unchecked {
            // i <= 256: no overflow; off > 96 makes 256 - off positive
            uint256 bit = i * 160;
            uint256 w = bit >> 8;
            uint256 off = bit & 255;
            uint256 v = list.words[w] >> off;
            if (off > 96) v |= list.words[w + 1] << (256 - off);
            // forge-lint: disable-next-line(unsafe-typecast) -- the low 160 bits are the address
            return address(uint160(v));
        }
    }
}
