// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {MarketplaceViews} from "../MarketplaceViews.sol";
import {MarketplaceSetup} from "../MarketplaceSetup.sol";
import {MarketplaceStorage} from "../MarketplaceStorage.sol";
import {MarketFixture} from "./Base.t.sol";

contract Noop {
    function ping() external {}
}

/// @notice Gas budgets, measured as execution gas of each call with the market's storage cooled first
/// (`vm.cool`), so every slot is charged as in a fresh transaction. The targets hold for whole
/// transactions: each test adds 21,000 plus the calldata (EIP-2028) per transaction to the execution gas
/// and asserts that sum. Run with `forge test --mc MarketplaceGasTest -vv` to print the figures.
/// Under `--gas-report` or `--isolate`, forge runs each call as its own transaction; the tests detect
/// that and subtract the base and calldata, so the budgets mean the same in both modes.
contract MarketplaceGasTest is MarketFixture {
    uint256 internal constant COMMIT_REVEAL_BUDGET = 100_000;
    uint256 internal constant CLAIM_BUDGET = 60_000;

    Noop internal noop;
    uint256 internal isolation; // 0 unknown, 1 no, 2 yes

    function setUp() public override {
        super.setUp();
        noop = new Noop();
    }

    /// @dev Whether forge runs each call from the test as its own transaction (an empty call then
    /// costs at least the 21,000 base).
    function _isolated() internal returns (bool) {
        if (isolation == 0) {
            uint256 g = gasleft();
            noop.ping();
            g -= gasleft();
            isolation = g >= 21_000 ? 2 : 1;
        }
        return isolation == 2;
    }

    /// @dev Execution gas of a call that `gasleft()` measured as `measured`, whatever forge's mode.
    function _exec(uint256 measured, bytes memory data) internal returns (uint256) {
        return _isolated() ? measured - 21_000 - _calldataGas(data) : measured;
    }

    /// Commit during Open plus reveal after the deadline replace one submission: together <= 100k.
    function test_gas_commitPlusRevealStaysUnder100k() public {
        uint256 id = _project(4, address(0));
        uint256 worst;
        // Submitters are packed 8 per 5 slots: the second one straddles two slots (the worst case).
        for (uint256 i; i < 2; ++i) {
            (uint256 c, uint256 r) = _commitRevealGas(id, i);
            uint256 total = c + r + 42_000 + lastCalldataGas;
            log("gas commitUpdate", c);
            log("gas revealUpdate", r);
            log("gas commit + reveal as two transactions", total);
            if (total > worst) worst = total;
        }
        assertLe(worst, COMMIT_REVEAL_BUDGET, "commit + reveal");
    }

    function test_gas_claimStaysUnder60k() public {
        uint256 id = _project(2, address(0));
        playRound(id, 0, 2, equalWeights(2), 0);
        vm.cool(address(market));
        vm.prank(trainer(0));
        uint256 g = gasleft();
        market.claim(id);
        g = _exec(g - gasleft(), abi.encodeCall(market.claim, (id)));
        log("gas claim (ETH)", g);
        log("gas claim (ETH) as a transaction", g + 21_000 + _calldataGas(abi.encodeCall(market.claim, (id))));
        assertLe(g + 21_000 + _calldataGas(abi.encodeCall(market.claim, (id))), CLAIM_BUDGET, "claim ETH");

        uint256 tid = _project(2, address(token));
        playRound(tid, 0, 2, equalWeights(2), 0);
        vm.cool(address(market));
        vm.cool(address(token));
        vm.prank(trainer(1));
        g = gasleft();
        market.claim(tid);
        g = _exec(g - gasleft(), abi.encodeCall(market.claim, (tid)));
        log("gas claim (ERC-20, first token receipt)", g);
        // Execution only: 20k of it is the token's own fresh balance slot for a first-time holder.
        assertLe(g, CLAIM_BUDGET, "claim token");
    }

    function test_gas_createAndJoin() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        vm.cool(address(market));
        vm.prank(owner);
        uint256 g = gasleft();
        uint256 id = setup.createProject{value: cfg.pool}(cfg);
        g = _exec(g - gasleft(), abi.encodeCall(setup.createProject, (cfg)));
        log("gas createProject (ETH, maxTrainers 8)", g);
        address t = trainer(0);
        vm.cool(address(market));
        vm.prank(t);
        g = gasleft();
        market.join{value: STAKE}(id);
        g = _exec(g - gasleft(), abi.encodeCall(market.join, (id)));
        log("gas join (ETH)", g);

        // The result ring is pre-filled for maxTrainers: the largest project pays the most at creation.
        cfg.maxTrainers = 256;
        vm.cool(address(market));
        vm.prank(owner);
        g = gasleft();
        setup.createProject{value: cfg.pool}(cfg);
        g = _exec(g - gasleft(), abi.encodeCall(setup.createProject, (cfg)));
        log("gas createProject (ETH, maxTrainers 256)", g);
    }

    function test_gas_roundSettlementFor16Trainers() public {
        _assertRoundBudget(16);
    }

    function test_gas_roundSettlementFor64Trainers() public {
        _assertRoundBudget(64);
    }

    function test_gas_roundSettlementFor256Trainers() public {
        _assertRoundBudget(256);
    }

    function test_gas_roundSettlementWithOffendersFor64Trainers() public {
        uint256 n = 64;
        uint256 id = _project(n, address(0));
        // Every fourth trainer flagged: slashing costs about what a reward does.
        uint256 flags;
        for (uint256 i; i < n; i += 4) {
            flags |= 1 << i;
        }
        (uint256 post_, uint256 fin) = _measureRound(id, 0, n, flags);
        log("gas postResult+finalize n=64, 16 flagged", post_ + fin);
        log("  as two transactions", post_ + fin + 42_000 + lastCalldataGas);
        assertLe(post_ + fin + 42_000 + lastCalldataGas, 80_000 + 15_000 * n, "budget with offenders");
    }

    /// @dev The bench's round (`python -m bench gas`): 16 trainers, one offender in eight, round 0.
    function test_gas_roundSettlementWithOffendersFor16Trainers() public {
        uint256 n = 16;
        uint256 id = _project(n, address(0));
        (uint256 post_, uint256 fin) = _measureRound(id, 0, n, 1 | 1 << 8);
        log("gas postResult+finalize n=16, 2 flagged", post_ + fin);
        log("  as two transactions", post_ + fin + 42_000 + lastCalldataGas);
        assertLe(post_ + fin + 42_000 + lastCalldataGas, 80_000 + 15_000 * n, "budget with offenders");
    }

    // ---------------------------------------------------------------------------------------------

    function _assertRoundBudget(uint256 n) internal {
        uint256 id = _project(n, address(0));
        (uint256 p0, uint256 f0) = _measureRound(id, 0, n, 0);
        uint256 t0 = p0 + f0 + 42_000 + lastCalldataGas;
        (uint256 p1, uint256 f1) = _measureRound(id, 1, n, 0);
        uint256 t1 = p1 + f1 + 42_000 + lastCalldataGas;
        (uint256 p2, uint256 f2) = _measureRound(id, 2, n, 0);
        uint256 t2 = p2 + f2 + 42_000 + lastCalldataGas;
        log("trainers", n);
        log("  round 0 as two transactions (+ 2 * 21000 + calldata)", t0);
        log("  round 1 as two transactions (+ 2 * 21000 + calldata)", t1);
        log("  round 2 as two transactions (+ 2 * 21000 + calldata)", t2);
        log("  round 0 postResult", p0);
        log("  round 0 finalize", f0);
        log("  round 1 postResult+finalize", p1 + f1);
        log("  round 2 postResult", p2);
        log("  round 2 finalize", f2);
        log("  round 2 postResult+finalize", p2 + f2);
        log("  budget 80k + 15k*n", 80_000 + 15_000 * n);
        uint256 limit = 80_000 + 15_000 * n;
        assertLe(t0, limit, "round 0");
        assertLe(t1, limit, "round 1");
        assertLe(t2, limit, "round 2");
    }

    /// @dev `cid` with a character in each 32-byte word replaced by a letter that depends on `round`, so
    /// that every storage word a CID occupies changes from round to round, as with real CIDs.
    function _cid(string memory cid, uint32 round) internal pure returns (string memory) {
        bytes memory b = bytes(cid);
        for (uint256 i = 16; i < b.length; i += 32) {
            b[i] = bytes1(uint8(97 + round % 26));
        }
        b[b.length - 1] = bytes1(uint8(97 + round % 26));
        return string(b);
    }

    function _project(uint256 n, address asset) internal returns (uint256 id) {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = asset;
        cfg.rounds = 4;
        cfg.minTrainers = 1;
        cfg.maxTrainers = 256;
        id = running(cfg, n);
    }

    /// @dev Calldata gas of the last measured postResult and finalize (EIP-2028: 4 per zero byte, 16 other).
    uint256 internal lastCalldataGas;

    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    /// @dev Execution gas of trainer i's commit (round 0, Open) and its reveal (after the deadline; the
    /// other trainers' reveals are left for later). Sets `lastCalldataGas` to both calls' calldata gas.
    function _commitRevealGas(uint256 id, uint256 i) internal returns (uint256 c, uint256 r) {
        address t = trainer(i);
        bytes32 salt = saltOf(t, 0);
        bytes32 commitment = views.commitmentOf(t, id, 0, UPDATE_CID, salt);
        bytes memory commitData = abi.encodeCall(market.commitUpdate, (id, 0, commitment));
        bytes memory revealData = abi.encodeCall(market.revealUpdate, (id, 0, UPDATE_CID, salt));
        lastCalldataGas = _calldataGas(commitData) + _calldataGas(revealData);
        uint256 t0 = block.timestamp;
        vm.cool(address(market));
        vm.prank(t);
        c = gasleft();
        market.commitUpdate(id, 0, commitment);
        c = _exec(c - gasleft(), commitData);
        (,, uint64 sd,,,,,,) = views.getRound(id, 0);
        vm.warp(sd);
        vm.cool(address(market));
        vm.prank(t);
        r = gasleft();
        market.revealUpdate(id, 0, UPDATE_CID, salt);
        r = _exec(r - gasleft(), revealData);
        vm.warp(t0); // back to Open for the next committer
    }

    function _measureRound(uint256 id, uint32 round, uint256 n, uint256 flags)
        internal
        returns (uint256 postGas, uint256 finalizeGas)
    {
        submit(id, round, n);
        closeSubmissions(id, round);
        uint32[] memory w = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            w[i] = uint32(1e9 / n + i);
        }
        string memory model = _cid(MODEL_CID, round);
        string memory report = _cid(REPORT_CID, round);
        bytes memory postData = abi.encodeCall(market.postResult, (id, round, model, report, pack(w), flags));
        bytes memory finalizeData = abi.encodeCall(market.finalize, (id));
        lastCalldataGas = _calldataGas(postData) + _calldataGas(finalizeData);

        vm.cool(address(market));
        vm.prank(aggregator);
        postGas = gasleft();
        // Fresh CIDs every round, as in production (rewriting an unchanged string would be nearly free).
        market.postResult(id, round, model, report, pack(w), flags);
        postGas = _exec(postGas - gasleft(), postData);
        passChallenge(id, round);
        vm.cool(address(market));
        finalizeGas = gasleft();
        market.finalize(id);
        finalizeGas = _exec(finalizeGas - gasleft(), finalizeData);
    }
}
