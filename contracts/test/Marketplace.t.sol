// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {TestToken, FeeOnTransferToken} from "../mocks/TestToken.sol";
import {MarketFixture} from "./Base.t.sol";

/// @dev Re-enters `claim` from its ETH receive hook.
contract ReentrantClaimer {
    Marketplace internal immutable market;
    uint256 internal projectId;

    constructor(Marketplace market_) {
        market = market_;
    }

    function join(uint256 id) external payable {
        projectId = id;
        market.join{value: msg.value}(id);
    }

    function submit(uint32 round, string calldata cid) external {
        market.submitUpdate(projectId, round, cid);
    }

    function claim() external {
        market.claim(projectId);
    }

    receive() external payable {
        market.claim(projectId);
    }
}

/// @notice The Marketplace specification, one external function at a time.
contract MarketplaceTest is MarketFixture {
    // =============================================================================================
    // createProject
    // =============================================================================================

    function test_createProject_escrowsPoolAndNumbersProjectsFromOne() public {
        uint256 a = create(defaultConfig());
        uint256 b = create(defaultConfig());
        assertEq(a, 1, "first id");
        assertEq(b, 2, "second id");
        assertEq(market.projectCount(), 2, "count");
        assertEq(address(market).balance, 2 * POOL, "escrow");
        (address o, Marketplace.Status s, uint32 round, uint16 trainers, uint256 carry, uint256 bondBal,) =
            market.getProject(a);
        assertEq(o, owner, "owner");
        assertTrue(s == Marketplace.Status.Pending, "pending");
        assertEq(round, 0, "round");
        assertEq(trainers, 0, "trainers");
        assertEq(carry, POOL % 3, "dust carried");
        assertEq(bondBal, 0, "bond");
        assertEq(market.getConfig(a).specCid, SPEC_CID, "spec stored");
        assertEq(market.globalModelCid(a), INIT_CID, "initial model");
    }

    function test_createProject_emitsProjectCreated() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.ProjectCreated(
            1, owner, address(0), POOL, 3, aggregator, arbiter, SPEC_CID, INIT_CID, cfg.validationCommitment
        );
        create(cfg);
    }

    function test_createProject_revertsOnWrongEthValue() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongValue.selector, POOL, POOL - 1));
        market.createProject{value: POOL - 1}(cfg);
    }

    function test_createProject_revertsOnZeroRounds() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 0;
        _expectConfigError(cfg, Marketplace.ConfigError.ZeroRounds);
    }

    function test_createProject_revertsWhenPoolIsSmallerThanRounds() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.pool = 2;
        _expectConfigError(cfg, Marketplace.ConfigError.PoolTooSmall);
    }

    function test_createProject_revertsOnMoreThan256Trainers() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 257;
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.TooManyTrainers.selector, 257, 256));
        market.createProject{value: cfg.pool}(cfg);
    }

    function test_createProject_revertsOnBadTrainerBounds() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.minTrainers = 9;
        _expectConfigError(cfg, Marketplace.ConfigError.MinTrainers);
        cfg.minTrainers = 0;
        _expectConfigError(cfg, Marketplace.ConfigError.MinTrainers);
    }

    function test_createProject_revertsOnSlashAbove100Percent() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.slashBps = 10_001;
        _expectConfigError(cfg, Marketplace.ConfigError.SlashBps);
    }

    function test_createProject_revertsOnMissingParties() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.aggregator = address(0);
        _expectConfigError(cfg, Marketplace.ConfigError.ZeroAggregator);
        cfg = defaultConfig();
        cfg.arbiter = address(0);
        _expectConfigError(cfg, Marketplace.ConfigError.ZeroArbiter);
    }

    function test_createProject_revertsOnZeroWindowsOrEmptyCids() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.challengePeriod = 0;
        _expectConfigError(cfg, Marketplace.ConfigError.ZeroWindow);
        cfg = defaultConfig();
        cfg.specCid = "";
        _expectConfigError(cfg, Marketplace.ConfigError.EmptySpec);
        cfg = defaultConfig();
        cfg.initialModelCid = "";
        _expectConfigError(cfg, Marketplace.ConfigError.EmptyInitialModel);
    }

    function test_createProject_revertsOnMoreRoundsThanMaxRounds() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = uint32(market.MAX_ROUNDS() + 1);
        _expectConfigError(cfg, Marketplace.ConfigError.TooManyRounds);
    }

    function test_createProject_revertsOnAmountsBeyondStorageWidths() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.stake = uint256(type(uint88).max) + 1;
        _expectConfigError(cfg, Marketplace.ConfigError.AmountTooLarge);
    }

    function test_createProject_withToken_pullsPoolAndRejectsEth() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = address(token);
        uint256 id = create(cfg);
        assertEq(token.balanceOf(address(market)), POOL, "token escrow");
        assertEq(market.getConfig(id).asset, address(token), "asset");

        token.mint(owner, POOL);
        vm.startPrank(owner);
        token.approve(address(market), POOL);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongValue.selector, 0, 1));
        market.createProject{value: 1}(cfg);
        vm.stopPrank();
    }

    function test_createProject_rejectsFeeOnTransferToken() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = address(fee);
        fee.mint(owner, POOL);
        vm.startPrank(owner);
        fee.approve(address(market), POOL);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.TransferAmountMismatch.selector, POOL, POOL - POOL / 100));
        market.createProject(cfg);
        vm.stopPrank();
    }

    // =============================================================================================
    // postAggregatorBond
    // =============================================================================================

    function test_postAggregatorBond_holdsBond() public {
        uint256 id = create(defaultConfig());
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.AggregatorBonded(id, aggregator, AGG_BOND);
        bond(id);
        (,,,,, uint256 bondBal,) = market.getProject(id);
        assertEq(bondBal, AGG_BOND, "bond held");
    }

    function test_postAggregatorBond_revertsForNonAggregator() public {
        uint256 id = create(defaultConfig());
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotAggregator.selector, stranger));
        market.postAggregatorBond{value: AGG_BOND}(id);
    }

    function test_postAggregatorBond_revertsWhenAlreadyBonded() public {
        uint256 id = create(defaultConfig());
        bond(id);
        vm.prank(aggregator);
        vm.expectRevert(Marketplace.AlreadyBonded.selector);
        market.postAggregatorBond{value: AGG_BOND}(id);
    }

    function test_postAggregatorBond_revertsOnWrongValue() public {
        uint256 id = create(defaultConfig());
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongValue.selector, AGG_BOND, 1 ether));
        market.postAggregatorBond{value: 1 ether}(id);
    }

    function test_postAggregatorBond_reopensExpiredRoundWithFreshDeadline() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        vm.warp(block.timestamp + AGG_WINDOW);
        market.expire(id);
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Expired, "expired");

        vm.warp(block.timestamp + 1 days);
        bond(id);
        (Marketplace.Phase phase,,, uint64 aggregationDeadline,,,,,) = market.getRound(id, 0);
        assertTrue(phase == Marketplace.Phase.Aggregating, "aggregating again");
        assertEq(aggregationDeadline, block.timestamp + AGG_WINDOW, "fresh deadline");
        post(id, 0, equalWeights(2), 0);
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Challenge, "result accepted");
    }

    function test_postAggregatorBond_lateAfterUpheldDisputeGetsAFreshDeadline() public {
        uint256 id = _disputedRound(2);
        vm.prank(arbiter);
        market.resolveDispute(id, true);
        vm.warp(block.timestamp + AGG_WINDOW + 1); // the aggregator re-bonds only after the deadline
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Expired, "expired by the clock");
        bond(id);
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Aggregating, "reopened");
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.WrongPhase.selector, Marketplace.Phase.Expired, Marketplace.Phase.Aggregating
            )
        );
        market.expire(id); // the fresh bond cannot be slashed for the old delay
    }

    function test_postAggregatorBond_revertsOnceProjectIsClosed() public {
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        market.cancel(id);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Cancelled));
        market.postAggregatorBond{value: AGG_BOND}(id);
    }

    // =============================================================================================
    // join
    // =============================================================================================

    function test_join_takesStakeAndRegistersTrainer() public {
        uint256 id = create(defaultConfig());
        address t = trainer(0);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.TrainerJoined(id, t, 0, STAKE);
        joinAs(id, t);
        (bool joined, uint256 stake, uint256 slashed, uint32 joinedRound) = market.getTrainer(id, t);
        assertTrue(joined, "joined");
        assertEq(stake, STAKE, "stake");
        assertEq(slashed, 0, "slashed");
        assertEq(joinedRound, 0, "joined round");
        (,,, uint16 count,,,) = market.getProject(id);
        assertEq(count, 1, "count");
        assertEq(address(market).balance, POOL + STAKE, "balance");
    }

    function test_join_revertsWhenAlreadyJoined() public {
        uint256 id = create(defaultConfig());
        joinAs(id, trainer(0));
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.AlreadyJoined.selector, trainer(0)));
        market.join{value: STAKE}(id);
    }

    function test_join_revertsWhenProjectIsFull() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 2;
        uint256 id = create(cfg);
        joinMany(id, 2);
        vm.prank(trainer(2));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ProjectFull.selector, 2));
        market.join{value: STAKE}(id);
    }

    function test_join_revertsOnWrongStake() public {
        uint256 id = create(defaultConfig());
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongValue.selector, STAKE, STAKE / 2));
        market.join{value: STAKE / 2}(id);
    }

    function test_join_isAllowedWhileRoundIsOpenAndRecordsTheRound() public {
        uint256 id = runningDefault(2);
        joinAs(id, trainer(5));
        (,,, uint32 joinedRound) = market.getTrainer(id, trainer(5));
        assertEq(joinedRound, 0, "joined in round 0");

        playRound(id, 0, 2, equalWeights(2), 0);
        joinAs(id, trainer(6));
        (,,, joinedRound) = market.getTrainer(id, trainer(6));
        assertEq(joinedRound, 1, "joined in round 1");
    }

    function test_join_revertsOnceSubmissionWindowCloses() public {
        uint256 id = runningDefault(2);
        closeSubmissions(id, 0);
        vm.prank(trainer(3));
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.WrongPhase.selector, Marketplace.Phase.Open, Marketplace.Phase.Aggregating)
        );
        market.join{value: STAKE}(id);
    }

    function test_join_revertsOnUnknownProject() public {
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.UnknownProject.selector, 42));
        market.join{value: STAKE}(42);
    }

    // =============================================================================================
    // start
    // =============================================================================================

    function test_start_opensRoundZeroWithPerRoundBudgetPlusDust() public {
        uint256 id = create(defaultConfig());
        bond(id);
        joinMany(id, 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.ProjectStarted(id);
        market.start(id);
        assertTrue(statusOf(id) == Marketplace.Status.Running, "running");
        (Marketplace.Phase phase, uint64 openedAt, uint64 sd, uint64 ad,,, uint256 budget,,) = market.getRound(id, 0);
        assertTrue(phase == Marketplace.Phase.Open, "open");
        assertEq(openedAt, block.timestamp, "opened");
        assertEq(sd, block.timestamp + WINDOW, "submission deadline");
        assertEq(ad, block.timestamp + WINDOW + AGG_WINDOW, "aggregation deadline");
        assertEq(budget, POOL / 3 + POOL % 3, "budget");
    }

    function test_start_revertsWithoutAggregatorBond() public {
        uint256 id = create(defaultConfig());
        joinMany(id, 2);
        vm.expectRevert(Marketplace.BondNotPosted.selector);
        market.start(id);
    }

    function test_start_revertsWithTooFewTrainers() public {
        uint256 id = create(defaultConfig());
        bond(id);
        joinMany(id, 1);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotEnoughTrainers.selector, 1, 2));
        market.start(id);
    }

    function test_start_revertsWhenAlreadyRunning() public {
        uint256 id = runningDefault(2);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Running));
        market.start(id);
    }

    // =============================================================================================
    // submitUpdate
    // =============================================================================================

    function test_submitUpdate_recordsCommitmentAndSubmissionOrder() public {
        uint256 id = runningDefault(3);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.UpdateSubmitted(id, 0, trainer(2), 0, UPDATE_CID);
        vm.prank(trainer(2));
        market.submitUpdate(id, 0, UPDATE_CID);
        vm.prank(trainer(0));
        market.submitUpdate(id, 0, "bafkother");

        address[] memory who = market.getSubmitters(id, 0);
        assertEq(who.length, 2, "two submitters");
        assertEq(who[0], trainer(2), "first");
        assertEq(who[1], trainer(0), "second");
        assertEq(market.getSubmission(id, 0, trainer(2)), keccak256(bytes(UPDATE_CID)), "commitment");
        (,,,,, uint16 submissions,,,) = market.getRound(id, 0);
        assertEq(submissions, 2, "count");
    }

    function test_submitUpdate_revertsForNonTrainer() public {
        uint256 id = runningDefault(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotTrainer.selector, stranger));
        market.submitUpdate(id, 0, UPDATE_CID);
    }

    function test_submitUpdate_revertsOnSecondSubmissionInARound() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 1);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.AlreadySubmitted.selector, trainer(0), 0));
        market.submitUpdate(id, 0, UPDATE_CID);
    }

    function test_submitUpdate_revertsOnWrongRound() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongRound.selector, 0, 1));
        market.submitUpdate(id, 1, UPDATE_CID);
    }

    function test_submitUpdate_revertsAfterSubmissionWindow() public {
        uint256 id = runningDefault(2);
        closeSubmissions(id, 0);
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.WrongPhase.selector, Marketplace.Phase.Open, Marketplace.Phase.Aggregating)
        );
        market.submitUpdate(id, 0, UPDATE_CID);
    }

    function test_submitUpdate_revertsOnEmptyCid() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(Marketplace.EmptyCid.selector);
        market.submitUpdate(id, 0, "");
    }

    function test_submitUpdate_revertsBeforeStart() public {
        uint256 id = create(defaultConfig());
        joinAs(id, trainer(0));
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Pending));
        market.submitUpdate(id, 0, UPDATE_CID);
    }

    // =============================================================================================
    // postResult
    // =============================================================================================

    function test_postResult_storesWeightsFlagsAndCidsAndOpensChallenge() public {
        uint256 id = runningDefault(3);
        submit(id, 0, 3);
        closeSubmissions(id, 0);
        uint32[] memory w = new uint32[](3);
        (w[0], w[1], w[2]) = (7, type(uint32).max, 0);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.ResultPosted(id, 0, MODEL_CID, REPORT_CID, w, 4);
        post(id, 0, w, 4);

        (uint32[] memory got, uint256 flags) = market.getResult(id, 0);
        assertEq(got.length, 3, "length");
        assertEq(got[0], 7, "w0");
        assertEq(got[1], type(uint32).max, "w1");
        assertEq(got[2], 0, "w2");
        assertEq(flags, 4, "flags");
        (Marketplace.Phase phase,,,, uint64 cd,,, string memory model, string memory report) = market.getRound(id, 0);
        assertTrue(phase == Marketplace.Phase.Challenge, "challenge");
        assertEq(cd, block.timestamp + CHALLENGE, "challenge deadline");
        assertEq(model, MODEL_CID, "model");
        assertEq(report, REPORT_CID, "report");
        assertEq(market.globalModelCid(id), INIT_CID, "not final yet");
    }

    function test_postResult_revertsForNonAggregator() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotAggregator.selector, stranger));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, w, 0);
    }

    function test_postResult_revertsWhileRoundIsOpen() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.WrongPhase.selector, Marketplace.Phase.Aggregating, Marketplace.Phase.Open)
        );
        market.postResult(id, 0, MODEL_CID, REPORT_CID, w, 0);
    }

    function test_postResult_revertsWhenWeightsDoNotMatchSubmitters() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(3);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.LengthMismatch.selector, 2, 3));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, w, 0);
    }

    function test_postResult_revertsOnFlagsBeyondSubmitters() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidFlags.selector, 4, 2));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, w, 4);
    }

    function test_postResult_revertsAfterAggregationDeadline() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        (,,, uint64 ad,,,,,) = market.getRound(id, 0);
        vm.warp(ad);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.WrongPhase.selector, Marketplace.Phase.Aggregating, Marketplace.Phase.Expired
            )
        );
        market.postResult(id, 0, MODEL_CID, REPORT_CID, w, 0);
    }

    function test_postResult_revertsOnEmptyModelCid() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(Marketplace.EmptyCid.selector);
        market.postResult(id, 0, "", REPORT_CID, w, 0);
    }

    function test_postResult_revertsOnWrongRound() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongRound.selector, 0, 1));
        market.postResult(id, 1, MODEL_CID, REPORT_CID, w, 0);
    }

    function test_postResult_revertsOnAWeightWithDirtyHighBits() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        // A uint256[] has the uint32[] layout: its second element does not fit a uint32.
        uint256[] memory w = new uint256[](2);
        (w[0], w[1]) = (1, uint256(type(uint32).max) + 1);
        bytes memory data =
            abi.encodeWithSelector(market.postResult.selector, id, uint32(0), MODEL_CID, REPORT_CID, w, uint256(0));
        vm.prank(aggregator);
        (bool ok, bytes memory ret) = address(market).call(data);
        assertTrue(!ok, "dirty weight rejected");
        assertEq(ret.length, 0, "as the ABI decoder rejects it: no revert data");
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Aggregating, "nothing posted");
    }

    /// @dev Weights are packed 8 per slot in a two-entry ring, stored inverted: a word of eight
    /// type(uint32).max weights stores as zero, eight zero weights as all ones. Both must survive the
    /// ring's reuse two rounds later, and rewards must follow them.
    function test_postResult_extremeWeightWordsSurviveTheResultRing() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 9;
        cfg.rounds = 4;
        uint256 id = running(cfg, 9);
        uint32[] memory w = new uint32[](9);
        for (uint32 round; round < 4; ++round) {
            for (uint256 i; i < 9; ++i) {
                // even rounds: eight max weights and a zero; odd rounds: eight zeros and a one
                w[i] = round % 2 == 0 ? (i < 8 ? type(uint32).max : 0) : (i < 8 ? 0 : 1);
            }
            uint256 before0 = market.claimable(id, trainer(0));
            uint256 before8 = market.claimable(id, trainer(8));
            readyToFinalize(id, round, 9, w, 0);
            (uint32[] memory got, uint256 flags) = market.getResult(id, round);
            assertEq(got.length, 9, "length");
            for (uint256 i; i < 9; ++i) {
                assertEq(got[i], w[i], "weight read back");
            }
            assertEq(flags, 0, "no flags");
            uint256 budget = roundBudget(id, round);
            market.finalize(id);
            if (round % 2 == 0) {
                assertEq(market.claimable(id, trainer(0)) - before0, budget / 8, "max weights share the budget");
                assertEq(market.claimable(id, trainer(8)), before8, "zero weight earns nothing");
            } else {
                assertEq(market.claimable(id, trainer(0)), before0, "zero weight earns nothing");
                assertEq(market.claimable(id, trainer(8)) - before8, budget, "the only weight takes all");
            }
        }
    }

    /// @dev Flags below 2^32 are kept in the round header, wider ones in the result ring's flags slot,
    /// which a later narrow result in the same ring entry does not rewrite: readers must not see it.
    function test_postResult_narrowAndWideFlagsAcrossTheResultRing() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 40;
        cfg.minTrainers = 1;
        uint256 id = running(cfg, 40);
        uint256 penalty = STAKE * cfg.slashBps / 10_000;
        uint256[3] memory flagsOf = [uint256(1 | (1 << 32)), 1 << 31, 0];
        for (uint32 round; round < 3; ++round) {
            readyToFinalize(id, round, 40, equalWeights(40), flagsOf[round]);
            (, uint256 flags) = market.getResult(id, round);
            assertEq(flags, flagsOf[round], "flags read back");
            market.finalize(id);
            (, uint256 flagsAfter) = market.getResult(id, round);
            assertEq(flagsAfter, flagsOf[round], "flags kept after finalize");
        }
        (,, uint256 s0,) = market.getTrainer(id, trainer(0));
        (,, uint256 s31,) = market.getTrainer(id, trainer(31));
        (,, uint256 s32,) = market.getTrainer(id, trainer(32));
        (,, uint256 s1,) = market.getTrainer(id, trainer(1));
        assertEq(s0, penalty, "trainer 0 slashed once (round 0 only)");
        assertEq(s32, penalty, "trainer 32 slashed once: round 2 did not reuse round 0's wide flags");
        assertEq(s31, penalty, "trainer 31 slashed in round 1");
        assertEq(s1, 0, "trainer 1 never flagged");
    }

    function test_postResult_revertsWhenBondWasSlashedByUpheldDispute() public {
        uint256 id = _disputedRound(2);
        vm.prank(arbiter);
        market.resolveDispute(id, true);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(Marketplace.BondNotPosted.selector);
        market.postResult(id, 0, MODEL_CID, REPORT_CID, w, 0);
    }

    // =============================================================================================
    // finalize
    // =============================================================================================

    function test_finalize_revertsBeforeChallengePeriodEnds() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        post(id, 0, equalWeights(2), 0);
        uint256 deadline = block.timestamp + CHALLENGE;
        vm.warp(deadline - 1);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ChallengePeriodNotOver.selector, deadline));
        market.finalize(id);
    }

    function test_finalize_revertsWithoutAResult() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.WrongPhase.selector, Marketplace.Phase.Challenge, Marketplace.Phase.Aggregating
            )
        );
        market.finalize(id);
    }

    function test_finalize_splitsBudgetInProportionToWeights() public {
        uint256 id = runningDefault(2);
        uint256 budget = roundBudget(id, 0);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 3);
        playRound(id, 0, 2, w, 0);
        assertEq(market.claimable(id, trainer(0)), budget / 4, "quarter");
        assertEq(market.claimable(id, trainer(1)), budget * 3 / 4, "three quarters");
        uint256 dust = budget - budget / 4 - budget * 3 / 4;
        assertEq(roundBudget(id, 1), POOL / 3 + dust, "dust carried into round 1");
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Final, "final");
        assertTrue(phaseOf(id, 1) == Marketplace.Phase.Open, "next open");
        assertEq(market.globalModelCid(id), MODEL_CID, "model advanced");
    }

    function test_finalize_slashesFlaggedTrainersIntoTheRoundBudget() public {
        uint256 id = runningDefault(3);
        uint256 budget = roundBudget(id, 0);
        uint32[] memory w = new uint32[](3);
        (w[0], w[1], w[2]) = (1, 1, 1_000);
        readyToFinalize(id, 0, 3, w, 1 << 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.TrainerSlashed(id, 0, trainer(2), STAKE / 2);
        market.finalize(id);

        uint256 total = budget + STAKE / 2;
        assertEq(market.claimable(id, trainer(0)), total / 2, "t0 gets half incl. slash");
        assertEq(market.claimable(id, trainer(1)), total / 2, "t1 gets half incl. slash");
        assertEq(market.claimable(id, trainer(2)), 0, "offender unpaid");
        (, uint256 stake, uint256 slashed,) = market.getTrainer(id, trainer(2));
        assertEq(stake, STAKE / 2, "stake left");
        assertEq(slashed, STAKE / 2, "slashed");
    }

    function test_finalize_carriesWholeBudgetWhenAllWeightsAreZero() public {
        uint256 id = runningDefault(2);
        uint256 budget = roundBudget(id, 0);
        readyToFinalize(id, 0, 2, new uint32[](2), 0);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.RoundFinalized(id, 0, 0, budget);
        market.finalize(id);
        assertEq(market.claimable(id, trainer(0)), 0, "nothing");
        assertEq(roundBudget(id, 1), budget + POOL / 3, "carried");
    }

    function test_finalize_finalizesEmptyRoundWithoutAResult() public {
        uint256 id = runningDefault(2);
        uint256 budget = roundBudget(id, 0);
        closeSubmissions(id, 0);
        market.finalize(id);
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Final, "final");
        assertEq(roundBudget(id, 1), budget + POOL / 3, "carried");
        assertEq(market.globalModelCid(id), INIT_CID, "model unchanged");
    }

    function test_finalize_endsProjectAfterLastRoundAndLeavesDustToOwner() public {
        uint256 id = runningDefault(2);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 2);
        playRound(id, 0, 2, w, 0);
        playRound(id, 1, 2, w, 0);
        readyToFinalize(id, 2, 2, w, 0);
        vm.expectEmit(true, false, false, false, address(market));
        emit Marketplace.ProjectEnded(id, 0);
        market.finalize(id);

        assertTrue(statusOf(id) == Marketplace.Status.Ended, "ended");
        uint256 paid = market.claimable(id, trainer(0)) + market.claimable(id, trainer(1));
        assertEq(market.remainder(id), POOL - paid, "owner gets exactly the dust");
        assertLe(market.remainder(id), 2, "dust is at most a wei per trainer");
        assertEq(market.globalModelCid(id), MODEL_CID, "latest model");
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Ended));
        market.finalize(id);
    }

    function test_finalize_revertsWhileDisputed() public {
        uint256 id = _disputedRound(2);
        passChallenge(id, 0);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.WrongPhase.selector, Marketplace.Phase.Challenge, Marketplace.Phase.Disputed)
        );
        market.finalize(id);
    }

    // =============================================================================================
    // dispute / resolveDispute
    // =============================================================================================

    function test_dispute_byTrainerHoldsBondAndFreezesRound() public {
        uint256 id = _postedRound(2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.Disputed(id, 0, trainer(1), DISPUTE_BOND);
        vm.prank(trainer(1));
        market.dispute{value: DISPUTE_BOND}(id);
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Disputed, "disputed");
        assertEq(market.disputer(id), trainer(1), "disputer");
    }

    function test_dispute_byOwnerIsAllowed() public {
        uint256 id = _postedRound(2);
        vm.prank(owner);
        market.dispute{value: DISPUTE_BOND}(id);
        assertEq(market.disputer(id), owner, "owner disputes");
    }

    function test_dispute_revertsForStranger() public {
        uint256 id = _postedRound(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotParticipant.selector, stranger));
        market.dispute{value: DISPUTE_BOND}(id);
    }

    function test_dispute_revertsAfterChallengePeriod() public {
        uint256 id = _postedRound(2);
        uint256 deadline = block.timestamp + CHALLENGE;
        vm.warp(deadline);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ChallengePeriodOver.selector, deadline));
        market.dispute{value: DISPUTE_BOND}(id);
    }

    function test_dispute_revertsOnWrongBond() public {
        uint256 id = _postedRound(2);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongValue.selector, DISPUTE_BOND, 1));
        market.dispute{value: 1}(id);
    }

    function test_dispute_revertsWithoutPostedResult() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.WrongPhase.selector, Marketplace.Phase.Challenge, Marketplace.Phase.Open)
        );
        market.dispute{value: DISPUTE_BOND}(id);
    }

    function test_resolveDispute_revertsForNonArbiter() public {
        uint256 id = _disputedRound(2);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotArbiter.selector, owner));
        market.resolveDispute(id, true);
    }

    function test_resolveDispute_revertsWithoutDispute() public {
        uint256 id = _postedRound(2);
        vm.prank(arbiter);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.WrongPhase.selector, Marketplace.Phase.Disputed, Marketplace.Phase.Challenge)
        );
        market.resolveDispute(id, false);
    }

    function test_resolveDispute_upholdVoidsResultSlashesBondAndReopensAggregation() public {
        uint256 id = _disputedRound(2);
        (,,,, uint256 carryBefore,,) = market.getProject(id);
        vm.prank(arbiter);
        market.resolveDispute(id, true);

        (,,,, uint256 carry, uint256 bondBal,) = market.getProject(id);
        assertEq(bondBal, 0, "bond slashed");
        assertEq(carry, carryBefore + AGG_BOND, "into the carry");
        assertEq(market.claimable(id, trainer(1)), DISPUTE_BOND, "disputer refunded");
        (Marketplace.Phase phase,,, uint64 ad,,,, string memory model,) = market.getRound(id, 0);
        assertTrue(phase == Marketplace.Phase.Aggregating, "aggregating");
        assertEq(ad, block.timestamp + AGG_WINDOW, "fresh deadline");
        assertEq(model, "", "voided result hidden");

        // The aggregator re-bonds and posts a corrected result, which then finalizes normally.
        bond(id);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 1);
        post(id, 0, w, 0);
        passChallenge(id, 0);
        market.finalize(id);
        assertEq(market.claimable(id, trainer(0)), roundBudget(id, 0) / 2, "paid from corrected result");
        assertEq(roundBudget(id, 1) >= POOL / 3 + AGG_BOND, true, "slashed bond funds the next round");
    }

    function test_resolveDispute_upheldResultWithOffendersSlashesNobody() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        post(id, 0, equalWeights(2), 1); // wrongly flags trainer 0
        vm.prank(trainer(0));
        market.dispute{value: DISPUTE_BOND}(id);
        vm.prank(arbiter);
        market.resolveDispute(id, true);

        bond(id);
        post(id, 0, equalWeights(2), 0); // corrected: nobody flagged
        (, uint256 flags) = market.getResult(id, 0);
        assertEq(flags, 0, "voided flags replaced");
        passChallenge(id, 0);
        market.finalize(id);
        (, uint256 stake, uint256 slashed,) = market.getTrainer(id, trainer(0));
        assertEq(slashed, 0, "no slash from the voided result");
        assertEq(stake, STAKE, "stake intact");
        assertEq(market.claimable(id, trainer(0)), roundBudget(id, 0) / 2 + DISPUTE_BOND, "reward + bond back");
    }

    function test_resolveDispute_rejectPaysAggregatorAndRestoresChallenge() public {
        uint256 id = _disputedRound(2);
        passChallenge(id, 0);
        vm.prank(arbiter);
        market.resolveDispute(id, false);
        assertEq(market.claimable(id, aggregator), DISPUTE_BOND, "aggregator wins bond");
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Challenge, "challenge again");
        market.finalize(id);
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Final, "finalizable at once");
        (,,,, uint256 c, uint256 bondBal,) = market.getProject(id);
        assertEq(bondBal, AGG_BOND, "bond intact");
        c;
    }

    // =============================================================================================
    // expire
    // =============================================================================================

    function test_expire_revertsBeforeAggregationDeadline() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.WrongPhase.selector, Marketplace.Phase.Expired, Marketplace.Phase.Aggregating
            )
        );
        market.expire(id);
    }

    function test_expire_slashesAggregatorBondIntoCarry() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        (,,, uint64 ad,,,,,) = market.getRound(id, 0);
        vm.warp(ad);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.RoundExpired(id, 0, AGG_BOND);
        vm.prank(stranger);
        market.expire(id);
        (,,,, uint256 carry, uint256 bondBal,) = market.getProject(id);
        assertEq(bondBal, 0, "bond gone");
        assertEq(carry, AGG_BOND, "slashed into carry");
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Expired, "expired");

        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.WrongPhase.selector, Marketplace.Phase.Expired, Marketplace.Phase.Expired)
        );
        market.expire(id);
    }

    function test_expire_revertsOnRoundWithoutSubmissions() public {
        uint256 id = runningDefault(2);
        (,,, uint64 ad,,,,,) = market.getRound(id, 0);
        vm.warp(ad);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NoSubmissions.selector, 0));
        market.expire(id);
    }

    // =============================================================================================
    // cancel
    // =============================================================================================

    function test_cancel_whilePendingRefundsWholePool() public {
        uint256 id = create(defaultConfig());
        joinAs(id, trainer(0));
        vm.prank(owner);
        market.cancel(id);
        assertTrue(statusOf(id) == Marketplace.Status.Cancelled, "cancelled");
        assertEq(market.remainder(id), POOL, "whole pool");

        uint256 before = owner.balance;
        vm.prank(owner);
        market.withdrawRemainder(id);
        assertEq(owner.balance - before, POOL, "refunded");
        uint256 t0 = trainer(0).balance;
        vm.prank(trainer(0));
        market.withdrawStake(id);
        assertEq(trainer(0).balance - t0, STAKE, "stake back");
    }

    function test_cancel_revertsForNonOwner() public {
        uint256 id = create(defaultConfig());
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotOwner.selector, stranger));
        market.cancel(id);
    }

    function test_cancel_revertsWhileResultIsPending() public {
        uint256 id = _postedRound(2);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ResultPending.selector, 0));
        market.cancel(id);
    }

    function test_cancel_neverReachesAFinalizedRoundsBudget() public {
        uint256 id = runningDefault(2);
        playRound(id, 0, 2, equalWeights(2), 0);
        uint256 paid = market.claimable(id, trainer(0)) + market.claimable(id, trainer(1));
        vm.prank(owner);
        market.cancel(id);
        assertEq(market.remainder(id), POOL - paid, "only unfinalized budget refunded");
        vm.prank(trainer(0));
        market.claim(id);
        assertEq(market.claimable(id, trainer(0)), 0, "rewards still claimable after cancel");
    }

    function test_cancel_afterExpiryRefundsTheRoundBudgetAndSlashedBond() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        (,,, uint64 ad,,,,,) = market.getRound(id, 0);
        vm.warp(ad);
        market.expire(id);
        vm.prank(owner);
        market.cancel(id);
        assertEq(market.remainder(id), POOL + AGG_BOND, "pool plus slashed bond");
    }

    function test_cancel_revertsOnceEnded() public {
        uint256 id = _endedProject();
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Ended));
        market.cancel(id);
    }

    // =============================================================================================
    // claim and withdrawals
    // =============================================================================================

    function test_claim_paysOnceThenReverts() public {
        uint256 id = runningDefault(2);
        playRound(id, 0, 2, equalWeights(2), 0);
        uint256 owed = market.claimable(id, trainer(0));
        uint256 before = trainer(0).balance;
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.Claimed(id, trainer(0), owed);
        vm.prank(trainer(0));
        market.claim(id);
        assertEq(trainer(0).balance - before, owed, "paid");
        vm.prank(trainer(0));
        vm.expectRevert(Marketplace.NothingToClaim.selector);
        market.claim(id);
    }

    function test_claim_withTokenPaysTokens() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = address(token);
        uint256 id = running(cfg, 2);
        playRound(id, 0, 2, equalWeights(2), 0);
        uint256 owed = market.claimable(id, trainer(1));
        vm.prank(trainer(1));
        market.claim(id);
        assertEq(token.balanceOf(trainer(1)), owed, "tokens paid");
    }

    function test_claim_cannotBeReentered() public {
        uint256 id = runningDefault(2);
        ReentrantClaimer evil = new ReentrantClaimer(market);
        vm.deal(address(this), STAKE);
        evil.join{value: STAKE}(id);
        evil.submit(0, UPDATE_CID);
        submit(id, 0, 1);
        closeSubmissions(id, 0);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 1);
        post(id, 0, w, 0);
        passChallenge(id, 0);
        market.finalize(id);

        vm.expectRevert(abi.encodeWithSignature("ReentrancyGuardReentrantCall()"));
        evil.claim();
        assertTrue(market.claimable(id, address(evil)) > 0, "balance untouched");
    }

    function test_withdrawStake_returnsStakeMinusSlashes() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 1;
        uint256 id = running(cfg, 2);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 1);
        playRound(id, 0, 2, w, 1);
        uint256 before = trainer(0).balance;
        vm.prank(trainer(0));
        market.withdrawStake(id);
        assertEq(trainer(0).balance - before, STAKE / 2, "half slashed");
        (, uint256 held, uint256 slashed,) = market.getTrainer(id, trainer(0));
        assertEq(held, 0, "nothing held");
        assertEq(slashed, STAKE / 2, "slash remembered");
        vm.prank(trainer(0));
        vm.expectRevert(Marketplace.AlreadyWithdrawn.selector);
        market.withdrawStake(id);
    }

    function test_withdrawStake_revertsWhileRunning() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Running));
        market.withdrawStake(id);
    }

    function test_withdrawStake_revertsForNonTrainer() public {
        uint256 id = _endedProject();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotTrainer.selector, stranger));
        market.withdrawStake(id);
    }

    function test_withdrawBond_returnsBondAfterEnd() public {
        uint256 id = _endedProject();
        uint256 before = aggregator.balance;
        vm.prank(aggregator);
        market.withdrawBond(id);
        assertEq(aggregator.balance - before, AGG_BOND, "bond back");
        vm.prank(aggregator);
        vm.expectRevert(Marketplace.NothingToWithdraw.selector);
        market.withdrawBond(id);
    }

    function test_withdrawBond_revertsForNonAggregatorAndWhileRunning() public {
        uint256 id = runningDefault(2);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Running));
        market.withdrawBond(id);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotAggregator.selector, stranger));
        market.withdrawBond(id);
    }

    function test_withdrawRemainder_paysOwnerOnceAndOnlyOwner() public {
        uint256 id = _endedProject();
        uint256 rem = market.remainder(id);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotOwner.selector, stranger));
        market.withdrawRemainder(id);
        uint256 before = owner.balance;
        vm.prank(owner);
        market.withdrawRemainder(id);
        assertEq(owner.balance - before, rem, "remainder paid");
        vm.prank(owner);
        vm.expectRevert(Marketplace.NothingToWithdraw.selector);
        market.withdrawRemainder(id);
    }

    function test_withdrawRemainder_revertsWhileRunning() public {
        uint256 id = runningDefault(2);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.WrongStatus.selector, Marketplace.Status.Running));
        market.withdrawRemainder(id);
    }

    // =============================================================================================
    // revealValidation
    // =============================================================================================

    function test_revealValidation_checksCommitmentAndStoresCid() public {
        uint256 id = create(defaultConfig());
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.ValidationRevealed(id, VALIDATION_CID, SALT);
        vm.prank(owner);
        market.revealValidation(id, VALIDATION_CID, SALT);
        (,,,,,, string memory cid) = market.getProject(id);
        assertEq(cid, VALIDATION_CID, "revealed");
        vm.prank(owner);
        vm.expectRevert(Marketplace.AlreadyRevealed.selector);
        market.revealValidation(id, VALIDATION_CID, SALT);
    }

    function test_revealValidation_revertsOnWrongSaltOrCid() public {
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        vm.expectRevert(Marketplace.BadReveal.selector);
        market.revealValidation(id, VALIDATION_CID, bytes32(0));
        vm.prank(owner);
        vm.expectRevert(Marketplace.BadReveal.selector);
        market.revealValidation(id, "bafkwrong", SALT);
    }

    function test_revealValidation_revertsForNonOwner() public {
        uint256 id = create(defaultConfig());
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotOwner.selector, stranger));
        market.revealValidation(id, VALIDATION_CID, SALT);
    }

    // =============================================================================================
    // events
    // =============================================================================================

    function test_events_finalizeCreditsEachRewardAndOpensTheNextRound() public {
        uint256 id = runningDefault(2);
        uint256 budget = roundBudget(id, 0);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 1);
        readyToFinalize(id, 0, 2, w, 0);
        uint64 sd = uint64(block.timestamp + WINDOW);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.RewardCredited(id, 0, trainer(0), budget / 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.RewardCredited(id, 0, trainer(1), budget / 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.RoundFinalized(id, 0, budget / 2 * 2, budget % 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.RoundOpened(id, 1, POOL / 3 + budget % 2, sd, sd + AGG_WINDOW);
        market.finalize(id);
    }

    function test_events_upheldDisputeSlashesAndReopens() public {
        uint256 id = _disputedRound(2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.DisputeResolved(id, 0, trainer(1), true);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.AggregatorSlashed(id, 0, AGG_BOND);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.AggregationReopened(id, 0, uint64(block.timestamp + AGG_WINDOW));
        vm.prank(arbiter);
        market.resolveDispute(id, true);
    }

    function test_events_closingAndWithdrawals() public {
        uint256 id = runningDefault(2);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.ProjectCancelled(id, POOL);
        vm.prank(owner);
        market.cancel(id);

        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.StakeWithdrawn(id, trainer(0), STAKE);
        vm.prank(trainer(0));
        market.withdrawStake(id);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.BondWithdrawn(id, aggregator, AGG_BOND);
        vm.prank(aggregator);
        market.withdrawBond(id);
        vm.expectEmit(true, true, true, true, address(market));
        emit Marketplace.RemainderWithdrawn(id, owner, POOL);
        vm.prank(owner);
        market.withdrawRemainder(id);
        assertEq(address(market).balance, STAKE, "only trainer 1's stake is left");
    }

    // =============================================================================================
    // views
    // =============================================================================================

    function test_getRound_reportsOlderRoundsAsFinalAndFutureRoundsAsNone() public {
        uint256 id = runningDefault(2);
        playRound(id, 0, 2, equalWeights(2), 0);
        playRound(id, 1, 2, equalWeights(2), 0);
        assertTrue(phaseOf(id, 0) == Marketplace.Phase.Final, "round 0 final");
        assertTrue(phaseOf(id, 1) == Marketplace.Phase.Final, "round 1 final");
        assertTrue(phaseOf(id, 2) == Marketplace.Phase.Open, "round 2 open");
        assertTrue(phaseOf(id, 3) == Marketplace.Phase.None, "round 3 none");
        assertEq(market.getSubmitters(id, 0).length, 2, "old submitters kept");
        (uint32[] memory w, uint256 f) = market.getResult(id, 0);
        assertEq(w.length, 0, "older results only in events");
        assertEq(f, 0, "older flags only in events");
        (w,) = market.getResult(id, 1);
        assertEq(w.length, 2, "previous round's weights kept");
        (w,) = market.getResult(id, 2);
        assertEq(w.length, 0, "no result posted yet for the open round");
    }

    /// @dev Submitter addresses are packed 8 per 5 slots, some straddling two slots: every position
    /// must read back in submission order, and be credited its own reward.
    function test_getSubmitters_keepsPackedSubmittersInOrderAcrossSlots() public {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 19;
        cfg.minTrainers = 1;
        uint256 id = running(cfg, 19);
        for (uint256 j; j < 19; ++j) {
            vm.prank(trainer(18 - j));
            market.submitUpdate(id, 0, UPDATE_CID);
        }
        address[] memory who = market.getSubmitters(id, 0);
        assertEq(who.length, 19, "count");
        for (uint256 j; j < 19; ++j) {
            assertEq(who[j], trainer(18 - j), "order");
        }
        uint32[] memory w = new uint32[](19);
        uint256 sum;
        for (uint256 j; j < 19; ++j) {
            w[j] = uint32(1000 + 37 * j);
            sum += w[j];
        }
        closeSubmissions(id, 0);
        post(id, 0, w, 0);
        passChallenge(id, 0);
        uint256 budget = roundBudget(id, 0);
        market.finalize(id);
        for (uint256 j; j < 19; ++j) {
            assertEq(market.claimable(id, trainer(18 - j)), budget * w[j] / sum, "reward by position");
        }
        playRound(id, 1, 3, equalWeights(3), 0);
        assertEq(market.getSubmitters(id, 0).length, 19, "kept after later rounds");
        assertEq(market.getSubmitters(id, 1).length, 3, "next round's own list");
    }

    function test_getRound_reportsRoundsBeyondTheProjectAsNone() public {
        uint256 id = runningDefault(2);
        assertTrue(phaseOf(id, 3) == Marketplace.Phase.None, "beyond last round");
        assertTrue(phaseOf(id, type(uint32).max) == Marketplace.Phase.None, "sentinel round number");
        assertEq(roundBudget(id, type(uint32).max), 0, "no budget");
    }

    function test_views_revertOnUnknownProject() public {
        vm.expectRevert(abi.encodeWithSelector(Marketplace.UnknownProject.selector, 7));
        market.getProject(7);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.UnknownProject.selector, 7));
        market.getConfig(7);
    }

    // =============================================================================================
    // helpers
    // =============================================================================================

    function _expectConfigError(Marketplace.ProjectConfig memory cfg, Marketplace.ConfigError reason) internal {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidConfig.selector, reason));
        market.createProject{value: cfg.pool}(cfg);
    }

    /// @dev Round 0 of a default project with `n` submissions and equal weights posted.
    function _postedRound(uint256 n) internal returns (uint256 id) {
        id = runningDefault(n);
        submit(id, 0, n);
        closeSubmissions(id, 0);
        post(id, 0, equalWeights(n), 0);
    }

    /// @dev `_postedRound` disputed by trainer 1.
    function _disputedRound(uint256 n) internal returns (uint256 id) {
        id = _postedRound(n);
        vm.prank(trainer(1));
        market.dispute{value: DISPUTE_BOND}(id);
    }

    function _endedProject() internal returns (uint256 id) {
        Marketplace.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 1;
        id = running(cfg, 2);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 2); // 10 ether does not split 1:2 exactly: 1 wei of dust for the owner
        playRound(id, 0, 2, w, 0);
    }
}
