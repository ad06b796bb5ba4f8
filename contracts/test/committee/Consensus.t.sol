// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase} from "../Base.t.sol";
import {Consensus} from "../../committee/Consensus.sol";

/// @dev Exposes the library's internal functions to the tests.
contract ConsensusHarness {
    function settle(uint256[][] memory weights, uint256[] memory flags, uint256 n)
        external
        pure
        returns (uint256[] memory, uint256)
    {
        return Consensus.settle(weights, flags, n);
    }

    function distance(uint256[] memory posted, uint256 postedFlags, uint256[] memory median, uint256 majority)
        external
        pure
        returns (uint256, uint256)
    {
        return Consensus.distance(posted, postedFlags, median, majority, 1e9);
    }
}

contract ConsensusTest is TestBase {
    ConsensusHarness internal h = new ConsensusHarness();

    function _vec(uint256 a, uint256 b, uint256 c) internal pure returns (uint256[] memory v) {
        v = new uint256[](3);
        (v[0], v[1], v[2]) = (a, b, c);
    }

    function _three(uint256[] memory a, uint256[] memory b, uint256[] memory c)
        internal
        pure
        returns (uint256[][] memory w)
    {
        w = new uint256[][](3);
        (w[0], w[1], w[2]) = (a, b, c);
    }

    function _flags(uint256 a, uint256 b, uint256 c) internal pure returns (uint256[] memory f) {
        f = new uint256[](3);
        (f[0], f[1], f[2]) = (a, b, c);
    }

    function test_oneLiarCannotMoveTheMedianOrTheFlags() public view {
        // two honest members agree; the liar flags both honest trainers and gives everything to trainer 2
        uint256[][] memory w = _three(_vec(5e8, 5e8, 0), _vec(0, 0, 1e9), _vec(5e8 + 1, 5e8 - 1, 0));
        (uint256[] memory median, uint256 majority) = h.settle(w, _flags(4, 3, 4), 3);
        assertEq(majority, 4, "only the trainer both honest members flag stays flagged");
        assertEq(median[0], 5e8, "median of trainer 0");
        assertEq(median[1], 5e8 - 1, "median of trainer 1");
        assertEq(median[2], 0, "a majority-flagged trainer earns nothing");
    }

    function test_theLiarIsFarFromTheConsensusAndTheHonestAreNot() public view {
        uint256[][] memory w = _three(_vec(5e8, 5e8, 0), _vec(0, 0, 1e9), _vec(5e8 + 1, 5e8 - 1, 0));
        (uint256[] memory median, uint256 majority) = h.settle(w, _flags(4, 3, 4), 3);
        (uint256 liarL1, uint256 liarFlags) = h.distance(w[1], 3, median, majority);
        (uint256 honestL1, uint256 honestFlags) = h.distance(w[2], 4, median, majority);
        assertEq(liarFlags, 3, "the liar disagrees on every flag");
        assertGe(liarL1, 2e9 - 2, "the liar's shares are disjoint from the consensus (up to rounding)");
        assertEq(honestFlags, 0, "the honest member agrees on every flag");
        assertLe(honestL1, 4, "the honest member differs by rounding only");
    }

    function test_badCommitteesAndShortPostsAreNamed() public {
        uint256[][] memory two = new uint256[][](2);
        two[0] = _vec(1, 1, 1);
        two[1] = _vec(1, 1, 1);
        uint256[] memory f2 = new uint256[](2);
        vm.expectRevert(abi.encodeWithSelector(Consensus.CommitteeSize.selector, 2));
        h.settle(two, f2, 3);
        uint256[][] memory w = _three(_vec(1, 1, 1), new uint256[](2), _vec(1, 1, 1));
        vm.expectRevert(abi.encodeWithSelector(Consensus.WeightCount.selector, 1, 2, 3));
        h.settle(w, _flags(0, 0, 0), 3);
    }

    /// @dev Property: with a majority of members posting the same vector, the consensus is that vector,
    /// whatever the minority posts.
    function testFuzz_anHonestMajorityDecides(uint256 seed, uint8 members) public view {
        uint256 k = 2 * bound(members, 0, 3) + 1; // 1, 3, 5, 7
        uint256 n = 1 + seed % 40;
        uint256[] memory honest = new uint256[](n);
        uint256 honestFlags = uint256(keccak256(abi.encode(seed, "flags"))) & ((uint256(1) << n) - 1);
        for (uint256 i; i < n; ++i) {
            honest[i] = (honestFlags >> i) & 1 == 1 ? 0 : uint256(keccak256(abi.encode(seed, i))) % 1e9;
        }
        uint256[][] memory w = new uint256[][](k);
        uint256[] memory f = new uint256[](k);
        for (uint256 m; m < k; ++m) {
            if (m < k / 2) {
                // the minority posts anything at all
                w[m] = new uint256[](n);
                for (uint256 i; i < n; ++i) {
                    w[m][i] = uint256(keccak256(abi.encode(seed, m, i))) % 2e9;
                }
                f[m] = uint256(keccak256(abi.encode(seed, m)));
            } else {
                (w[m], f[m]) = (honest, honestFlags);
            }
        }
        (uint256[] memory median, uint256 majority) = h.settle(w, f, n);
        assertEq(majority, honestFlags, "flags");
        for (uint256 i; i < n; ++i) {
            assertEq(median[i], honest[i], "weight");
        }
    }
}
