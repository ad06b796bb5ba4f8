// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketFixture} from "../Base.t.sol";
import {Committee} from "../../committee/Committee.sol";
import {MarketplaceStorage} from "../../MarketplaceStorage.sol";

/// @dev A market whose projects are scored by committees of k drawn members, and the steps of a
/// committee round: every member commits, reveals, and anyone settles.
abstract contract CommitteeFixture is MarketFixture {
    uint128 internal constant MEMBER_STAKE = 1 ether;
    uint128 internal constant FEE = 0.03 ether;
    string internal constant LIE_MODEL_CID = "bafkreiliemodelliemodelliemodelliemodelliemodelliemodel";

    /// @dev Registers members until the registry holds `k` (the fixture's `scorer` is the first).
    function fillRegistry(uint256 k) internal {
        uint256 have = committee.registry().members().length;
        for (uint256 i = have; i < k; ++i) {
            registerMember(committee, vm.addr(0x5C0 + i), MEMBER_STAKE);
        }
    }

    /// @dev A running default project with a committee of `k` (every registered member, so all are
    /// drawn) and `n` trainers; the owner escrows FEE per round.
    function committeeProject(uint256 k, uint256 n) internal returns (uint256 id) {
        return committeeProject(k, n, FEE);
    }

    function committeeProject(uint256 k, uint256 n, uint128 fee) internal returns (uint256 id) {
        fillRegistry(k);
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = uint16(n < 8 ? 8 : n);
        id = create(cfg);
        vm.prank(owner);
        committee.configure{value: uint256(fee) * cfg.rounds}(id, uint8(k), MEMBER_STAKE, fee);
        bond(id);
        joinMany(id, n);
        market.start(id);
    }

    function membersOf(uint256 id) internal view returns (address[] memory) {
        return committee.membersOf(id);
    }

    function scores(uint32[] memory weights, uint256 flags, string memory model)
        internal
        pure
        returns (Committee.Scores memory s)
    {
        s.weights = pack(weights);
        s.flags = flags;
        s.modelCid = model;
        s.reportCid = REPORT_CID;
    }

    function memberSalt(address member, uint32 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("member salt", member, round));
    }

    function commitAsMember(uint256 id, uint32 round, address member, Committee.Scores memory s) internal {
        bytes32 c = committee.scoresCommitment(
            member, id, round, s.weights, s.flags, s.modelCid, s.reportCid, memberSalt(member, round)
        );
        vm.prank(member);
        committee.commitScores(id, round, c);
    }

    function revealAsMember(uint256 id, uint32 round, address member, Committee.Scores memory s) internal {
        vm.prank(member);
        committee.revealScores(id, round, s, memberSalt(member, round));
    }

    /// @dev Every member of `present` commits then reveals its scores; returns the posts for `settle`.
    function commitAndReveal(uint256 id, uint32 round, Committee.Scores[] memory all, bool[] memory present)
        internal
        returns (Committee.Post[] memory posts)
    {
        address[] memory members = membersOf(id);
        uint256 count;
        for (uint256 m; m < members.length; ++m) {
            if (present[m]) {
                commitAsMember(id, round, members[m], all[m]);
                ++count;
            }
        }
        if (count < members.length) {
            (, uint256 commitDeadline,,) = committee.deadlinesOf(id, round);
            vm.warp(commitDeadline);
        }
        posts = new Committee.Post[](count);
        uint256 p;
        for (uint256 m; m < members.length; ++m) {
            if (!present[m]) continue;
            revealAsMember(id, round, members[m], all[m]);
            posts[p++] = Committee.Post({member: members[m], scores: all[m]});
        }
        if (count < members.length) {
            (,, uint256 revealDeadline,) = committee.deadlinesOf(id, round);
            vm.warp(revealDeadline);
        }
    }

    function allPresent(uint256 k) internal pure returns (bool[] memory present) {
        present = new bool[](k);
        for (uint256 i; i < k; ++i) {
            present[i] = true;
        }
    }

    /// @dev `k` copies of the same scores.
    function same(uint256 k, Committee.Scores memory s) internal pure returns (Committee.Scores[] memory all) {
        all = new Committee.Scores[](k);
        for (uint256 i; i < k; ++i) {
            all[i] = s;
        }
    }

    /// @dev What the fixture's dishonest member posts: every trainer but `attacker` flagged (only revealed
    /// ones can be), all weight to `attacker`.
    function lie(uint256 n, uint256 attacker) internal pure returns (Committee.Scores memory s) {
        uint32[] memory w = new uint32[](n);
        w[attacker] = 1e9;
        uint256 flags = ((uint256(1) << n) - 1) & ~(uint256(1) << attacker);
        return scores(w, flags, LIE_MODEL_CID);
    }

    /// @dev The honest scores: equal weights except trainer `light`, which gets a quarter share.
    function honestScores(uint256 n, uint256 light) internal pure returns (Committee.Scores memory) {
        uint32[] memory w = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            w[i] = uint32(1e9 / n);
        }
        w[light] = uint32(1e9 / n / 4);
        return scores(w, 0, MODEL_CID);
    }

    function settleWith(uint256 id, uint32 round, Committee.Post[] memory posts) internal {
        vm.prank(stranger);
        committee.settle(id, round, posts);
    }

    function stakeOf(address member) internal view returns (uint256 stake) {
        (stake,,) = committee.registry().memberOf(member);
    }
}
