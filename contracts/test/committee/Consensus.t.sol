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

    function settleAmong(uint256[][] memory weights, uint256[] memory flags, uint256 n, uint256 seats)
        external
        pure
        returns (uint256[] memory, uint256)
    {
        return Consensus.settleAmong(weights, flags, n, seats);
    }

    function settlePacked(uint256[][] memory words, uint256[] memory flags, uint256 n, uint256 seats)
        external
        pure
        returns (uint256[] memory, uint256)
    {
        return Consensus.settlePacked(words, flags, n, seats);
    }

    function distancePacked(
        uint256[] memory posted,
        uint256 postedFlags,
        uint256[] memory median,
        uint256 majority,
        uint256 n
    ) external pure returns (uint256, uint256) {
        return Consensus.distancePacked(posted, postedFlags, median, majority, n, 1e9);
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

    /// @dev k posts over n trainers from `seed`, 32-bit weights (a lane each): each member either copies
    /// member 0's weight for a trainer or posts its own, so that whole packed words agree, partly agree,
    /// or differ.
    function _posts(uint256 seed, uint256 k, uint256 n)
        internal
        pure
        returns (uint256[][] memory w, uint256[] memory f)
    {
        w = new uint256[][](k);
        f = new uint256[](k);
        for (uint256 m; m < k; ++m) {
            w[m] = new uint256[](n);
            uint256 r = uint256(keccak256(abi.encode(seed, m)));
            f[m] = r % 4 == 0 ? 0 : uint256(keccak256(abi.encode(r, "flags"))); // bits past n too
            for (uint256 i; i < n; ++i) {
                uint256 x = uint256(keccak256(abi.encode(seed, m, i)));
                w[m][i] = m != 0 && x % 3 != 0 ? w[0][i] : x % 2 ** 32;
            }
        }
    }

    function _pack(uint256[] memory values) internal pure returns (uint256[] memory words) {
        words = new uint256[]((values.length + 7) / 8);
        for (uint256 i; i < values.length; ++i) {
            words[i / 8] |= values[i] << (32 * (i % 8));
        }
    }

    /// @dev The weights the committee judges a member by: those on trainers it flags count as 0.
    function _judged(uint256[] memory w, uint256 flags) internal pure returns (uint256[] memory out) {
        out = new uint256[](w.length);
        for (uint256 i; i < w.length; ++i) {
            out[i] = (flags >> i) & 1 == 1 ? 0 : w[i];
        }
    }

    /// Property: the packed settlement the committee runs gives, to the unit, what the rule over arrays
    /// (one trainer and one member at a time) gives: median, majority flags, and each member's distance.
    function testFuzz_packedSettlementIsTheRule(uint256 seed, uint8 seatsPick, uint8 absent) public view {
        uint256 seats = 2 * bound(seatsPick, 0, 3) + 1; // 1, 3, 5, 7
        uint256 k = seats - bound(absent, 0, seats - 1);
        uint256 n = 1 + seed % 70;
        (uint256[][] memory w, uint256[] memory f) = _posts(seed, k, n);
        uint256[][] memory words = new uint256[][](k);
        for (uint256 m; m < k; ++m) {
            words[m] = _pack(w[m]);
        }
        (uint256[] memory packed, uint256 majority) = h.settlePacked(words, f, n, seats);
        (uint256[] memory median, uint256 expectedMajority) = h.settleAmong(w, f, n, seats);
        assertEq(majority, expectedMajority, "majority flags");
        uint256[] memory expected = _pack(median);
        for (uint256 j; j < expected.length; ++j) {
            assertEq(packed[j], expected[j], "median weights");
        }
        for (uint256 m; m < k; ++m) {
            _assertSameDistance(words[m], w[m], f[m], packed, median, majority);
        }
    }

    function _assertSameDistance(
        uint256[] memory words,
        uint256[] memory weights,
        uint256 flags,
        uint256[] memory packed,
        uint256[] memory median,
        uint256 majority
    ) internal view {
        (uint256 l1, uint256 off) = h.distancePacked(words, flags, packed, majority, weights.length);
        (uint256 l1Expected, uint256 offExpected) = h.distance(_judged(weights, flags), flags, median, majority);
        assertEq(l1, l1Expected, "share distance");
        assertEq(off, offExpected, "flag disagreements");
    }

    /// A flag stands at a strict majority of the seats, for every committee size: 1 of 1, 2 of 3, 3 of 5,
    /// 4 of 7, in the packed settlement as in the rule.
    function test_flagMajorityThresholdPerCommitteeSize() public view {
        for (uint256 seats = 1; seats <= 7; seats += 2) {
            uint256[] memory f = new uint256[](seats);
            uint256[][] memory w = new uint256[][](seats);
            uint256[][] memory words = new uint256[][](seats);
            // member m flags trainers m..6: trainer i is flagged by min(i + 1, seats) members
            for (uint256 m; m < seats; ++m) {
                w[m] = new uint256[](7);
                words[m] = new uint256[](1);
                f[m] = 0x7f & ~((uint256(1) << m) - 1);
            }
            uint256 expected;
            for (uint256 i; i < 7; ++i) {
                uint256 votes = i + 1 < seats ? i + 1 : seats;
                if (votes * 2 > seats) expected |= uint256(1) << i;
            }
            (, uint256 majority) = h.settleAmong(w, f, 7, seats);
            assertEq(majority, expected, "the rule: a strict majority of the seats");
            (, majority) = h.settlePacked(words, f, 7, seats);
            assertEq(majority, expected, "packed: a strict majority of the seats");
        }
    }

    /// Equal posts are at distance 0 from their own consensus, whatever weight they put on flagged trainers.
    function test_equalPostsAreAtDistanceZero() public view {
        uint256[][] memory words = new uint256[][](3);
        words[0] = _pack(_vec(3e8, 7e8, 5));
        words[1] = _pack(_vec(3e8, 7e8, 0));
        words[2] = _pack(_vec(3e8, 7e8, 9));
        (uint256[] memory median, uint256 majority) = h.settlePacked(words, _flags(4, 4, 4), 3, 3);
        assertEq(median[0] >> 64, 0, "the flagged trainer gets 0");
        for (uint256 m; m < 3; ++m) {
            (uint256 l1, uint256 off) = h.distancePacked(words[m], 4, median, majority, 3);
            assertEq(l1 + off, 0, "the weight on a flagged trainer is not judged");
        }
    }

    /// The packed settlement refuses what the rule refuses: an even or oversized committee, more posts
    /// than seats.
    function test_packedSettlementChecksTheCommittee() public {
        uint256[][] memory two = new uint256[][](2);
        two[0] = new uint256[](1);
        two[1] = new uint256[](1);
        vm.expectRevert(abi.encodeWithSelector(Consensus.CommitteeSize.selector, 2));
        h.settlePacked(two, new uint256[](2), 3, 2);
        vm.expectRevert(abi.encodeWithSelector(Consensus.CommitteeSize.selector, 2));
        h.settlePacked(two, new uint256[](2), 3, 1);
        vm.expectRevert(abi.encodeWithSelector(Consensus.CommitteeSize.selector, 2));
        h.settlePacked(two, new uint256[](1), 3, 3);
    }
}
