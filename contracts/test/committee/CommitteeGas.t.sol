// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CommitteeFixture} from "./CommitteeBase.t.sol";
import {Committee} from "../../committee/Committee.sol";

/// @notice What it costs to settle a round through a committee of k: k commits, k reveals, one settle
/// (which makes the Marketplace's postResult call) and finalize, each as a whole transaction (execution
/// gas with every contract's storage cooled first, plus 21,000 and the calldata). Issue 12's target: with
/// k = 3 and n = 16, at most 2.5x one aggregator's postResult + finalize before the committee (308,403
/// gas, bench/results/gas.json at commit 01e8dfc). `bench/gas.py` runs this with -vv and records the
/// figures it logs (`committee n=N k=K ...`).
contract CommitteeGasTest is CommitteeFixture {
    uint256 internal constant SINGLE_AGGREGATOR_N16 = 308_403;

    /// The settlement transactions (settle + finalize, what replace postResult + finalize) against the
    /// target; the members' own commits and reveals are logged on top (`total`).
    function test_gas_committeeSettlementK3N16WithinTwoAndAHalfTimesOneAggregator() public {
        (, uint256 settlement) = _measure(16, 3, 0);
        assertLe(settlement, SINGLE_AGGREGATOR_N16 * 5 / 2, "k = 3, n = 16 settle + finalize");
    }

    function test_gas_committeeSettlementSizes() public {
        _measure(16, 1, 0);
        _measure(16, 5, 0);
        _measure(64, 1, 0);
        _measure(64, 3, 0);
        _measure(64, 5, 0);
        // with a fee: settle also credits each honest member
        _measure(16, 3, FEE);
    }

    function _measure(uint256 n, uint256 k, uint128 fee) internal returns (uint256 total, uint256 settlement) {
        uint256 id = committeeProject(k, n, fee);
        submit(id, 0, n);
        closeSubmissions(id, 0);
        Committee.Scores memory s = _realistic(n);
        address[] memory members = membersOf(id);
        uint256 commit;
        uint256 reveal;
        for (uint256 m; m < k; ++m) {
            bytes32 c = committee.scoresCommitment(
                members[m], id, 0, s.weights, s.flags, s.modelCid, s.reportCid, memberSalt(members[m], 0)
            );
            uint256 g = _tx(members[m], abi.encodeCall(committee.commitScores, (id, 0, c)));
            if (g > commit) commit = g;
            total += g;
        }
        Committee.Post[] memory posts = new Committee.Post[](k);
        for (uint256 m; m < k; ++m) {
            uint256 g = _tx(members[m], abi.encodeCall(committee.revealScores, (id, 0, s, memberSalt(members[m], 0))));
            if (g > reveal) reveal = g;
            total += g;
            posts[m] = Committee.Post({member: members[m], scores: s});
        }
        uint256 settle = _tx(stranger, abi.encodeCall(committee.settle, (id, 0, posts)));
        passChallenge(id, 0);
        vm.cool(address(market));
        vm.prank(stranger);
        uint256 before = gasleft();
        market.finalize(id);
        uint256 fin = before - gasleft() + 21_000 + _calldataGas(abi.encodeCall(market.finalize, (id)));
        total += settle + fin;
        settlement = settle + fin;
        string memory tag = string.concat("committee n=", _str(n), " k=", _str(k), fee == 0 ? "" : " fee");
        log(string.concat(tag, " commit_scores"), commit);
        log(string.concat(tag, " reveal_scores"), reveal);
        log(string.concat(tag, " settle"), settle);
        log(string.concat(tag, " finalize"), fin);
        log(string.concat(tag, " settle_plus_finalize"), settlement);
        log(string.concat(tag, " total"), total);
    }

    /// @dev A realistic post: all weights nonzero, one offender in eight (weight 0).
    function _realistic(uint256 n) internal pure returns (Committee.Scores memory s) {
        uint32[] memory w = new uint32[](n);
        uint256 flags;
        for (uint256 i; i < n; ++i) {
            if (i % 8 == 0) flags |= uint256(1) << i;
            else w[i] = uint32(1e9 / n + i);
        }
        s = scores(w, flags, MODEL_CID);
    }

    /// @dev One call from `from` as a whole transaction: execution gas with cold storage, 21,000, calldata.
    function _tx(address from, bytes memory data) internal returns (uint256) {
        vm.cool(address(market));
        vm.cool(address(committee));
        vm.cool(address(committee.registry()));
        vm.prank(from);
        uint256 before = gasleft();
        (bool ok,) = address(committee).call(data);
        uint256 used = before - gasleft();
        require(ok, "measured call reverted");
        return used + 21_000 + _calldataGas(data);
    }

    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    function _str(uint256 x) internal pure returns (string memory) {
        if (x == 0) return "0";
        bytes memory b;
        for (; x != 0; x /= 10) {
            b = abi.encodePacked(bytes1(uint8(48 + x % 10)), b);
        }
        return string(b);
    }
}
