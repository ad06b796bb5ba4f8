// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/**
 * @title CidPair
 * @notice Two CIDs (a round's global model and its report) packed into one run of words: the byte
 * lengths (uint32 each) at the top of word 0, then both strings back to back. Two 59-character CIDv1
 * strings take four slots instead of six as two `string`s.
 */
library CidPair {
    using SafeCast for uint256;

    struct Pair {
        mapping(uint256 word => uint256) words;
    }

    /// @dev Stores `a` and `b`, zeroing the unused tail of the last word.
    function store(Pair storage pair, string memory a, string memory b) internal {
        bytes memory blob = abi.encodePacked(bytes(a).length.toUint32(), bytes(b).length.toUint32(), a, b);
        uint256 len = blob.length;
        for (uint256 k; k << 5 < len; ++k) {
            uint256 word;
            assembly ("memory-safe") {
                word := mload(add(add(blob, 32), shl(5, k)))
            }
            uint256 rest = len - (k << 5);
            if (rest < 32) word &= ~(type(uint256).max >> (rest << 3));
            pair.words[k] = word;
        }
    }

    /// @dev Both CIDs as stored.
    function load(Pair storage pair) internal view returns (string memory a, string memory b) {
        uint256 head = pair.words[0];
        uint256 aLen = head >> 224;
        uint256 bLen = (head >> 192) & 0xffffffff;
        uint256 len = 8 + aLen + bLen;
        bytes memory blob = new bytes(((len + 31) >> 5) << 5);
        for (uint256 k; k << 5 < len; ++k) {
            uint256 word = pair.words[k];
            assembly ("memory-safe") {
                mstore(add(add(blob, 32), shl(5, k)), word)
            }
        }
        a = string(_slice(blob, 8, aLen));
        b = string(_slice(blob, 8 + aLen, bLen));
    }

    function _slice(bytes memory data, uint256 from, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i; i < len; ++i) {
            out[i] = data[from + i];
        }
    }
}
