// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {MarketplaceViews} from "../MarketplaceViews.sol";
import {MarketplaceStorage} from "../MarketplaceStorage.sol";
import {AssetVault} from "../AssetVault.sol";
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

    function commit(uint32 round, bytes32 commitment) external {
        market.commitUpdate(projectId, round, commitment);
    }

    function reveal(uint32 round, string calldata cid, bytes32 salt) external {
        market.revealUpdate(projectId, round, cid, salt);
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
        assertEq(views.projectCount(), 2, "count");
        assertEq(address(market).balance, 2 * POOL, "escrow");
        (address o, MarketplaceStorage.Status s, uint32 round, uint16 trainers, uint256 carry, uint256 bondBal,) =
            views.getProject(a);
        assertEq(o, owner, "owner");
        assertTrue(s == MarketplaceStorage.Status.Pending, "pending");
        assertEq(round, 0, "round");
        assertEq(trainers, 0, "trainers");
        assertEq(carry, POOL % 3, "dust carried");
        assertEq(bondBal, 0, "bond");
        assertEq(views.getConfig(a).specCid, SPEC_CID, "spec stored");
        assertEq(views.globalModelCid(a), INIT_CID, "initial model");
    }

    function test_createProject_emitsProjectCreated() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.ProjectCreated(
            1, owner, address(0), POOL, 3, aggregator, arbiter, SPEC_CID, INIT_CID, cfg.validationCommitment
        );
        create(cfg);
    }

    function test_createProject_revertsOnWrongEthValue() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(AssetVault.WrongValue.selector, POOL, POOL - 1));
        setup.createProject{value: POOL - 1}(cfg);
    }

    function test_createProject_revertsOnZeroRounds() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 0;
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.ZeroRounds);
    }

    function test_createProject_revertsWhenPoolIsSmallerThanRounds() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.pool = 2;
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.PoolTooSmall);
    }

    function test_createProject_revertsOnMoreThan256Trainers() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 257;
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.TooManyTrainers.selector, 257, 256));
        setup.createProject{value: cfg.pool}(cfg);
    }

    function test_createProject_revertsOnBadTrainerBounds() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.minTrainers = 9;
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.MinTrainers);
        cfg.minTrainers = 0;
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.MinTrainers);
    }

    function test_createProject_revertsOnSlashAbove100Percent() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.slashBps = 10_001;
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.SlashBps);
    }

    function test_createProject_revertsOnMissingParties() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.aggregator = address(0);
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.ZeroAggregator);
        cfg = defaultConfig();
        cfg.arbiter = address(0);
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.ZeroArbiter);
    }

    function test_createProject_revertsOnZeroWindowsOrEmptyCids() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.challengePeriod = 0;
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.ZeroWindow);
        cfg = defaultConfig();
        cfg.specCid = "";
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.EmptySpec);
        cfg = defaultConfig();
        cfg.initialModelCid = "";
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.EmptyInitialModel);
    }

    function test_createProject_revertsOnMoreRoundsThanMaxRounds() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = uint32(market.MAX_ROUNDS() + 1);
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.TooManyRounds);
    }

    function test_createProject_revertsOnAmountsBeyondStorageWidths() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.stake = uint256(type(uint88).max) + 1;
        _expectConfigError(cfg, MarketplaceStorage.ConfigError.AmountTooLarge);
    }

    function test_createProject_withToken_pullsPoolAndRejectsEth() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = address(token);
        uint256 id = create(cfg);
        assertEq(token.balanceOf(address(market)), POOL, "token escrow");
        assertEq(views.getConfig(id).asset, address(token), "asset");

        token.mint(owner, POOL);
        vm.startPrank(owner);
        token.approve(address(market), POOL);
        vm.expectRevert(abi.encodeWithSelector(AssetVault.WrongValue.selector, 0, 1));
        setup.createProject{value: 1}(cfg);
        vm.stopPrank();
    }

    function test_createProject_rejectsFeeOnTransferToken() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = address(fee);
        fee.mint(owner, POOL);
        vm.startPrank(owner);
        fee.approve(address(market), POOL);
        vm.expectRevert(abi.encodeWithSelector(AssetVault.TransferAmountMismatch.selector, POOL, POOL - POOL / 100));
        setup.createProject(cfg);
        vm.stopPrank();
    }

    // =============================================================================================
    // postAggregatorBond
    // =============================================================================================

    function test_postAggregatorBond_holdsBond() public {
        uint256 id = create(defaultConfig());
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.AggregatorBonded(id, owner, AGG_BOND);
        bond(id);
        (,,,,, uint256 bondBal,) = views.getProject(id);
        assertEq(bondBal, AGG_BOND, "bond held");
    }

    /// The owner posts the bond (its guarantee that rounds get scored); the aggregator is the committee.
    function test_postAggregatorBond_revertsForNonOwner() public {
        uint256 id = create(defaultConfig());
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotOwner.selector, stranger));
        market.postAggregatorBond{value: AGG_BOND}(id);
    }

    function test_postAggregatorBond_revertsWhenAlreadyBonded() public {
        uint256 id = create(defaultConfig());
        bond(id);
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.AlreadyBonded.selector);
        market.postAggregatorBond{value: AGG_BOND}(id);
    }

    function test_postAggregatorBond_revertsOnWrongValue() public {
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(AssetVault.WrongValue.selector, AGG_BOND, 1 ether));
        market.postAggregatorBond{value: 1 ether}(id);
    }

    function test_postAggregatorBond_reopensExpiredRoundWithFreshDeadline() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        vm.warp(block.timestamp + AGG_WINDOW);
        market.expire(id);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Expired, "expired");

        vm.warp(block.timestamp + 1 days);
        bond(id);
        (MarketplaceStorage.Phase phase,,, uint64 aggregationDeadline,,,,,) = views.getRound(id, 0);
        assertTrue(phase == MarketplaceStorage.Phase.Aggregating, "aggregating again");
        assertEq(aggregationDeadline, block.timestamp + AGG_WINDOW, "fresh deadline");
        post(id, 0, equalWeights(2), 0);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Challenge, "result accepted");
    }

    function test_postAggregatorBond_lateAfterUpheldDisputeGetsAFreshDeadline() public {
        uint256 id = _disputedRound(2);
        vm.prank(arbiter);
        market.resolveDispute(id, true);
        vm.warp(block.timestamp + AGG_WINDOW + 1); // the aggregator re-bonds only after the deadline
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Expired, "expired by the clock");
        bond(id);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Aggregating, "reopened");
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Expired,
                MarketplaceStorage.Phase.Aggregating
            )
        );
        market.expire(id); // the fresh bond cannot be slashed for the old delay
    }

    function test_postAggregatorBond_revertsOnceProjectIsClosed() public {
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        market.cancel(id);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Cancelled)
        );
        market.postAggregatorBond{value: AGG_BOND}(id);
    }

    // =============================================================================================
    // join
    // =============================================================================================

    function test_join_takesStakeAndRegistersTrainer() public {
        uint256 id = create(defaultConfig());
        address t = trainer(0);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.TrainerJoined(id, t, 0, STAKE);
        joinAs(id, t);
        (bool joined, uint256 stake, uint256 slashed, uint32 joinedRound) = views.getTrainer(id, t);
        assertTrue(joined, "joined");
        assertEq(stake, STAKE, "stake");
        assertEq(slashed, 0, "slashed");
        assertEq(joinedRound, 0, "joined round");
        (,,, uint16 count,,,) = views.getProject(id);
        assertEq(count, 1, "count");
        assertEq(address(market).balance, POOL + STAKE, "balance");
    }

    function test_join_revertsWhenAlreadyJoined() public {
        uint256 id = create(defaultConfig());
        joinAs(id, trainer(0));
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.AlreadyJoined.selector, trainer(0)));
        market.join{value: STAKE}(id);
    }

    function test_join_revertsWhenProjectIsFull() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 2;
        uint256 id = create(cfg);
        joinMany(id, 2);
        vm.prank(trainer(2));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.ProjectFull.selector, 2));
        market.join{value: STAKE}(id);
    }

    function test_join_revertsOnWrongStake() public {
        uint256 id = create(defaultConfig());
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(AssetVault.WrongValue.selector, STAKE, STAKE / 2));
        market.join{value: STAKE / 2}(id);
    }

    function test_join_isAllowedWhileRoundIsOpenAndRecordsTheRound() public {
        uint256 id = runningDefault(2);
        joinAs(id, trainer(5));
        (,,, uint32 joinedRound) = views.getTrainer(id, trainer(5));
        assertEq(joinedRound, 0, "joined in round 0");

        playRound(id, 0, 2, equalWeights(2), 0);
        joinAs(id, trainer(6));
        (,,, joinedRound) = views.getTrainer(id, trainer(6));
        assertEq(joinedRound, 1, "joined in round 1");
    }

    function test_join_revertsOnceSubmissionWindowCloses() public {
        uint256 id = runningDefault(2);
        closeSubmissions(id, 0);
        vm.prank(trainer(3));
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Open,
                MarketplaceStorage.Phase.Aggregating
            )
        );
        market.join{value: STAKE}(id);
    }

    function test_join_revertsOnUnknownProject() public {
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.UnknownProject.selector, 42));
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
        emit MarketplaceStorage.ProjectStarted(id);
        market.start(id);
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Running, "running");
        (MarketplaceStorage.Phase phase, uint64 openedAt, uint64 sd, uint64 ad,,, uint256 budget,,) =
            views.getRound(id, 0);
        assertTrue(phase == MarketplaceStorage.Phase.Open, "open");
        assertEq(openedAt, block.timestamp, "opened");
        assertEq(sd, block.timestamp + WINDOW, "submission deadline");
        assertEq(ad, block.timestamp + WINDOW + REVEAL_WINDOW + AGG_WINDOW, "aggregation deadline");
        (uint64 rd,) = views.getReveals(id, 0);
        assertEq(rd, block.timestamp + WINDOW + REVEAL_WINDOW, "reveal deadline");
        assertEq(budget, POOL / 3 + POOL % 3, "budget");
    }

    function test_start_revertsWithoutAggregatorBond() public {
        uint256 id = create(defaultConfig());
        joinMany(id, 2);
        vm.expectRevert(MarketplaceStorage.BondNotPosted.selector);
        market.start(id);
    }

    function test_start_revertsWithTooFewTrainers() public {
        uint256 id = create(defaultConfig());
        bond(id);
        joinMany(id, 1);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotEnoughTrainers.selector, 1, 2));
        market.start(id);
    }

    function test_start_revertsWhenAlreadyRunning() public {
        uint256 id = runningDefault(2);
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Running)
        );
        market.start(id);
    }

    // =============================================================================================
    // commitUpdate and revealUpdate
    // =============================================================================================

    function _commitment(uint256 id, uint32 round, address t, string memory cid) internal view returns (bytes32) {
        return views.commitmentOf(t, id, round, cid, saltOf(t, round));
    }

    function test_commitUpdate_recordsCommitmentAndCommitOrder() public {
        uint256 id = runningDefault(3);
        bytes32 c2 = _commitment(id, 0, trainer(2), UPDATE_CID);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.UpdateCommitted(id, 0, trainer(2), 0, c2);
        vm.prank(trainer(2));
        market.commitUpdate(id, 0, c2);
        bytes32 c0 = _commitment(id, 0, trainer(0), "bafkother");
        vm.prank(trainer(0));
        market.commitUpdate(id, 0, c0);

        address[] memory who = views.getSubmitters(id, 0);
        assertEq(who.length, 2, "two committers");
        assertEq(who[0], trainer(2), "first");
        assertEq(who[1], trainer(0), "second");
        (bytes32 stored, uint16 index) = views.getCommitment(id, 0, trainer(0));
        assertEq(
            stored, _commitment(id, 0, trainer(0), "bafkother") & ~bytes32(uint256(type(uint64).max)), "top 192 bits"
        );
        assertEq(index, 1, "commit index");
        (,,,,, uint16 submissions,,,) = views.getRound(id, 0);
        assertEq(submissions, 2, "count");
    }

    /// Attack: a copier front-runs with a public CID. Nothing is public while the round is Open, and a
    /// reveal must match the revealer's own commitment, so a copy commits to a CID it does not know and
    /// the copy check orders by commitment.
    function test_revealUpdate_onlyTheCommitterCanRevealItsCommitment() public {
        uint256 id = runningDefault(3);
        commitAs(id, 0, trainer(0), UPDATE_CID);
        // The copier commits blind, then tries to reveal the honest CID once it is public.
        bytes32 guess = _commitment(id, 0, trainer(1), "bafkguess");
        vm.prank(trainer(1));
        market.commitUpdate(id, 0, guess);
        revealPending(id, 0, 1);
        vm.prank(trainer(1));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.RevealMismatch.selector, trainer(1), 0));
        market.revealUpdate(id, 0, UPDATE_CID, saltOf(trainer(1), 0));
        // Replaying the honest trainer's reveal data from another address does not match either.
        vm.prank(trainer(1));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.RevealMismatch.selector, trainer(1), 0));
        market.revealUpdate(id, 0, UPDATE_CID, saltOf(trainer(0), 0));
        (, uint256 revealed) = views.getReveals(id, 0);
        assertEq(revealed, 1, "only the honest trainer (commit index 0) revealed");
    }

    function test_revealUpdate_emitsTheCidAndRefusesASecondReveal() public {
        uint256 id = runningDefault(2);
        commitAs(id, 0, trainer(0), UPDATE_CID);
        (,, uint64 sd,,,,,,) = views.getRound(id, 0);
        vm.warp(sd);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Revealing, "revealing");
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.UpdateRevealed(id, 0, trainer(0), 0, UPDATE_CID);
        revealAs(id, 0, trainer(0), UPDATE_CID);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.UpdateAlreadyRevealed.selector, trainer(0), 0));
        market.revealUpdate(id, 0, UPDATE_CID, saltOf(trainer(0), 0));
    }

    function test_revealUpdate_revertsWhileOpenAndAfterTheRevealDeadline() public {
        uint256 id = runningDefault(2);
        commitAs(id, 0, trainer(0), UPDATE_CID);
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Revealing,
                MarketplaceStorage.Phase.Open
            )
        );
        market.revealUpdate(id, 0, UPDATE_CID, saltOf(trainer(0), 0));
        (uint64 revealDeadline,) = views.getReveals(id, 0);
        vm.warp(revealDeadline);
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Revealing,
                MarketplaceStorage.Phase.Aggregating
            )
        );
        market.revealUpdate(id, 0, UPDATE_CID, saltOf(trainer(0), 0));
    }

    function test_revealUpdate_revertsWithoutACommitment() public {
        uint256 id = runningDefault(2);
        (,, uint64 sd,,,,,,) = views.getRound(id, 0);
        vm.warp(sd);
        vm.prank(trainer(1));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NoCommitment.selector, trainer(1), 0));
        market.revealUpdate(id, 0, UPDATE_CID, saltOf(trainer(1), 0));
    }

    function test_commitUpdate_revertsForNonTrainer() public {
        uint256 id = runningDefault(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotTrainer.selector, stranger));
        market.commitUpdate(id, 0, keccak256("x"));
    }

    function test_commitUpdate_revertsOnSecondCommitmentInARound() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 1);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.AlreadySubmitted.selector, trainer(0), 0));
        market.commitUpdate(id, 0, keccak256("x"));
    }

    function test_commitUpdate_revertsOnWrongRound() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.WrongRound.selector, 0, 1));
        market.commitUpdate(id, 1, keccak256("x"));
    }

    function test_commitUpdate_revertsAfterSubmissionWindow() public {
        uint256 id = runningDefault(2);
        closeSubmissions(id, 0);
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Open,
                MarketplaceStorage.Phase.Aggregating
            )
        );
        market.commitUpdate(id, 0, keccak256("x"));
    }

    function test_commitUpdate_revertsOnEmptyCommitment() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(MarketplaceStorage.EmptyCommitment.selector);
        market.commitUpdate(id, 0, bytes32(0));
    }

    function test_commitUpdate_revertsBeforeStart() public {
        uint256 id = create(defaultConfig());
        joinAs(id, trainer(0));
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Pending)
        );
        market.commitUpdate(id, 0, keccak256("x"));
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
        emit MarketplaceStorage.ResultPosted(id, 0, MODEL_CID, REPORT_CID, pack(w), 4);
        post(id, 0, w, 4);

        (uint32[] memory got, uint256 flags) = views.getResult(id, 0);
        assertEq(got.length, 3, "length");
        assertEq(got[0], 7, "w0");
        assertEq(got[1], type(uint32).max, "w1");
        assertEq(got[2], 0, "w2");
        assertEq(flags, 4, "flags");
        (MarketplaceStorage.Phase phase,,,, uint64 cd,,, string memory model, string memory report) =
            views.getRound(id, 0);
        assertTrue(phase == MarketplaceStorage.Phase.Challenge, "challenge");
        assertEq(cd, block.timestamp + CHALLENGE, "challenge deadline");
        assertEq(model, MODEL_CID, "model");
        assertEq(report, REPORT_CID, "report");
        assertEq(views.globalModelCid(id), INIT_CID, "not final yet");
    }

    function test_postResult_revertsForNonAggregator() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotAggregator.selector, stranger));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, pack(w), 0);
    }

    function test_postResult_revertsWhileRoundIsOpen() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Aggregating,
                MarketplaceStorage.Phase.Open
            )
        );
        market.postResult(id, 0, MODEL_CID, REPORT_CID, pack(w), 0);
    }

    function test_postResult_revertsWhenWeightsDoNotMatchSubmitters() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(9);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.LengthMismatch.selector, 1, 2));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, pack(w), 0);
    }

    function test_postResult_revertsOnFlagsBeyondSubmitters() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.InvalidFlags.selector, 4, 2));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, pack(w), 4);
    }

    function test_postResult_revertsAfterAggregationDeadline() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        (,,, uint64 ad,,,,,) = views.getRound(id, 0);
        vm.warp(ad);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Aggregating,
                MarketplaceStorage.Phase.Expired
            )
        );
        market.postResult(id, 0, MODEL_CID, REPORT_CID, pack(w), 0);
    }

    function test_postResult_revertsOnEmptyModelCid() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(MarketplaceStorage.EmptyCid.selector);
        market.postResult(id, 0, "", REPORT_CID, pack(w), 0);
    }

    function test_postResult_revertsOnWrongRound() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint32[] memory w = equalWeights(2);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.WrongRound.selector, 0, 1));
        market.postResult(id, 1, MODEL_CID, REPORT_CID, pack(w), 0);
    }

    function test_postResult_revertsOnAWeightBeyondTheSubmitters() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        uint256[] memory w = new uint256[](1);
        w[0] = 1 | (uint256(1) << 64); // a third weight for two submitters
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.WeightsBeyondSubmitters.selector, 0));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, w, 0);
    }

    /// Commit-reveal: nobody saw an unrevealed update, so it is neither paid nor flagged.
    function test_postResult_ignoresUnrevealedWeightsAndRefusesToFlagThem() public {
        uint256 id = runningDefault(3);
        submit(id, 0, 3);
        revealPending(id, 0, 2); // trainer 2 never reveals
        (uint64 revealDeadline,) = views.getReveals(id, 0);
        vm.warp(revealDeadline);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.FlagsOnUnrevealed.selector, 4, 3));
        market.postResult(id, 0, MODEL_CID, REPORT_CID, pack(equalWeights(3)), 4);
        post(id, 0, equalWeights(3), 0);
        passChallenge(id, 0);
        uint256 budget = roundBudget(id, 0);
        market.finalize(id);
        assertEq(views.claimable(id, trainer(2)), 0, "unrevealed: a missed round");
        assertEq(views.claimable(id, trainer(0)), budget / 2, "the revealed split the round");
    }

    /// @dev Weights are packed 8 per slot in a two-entry ring, stored inverted: a word of eight
    /// type(uint32).max weights stores as zero, eight zero weights as all ones. Both must survive the
    /// ring's reuse two rounds later, and rewards must follow them.
    function test_postResult_extremeWeightWordsSurviveTheResultRing() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 9;
        cfg.rounds = 4;
        uint256 id = running(cfg, 9);
        uint32[] memory w = new uint32[](9);
        for (uint32 round; round < 4; ++round) {
            for (uint256 i; i < 9; ++i) {
                // even rounds: eight max weights and a zero; odd rounds: eight zeros and a one
                w[i] = round % 2 == 0 ? (i < 8 ? type(uint32).max : 0) : (i < 8 ? 0 : 1);
            }
            uint256 before0 = views.claimable(id, trainer(0));
            uint256 before8 = views.claimable(id, trainer(8));
            readyToFinalize(id, round, 9, w, 0);
            (uint32[] memory got, uint256 flags) = views.getResult(id, round);
            assertEq(got.length, 9, "length");
            for (uint256 i; i < 9; ++i) {
                assertEq(got[i], w[i], "weight read back");
            }
            assertEq(flags, 0, "no flags");
            uint256 budget = roundBudget(id, round);
            market.finalize(id);
            if (round % 2 == 0) {
                assertEq(views.claimable(id, trainer(0)) - before0, budget / 8, "max weights share the budget");
                assertEq(views.claimable(id, trainer(8)), before8, "zero weight earns nothing");
            } else {
                assertEq(views.claimable(id, trainer(0)), before0, "zero weight earns nothing");
                assertEq(views.claimable(id, trainer(8)) - before8, budget, "the only weight takes all");
            }
        }
    }

    /// @dev Flags below 2^32 are kept in the round header, wider ones in the result ring's flags slot,
    /// which a later narrow result in the same ring entry does not rewrite: readers must not see it.
    function test_postResult_narrowAndWideFlagsAcrossTheResultRing() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 40;
        cfg.minTrainers = 1;
        uint256 id = running(cfg, 40);
        uint256 penalty = STAKE * cfg.slashBps / 10_000;
        uint256[3] memory flagsOf = [uint256(1 | (1 << 32)), 1 << 31, 0];
        for (uint32 round; round < 3; ++round) {
            readyToFinalize(id, round, 40, equalWeights(40), flagsOf[round]);
            (, uint256 flags) = views.getResult(id, round);
            assertEq(flags, flagsOf[round], "flags read back");
            market.finalize(id);
            (, uint256 flagsAfter) = views.getResult(id, round);
            assertEq(flagsAfter, flagsOf[round], "flags kept after finalize");
        }
        (,, uint256 s0,) = views.getTrainer(id, trainer(0));
        (,, uint256 s31,) = views.getTrainer(id, trainer(31));
        (,, uint256 s32,) = views.getTrainer(id, trainer(32));
        (,, uint256 s1,) = views.getTrainer(id, trainer(1));
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
        vm.expectRevert(MarketplaceStorage.BondNotPosted.selector);
        market.postResult(id, 0, MODEL_CID, REPORT_CID, pack(w), 0);
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
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.ChallengePeriodNotOver.selector, deadline));
        market.finalize(id);
    }

    function test_finalize_withoutAResultWaitsForTheGracePeriod() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        (,,, uint64 ad,,,,,) = views.getRound(id, 0);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.GracePeriodNotOver.selector, ad + AGG_WINDOW));
        market.finalize(id);
        vm.warp(ad);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.GracePeriodNotOver.selector, ad + AGG_WINDOW));
        market.finalize(id);
    }

    /// Liveness: the aggregator never posts (and nobody calls expire). After the grace period anyone
    /// settles the round: the bond and the budget are split equally among the trainers that revealed.
    function test_finalize_afterTheGracePeriodSplitsBudgetAndBondAmongRevealers() public {
        uint256 id = runningDefault(3);
        submit(id, 0, 3);
        revealPending(id, 0, 2); // trainer 2 committed but never revealed
        (,,, uint64 ad,,,,,) = views.getRound(id, 0);
        vm.warp(ad + AGG_WINDOW);
        uint256 budget = roundBudget(id, 0) + AGG_BOND;
        vm.expectEmit(true, true, false, true, address(market));
        emit MarketplaceStorage.RoundSettledWithoutResult(id, 0, budget / 2);
        vm.prank(stranger);
        market.finalize(id);
        assertEq(views.claimable(id, trainer(0)), budget / 2, "equal split");
        assertEq(views.claimable(id, trainer(1)), budget / 2, "equal split");
        assertEq(views.claimable(id, trainer(2)), 0, "unrevealed: missed");
        (,,,,, uint256 bondBal,) = views.getProject(id);
        assertEq(bondBal, 0, "the absent aggregator's bond went to the trainers");
    }

    function test_finalize_splitsBudgetInProportionToWeights() public {
        uint256 id = runningDefault(2);
        uint256 budget = roundBudget(id, 0);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 3);
        playRound(id, 0, 2, w, 0);
        assertEq(views.claimable(id, trainer(0)), budget / 4, "quarter");
        assertEq(views.claimable(id, trainer(1)), budget * 3 / 4, "three quarters");
        uint256 dust = budget - budget / 4 - budget * 3 / 4;
        assertEq(roundBudget(id, 1), POOL / 3 + dust, "dust carried into round 1");
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Final, "final");
        assertTrue(phaseOf(id, 1) == MarketplaceStorage.Phase.Open, "next open");
        assertEq(views.globalModelCid(id), MODEL_CID, "model advanced");
    }

    function test_finalize_slashesFlaggedTrainersIntoTheRoundBudget() public {
        uint256 id = runningDefault(3);
        uint256 budget = roundBudget(id, 0);
        uint32[] memory w = new uint32[](3);
        (w[0], w[1], w[2]) = (1, 1, 1_000);
        readyToFinalize(id, 0, 3, w, 1 << 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.TrainerSlashed(id, 0, trainer(2), STAKE / 2);
        market.finalize(id);

        uint256 total = budget + STAKE / 2;
        assertEq(views.claimable(id, trainer(0)), total / 2, "t0 gets half incl. slash");
        assertEq(views.claimable(id, trainer(1)), total / 2, "t1 gets half incl. slash");
        assertEq(views.claimable(id, trainer(2)), 0, "offender unpaid");
        (, uint256 stake, uint256 slashed,) = views.getTrainer(id, trainer(2));
        assertEq(stake, STAKE / 2, "stake left");
        assertEq(slashed, STAKE / 2, "slashed");
    }

    function test_finalize_carriesWholeBudgetWhenAllWeightsAreZero() public {
        uint256 id = runningDefault(2);
        uint256 budget = roundBudget(id, 0);
        readyToFinalize(id, 0, 2, new uint32[](2), 0);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.RoundFinalized(id, 0, 0, budget);
        market.finalize(id);
        assertEq(views.claimable(id, trainer(0)), 0, "nothing");
        assertEq(roundBudget(id, 1), budget + POOL / 3, "carried");
    }

    /// A round nobody committed to: its new budget goes back to the owner, the carried part (here the
    /// creation dust) stays with the trainers.
    function test_finalize_finalizesEmptyRoundWithoutAResult() public {
        uint256 id = runningDefault(2);
        uint256 budget = roundBudget(id, 0);
        closeSubmissions(id, 0);
        market.finalize(id);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Final, "final");
        assertEq(views.remainder(id), POOL / 3, "the owner's");
        assertEq(roundBudget(id, 1), budget - POOL / 3 + POOL / 3, "dust carried, plus the new round's budget");
        assertEq(views.globalModelCid(id), INIT_CID, "model unchanged");
    }

    function test_finalize_endsProjectAfterLastRoundAndLeavesDustToTheTrainers() public {
        uint256 id = runningDefault(2);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 2);
        playRound(id, 0, 2, w, 0);
        playRound(id, 1, 2, w, 0);
        readyToFinalize(id, 2, 2, w, 0);
        vm.expectEmit(true, false, false, false, address(market));
        emit MarketplaceStorage.ProjectEnded(id, 0);
        market.finalize(id);

        assertTrue(statusOf(id) == MarketplaceStorage.Status.Ended, "ended");
        uint256 paid = views.claimable(id, trainer(0)) + views.claimable(id, trainer(1));
        (uint256 pot, uint256 shares,) = views.getEndPot(id);
        assertEq(views.remainder(id), 0, "rounds with submissions pay the owner nothing");
        assertEq(pot, POOL - paid, "the dust is the trainers' end pot");
        assertEq(shares, 2, "one share per honest trainer");
        assertLe(pot, 4, "dust is at most a wei per trainer per round");
        assertEq(views.globalModelCid(id), MODEL_CID, "latest model");
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Ended)
        );
        market.finalize(id);
    }

    function test_finalize_revertsWhileDisputedUntilTheRulingDeadline() public {
        uint256 id = _disputedRound(2);
        passChallenge(id, 0);
        (,, uint64 ruling,) = views.getLiveness(id);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.RulingPeriodNotOver.selector, ruling));
        market.finalize(id);
    }

    /// Liveness: the arbiter never rules. At the ruling deadline the dispute is rejected by default: the
    /// result stands, the bond joins the round's budget, the round settles; the arbiter can no longer rule.
    function test_finalize_afterTheRulingDeadlineRejectsTheDisputeByDefault() public {
        uint256 id = _disputedRound(2);
        (,, uint64 ruling,) = views.getLiveness(id);
        vm.warp(ruling);
        vm.prank(arbiter);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.RulingPeriodOver.selector, ruling));
        market.resolveDispute(id, true);
        address disputer = views.disputer(id);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.DisputeLapsed(id, 0, disputer);
        uint256 budget = roundBudget(id, 0);
        vm.prank(stranger);
        market.finalize(id);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Final, "settled");
        assertEq(views.claimable(id, aggregator), 0, "nothing left at the aggregator's address");
        assertEq(roundBudget(id, 0), budget + DISPUTE_BOND, "the bond joins the round's budget, as a rejection");
        assertEq(views.claimable(id, trainer(0)), (budget + DISPUTE_BOND) / 2, "trainers paid it with the result");
    }

    // =============================================================================================
    // dispute / resolveDispute
    // =============================================================================================

    function test_dispute_byTrainerHoldsBondAndFreezesRound() public {
        uint256 id = _postedRound(2);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.Disputed(id, 0, trainer(1), DISPUTE_BOND);
        vm.prank(trainer(1));
        market.dispute{value: DISPUTE_BOND}(id);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Disputed, "disputed");
        assertEq(views.disputer(id), trainer(1), "disputer");
    }

    function test_dispute_byOwnerIsAllowed() public {
        uint256 id = _postedRound(2);
        vm.prank(owner);
        market.dispute{value: DISPUTE_BOND}(id);
        assertEq(views.disputer(id), owner, "owner disputes");
    }

    function test_dispute_revertsForStranger() public {
        uint256 id = _postedRound(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotParticipant.selector, stranger));
        market.dispute{value: DISPUTE_BOND}(id);
    }

    function test_dispute_revertsAfterChallengePeriod() public {
        uint256 id = _postedRound(2);
        uint256 deadline = block.timestamp + CHALLENGE;
        vm.warp(deadline);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.ChallengePeriodOver.selector, deadline));
        market.dispute{value: DISPUTE_BOND}(id);
    }

    function test_dispute_revertsOnWrongBond() public {
        uint256 id = _postedRound(2);
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(AssetVault.WrongValue.selector, DISPUTE_BOND, 1));
        market.dispute{value: 1}(id);
    }

    function test_dispute_revertsWithoutPostedResult() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Challenge,
                MarketplaceStorage.Phase.Open
            )
        );
        market.dispute{value: DISPUTE_BOND}(id);
    }

    function test_resolveDispute_revertsForNonArbiter() public {
        uint256 id = _disputedRound(2);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotArbiter.selector, owner));
        market.resolveDispute(id, true);
    }

    function test_resolveDispute_revertsWithoutDispute() public {
        uint256 id = _postedRound(2);
        vm.prank(arbiter);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Disputed,
                MarketplaceStorage.Phase.Challenge
            )
        );
        market.resolveDispute(id, false);
    }

    function test_resolveDispute_upholdVoidsResultSlashesBondAndReopensAggregation() public {
        uint256 id = _disputedRound(2);
        (,,,, uint256 carryBefore,,) = views.getProject(id);
        vm.prank(arbiter);
        market.resolveDispute(id, true);

        (,,,, uint256 carry, uint256 bondBal,) = views.getProject(id);
        assertEq(bondBal, 0, "bond slashed");
        assertEq(carry, carryBefore + AGG_BOND, "into the carry");
        assertEq(views.claimable(id, trainer(1)), DISPUTE_BOND, "disputer refunded");
        (MarketplaceStorage.Phase phase,,, uint64 ad,,,, string memory model,) = views.getRound(id, 0);
        assertTrue(phase == MarketplaceStorage.Phase.Aggregating, "aggregating");
        assertEq(ad, block.timestamp + AGG_WINDOW, "fresh deadline");
        assertEq(model, "", "voided result hidden");

        // The aggregator re-bonds and posts a corrected result, which then finalizes normally.
        bond(id);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 1);
        post(id, 0, w, 0);
        passChallenge(id, 0);
        market.finalize(id);
        assertEq(views.claimable(id, trainer(0)), roundBudget(id, 0) / 2, "paid from corrected result");
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
        (, uint256 flags) = views.getResult(id, 0);
        assertEq(flags, 0, "voided flags replaced");
        passChallenge(id, 0);
        market.finalize(id);
        (, uint256 stake, uint256 slashed,) = views.getTrainer(id, trainer(0));
        assertEq(slashed, 0, "no slash from the voided result");
        assertEq(stake, STAKE, "stake intact");
        assertEq(views.claimable(id, trainer(0)), roundBudget(id, 0) / 2 + DISPUTE_BOND, "reward + bond back");
    }

    /// A rejected dispute's bond goes to the round's trainers through its budget: nothing is credited to the
    /// committee's address, which could never claim it.
    function test_resolveDispute_rejectPaysTheBondToTheRoundsTrainersAndRestoresChallenge() public {
        uint256 id = _disputedRound(2);
        passChallenge(id, 0);
        uint256 budget = roundBudget(id, 0);
        vm.prank(arbiter);
        market.resolveDispute(id, false);
        assertEq(views.claimable(id, aggregator), 0, "nothing to the aggregator's address");
        assertEq(roundBudget(id, 0), budget + DISPUTE_BOND, "the bond joins the round's budget");
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Challenge, "challenge again");
        market.finalize(id);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Final, "finalizable at once");
        assertEq(views.claimable(id, trainer(0)), (budget + DISPUTE_BOND) / 2, "the trainers are paid it");
        (,,,, uint256 c, uint256 bondBal,) = views.getProject(id);
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
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Expired,
                MarketplaceStorage.Phase.Aggregating
            )
        );
        market.expire(id);
    }

    function test_expire_slashesAggregatorBondIntoCarry() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        revealPending(id, 0, 2);
        (,,, uint64 ad,,,,,) = views.getRound(id, 0);
        vm.warp(ad);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.RoundExpired(id, 0, AGG_BOND);
        vm.prank(stranger);
        market.expire(id);
        (,,,, uint256 carry, uint256 bondBal,) = views.getProject(id);
        assertEq(bondBal, 0, "bond gone");
        assertEq(carry, AGG_BOND, "slashed into carry");
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Expired, "expired");

        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.WrongPhase.selector,
                MarketplaceStorage.Phase.Expired,
                MarketplaceStorage.Phase.Expired
            )
        );
        market.expire(id);
    }

    function test_expire_revertsOnRoundWithoutSubmissions() public {
        uint256 id = runningDefault(2);
        (,,, uint64 ad,,,,,) = views.getRound(id, 0);
        vm.warp(ad);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NoSubmissions.selector, 0));
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
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Cancelled, "cancelled");
        assertEq(views.remainder(id), POOL, "whole pool");

        uint256 before = owner.balance;
        vm.prank(owner);
        market.withdrawRemainder(id);
        assertEq(owner.balance - before, POOL, "refunded");
        uint256 t0 = trainer(0).balance;
        vm.prank(trainer(0));
        market.withdrawStake(id);
        assertEq(trainer(0).balance - t0, STAKE, "stake back");
    }

    function test_cancel_revertsForNonOwnerBeforeTheStartDeadline() public {
        uint256 id = create(defaultConfig());
        (uint64 startDeadline,,,) = views.getLiveness(id);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.StartPeriodNotOver.selector, startDeadline));
        market.cancel(id);
    }

    function test_cancel_revertsForNonOwnerWhileRunning() public {
        uint256 id = runningDefault(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotOwner.selector, stranger));
        market.cancel(id);
    }

    /// Attack: the owner cancels after trainers delivered and the result is posted.
    function test_cancel_afterSubmissionsLeavesTheRoundToItsTrainers() public {
        uint256 id = _postedRound(2);
        uint256 budget = roundBudget(id, 0);
        vm.prank(owner);
        market.cancel(id);
        assertEq(views.remainder(id), POOL - budget, "only the unopened rounds come back");
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.AlreadyCancelled.selector);
        market.cancel(id);
        passChallenge(id, 0);
        market.finalize(id);
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Cancelled, "closed after the round");
        uint256 paid = views.claimable(id, trainer(0)) + views.claimable(id, trainer(1));
        (uint256 pot,,) = views.getEndPot(id);
        assertEq(paid + pot, budget, "the round's whole budget goes to its trainers");
    }

    function test_cancel_neverReachesAFinalizedRoundsBudget() public {
        uint256 id = runningDefault(2);
        playRound(id, 0, 2, equalWeights(2), 0);
        uint256 paid = views.claimable(id, trainer(0)) + views.claimable(id, trainer(1));
        uint256 dust = roundBudget(id, 0) - paid;
        vm.prank(owner);
        market.cancel(id);
        assertEq(views.remainder(id), POOL - paid - dust, "round 0's unpaid dust stays with its trainers");
        (uint256 pot,,) = views.getEndPot(id);
        assertEq(pot, dust, "the dust is the trainers' end pot");
        vm.prank(trainer(0));
        market.claim(id);
        assertEq(views.claimable(id, trainer(0)), 0, "rewards still claimable after cancel");
    }

    /// Attack: the aggregator (the owner's) stays away; the owner cancels the expired round.
    function test_cancel_afterExpiryKeepsTheRoundAndTheSlashedBondForTrainers() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        revealPending(id, 0, 2);
        (,,, uint64 ad,,,,,) = views.getRound(id, 0);
        vm.warp(ad);
        market.expire(id);
        uint256 budget = roundBudget(id, 0);
        vm.prank(owner);
        market.cancel(id);
        assertEq(views.remainder(id), POOL - budget, "the owner gets the unopened rounds only");
        (, uint64 grace,,) = views.getLiveness(id);
        vm.warp(grace);
        market.finalize(id);
        uint256 each = (budget) / 2;
        assertEq(views.claimable(id, trainer(0)), each, "equal split without a result");
        (uint256 pot,,) = views.getEndPot(id);
        assertEq(pot, AGG_BOND + budget - 2 * each, "the slashed bond is the trainers' end pot");
        uint256 t0 = trainer(0).balance;
        vm.prank(trainer(0));
        market.withdrawStake(id);
        assertEq(trainer(0).balance - t0, STAKE + pot / 2, "stake plus a share of the pot");
    }

    function test_cancel_revertsOnceEnded() public {
        uint256 id = _endedProject();
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Ended)
        );
        market.cancel(id);
    }

    // =============================================================================================
    // claim and withdrawals
    // =============================================================================================

    function test_claim_paysOnceThenReverts() public {
        uint256 id = runningDefault(2);
        playRound(id, 0, 2, equalWeights(2), 0);
        uint256 owed = views.claimable(id, trainer(0));
        uint256 before = trainer(0).balance;
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.Claimed(id, trainer(0), owed);
        vm.prank(trainer(0));
        market.claim(id);
        assertEq(trainer(0).balance - before, owed, "paid");
        vm.prank(trainer(0));
        vm.expectRevert(MarketplaceStorage.NothingToClaim.selector);
        market.claim(id);
    }

    function test_claim_withTokenPaysTokens() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = address(token);
        uint256 id = running(cfg, 2);
        playRound(id, 0, 2, equalWeights(2), 0);
        uint256 owed = views.claimable(id, trainer(1));
        vm.prank(trainer(1));
        market.claim(id);
        assertEq(token.balanceOf(trainer(1)), owed, "tokens paid");
    }

    function test_claim_cannotBeReentered() public {
        uint256 id = runningDefault(2);
        ReentrantClaimer evil = new ReentrantClaimer(market);
        vm.deal(address(this), STAKE);
        evil.join{value: STAKE}(id);
        bytes32 evilCommitment = views.commitmentOf(address(evil), id, 0, UPDATE_CID, SALT);
        evil.commit(0, evilCommitment);
        submit(id, 0, 1);
        (,, uint64 sd,,,,,,) = views.getRound(id, 0);
        vm.warp(sd);
        evil.reveal(0, UPDATE_CID, SALT);
        closeSubmissions(id, 0);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 1);
        post(id, 0, w, 0);
        passChallenge(id, 0);
        market.finalize(id);

        vm.expectRevert(abi.encodeWithSignature("ReentrancyGuardReentrantCall()"));
        evil.claim();
        assertTrue(views.claimable(id, address(evil)) > 0, "balance untouched");
    }

    function test_withdrawStake_returnsStakeMinusSlashes() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 1;
        uint256 id = running(cfg, 2);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 1);
        playRound(id, 0, 2, w, 1);
        uint256 before = trainer(0).balance;
        vm.prank(trainer(0));
        market.withdrawStake(id);
        assertEq(trainer(0).balance - before, STAKE / 2, "half slashed");
        (, uint256 held, uint256 slashed,) = views.getTrainer(id, trainer(0));
        assertEq(held, 0, "nothing held");
        assertEq(slashed, STAKE / 2, "slash remembered");
        vm.prank(trainer(0));
        vm.expectRevert(MarketplaceStorage.AlreadyWithdrawn.selector);
        market.withdrawStake(id);
    }

    function test_withdrawStake_revertsWhileRunning() public {
        uint256 id = runningDefault(2);
        vm.prank(trainer(0));
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Running)
        );
        market.withdrawStake(id);
    }

    function test_withdrawStake_revertsForNonTrainer() public {
        uint256 id = _endedProject();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotTrainer.selector, stranger));
        market.withdrawStake(id);
    }

    function test_withdrawBond_returnsBondAfterEnd() public {
        uint256 id = _endedProject();
        uint256 before = owner.balance;
        vm.prank(owner);
        market.withdrawBond(id);
        assertEq(owner.balance - before, AGG_BOND, "bond back to the owner who posted it");
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.NothingToWithdraw.selector);
        market.withdrawBond(id);
    }

    function test_withdrawBond_revertsForNonOwnerAndWhileRunning() public {
        uint256 id = runningDefault(2);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Running)
        );
        market.withdrawBond(id);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotOwner.selector, stranger));
        market.withdrawBond(id);
    }

    function test_withdrawRemainder_paysOwnerOnceAndOnlyOwner() public {
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        market.cancel(id);
        uint256 rem = views.remainder(id);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotOwner.selector, stranger));
        market.withdrawRemainder(id);
        uint256 before = owner.balance;
        vm.prank(owner);
        market.withdrawRemainder(id);
        assertEq(owner.balance - before, rem, "remainder paid");
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.NothingToWithdraw.selector);
        market.withdrawRemainder(id);
    }

    function test_withdrawRemainder_revertsWhileRunning() public {
        uint256 id = runningDefault(2);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(MarketplaceStorage.WrongStatus.selector, MarketplaceStorage.Status.Running)
        );
        market.withdrawRemainder(id);
    }

    // =============================================================================================
    // revealValidation
    // =============================================================================================

    function test_revealValidation_checksCommitmentAndStoresCid() public {
        uint256 id = create(defaultConfig());
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.ValidationRevealed(id, VALIDATION_CID, SALT);
        vm.prank(owner);
        setup.revealValidation(id, VALIDATION_CID, SALT);
        (,,,,,, string memory cid) = views.getProject(id);
        assertEq(cid, VALIDATION_CID, "revealed");
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.AlreadyRevealed.selector);
        setup.revealValidation(id, VALIDATION_CID, SALT);
    }

    function test_revealValidation_revertsOnWrongSaltOrCid() public {
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.BadReveal.selector);
        setup.revealValidation(id, VALIDATION_CID, bytes32(0));
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.BadReveal.selector);
        setup.revealValidation(id, "bafkwrong", SALT);
    }

    function test_revealValidation_revertsForNonOwner() public {
        uint256 id = create(defaultConfig());
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotOwner.selector, stranger));
        setup.revealValidation(id, VALIDATION_CID, SALT);
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
        emit MarketplaceStorage.RewardCredited(id, 0, trainer(0), budget / 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.RewardCredited(id, 0, trainer(1), budget / 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.RoundFinalized(id, 0, budget / 2 * 2, budget % 2);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.RoundOpened(id, 1, POOL / 3 + budget % 2, sd, sd + REVEAL_WINDOW + AGG_WINDOW);
        market.finalize(id);
    }

    function test_events_upheldDisputeSlashesAndReopens() public {
        uint256 id = _disputedRound(2);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.DisputeResolved(id, 0, trainer(1), true);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.AggregatorSlashed(id, 0, AGG_BOND);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.AggregationReopened(id, 0, uint64(block.timestamp + AGG_WINDOW));
        vm.prank(arbiter);
        market.resolveDispute(id, true);
    }

    function test_events_closingAndWithdrawals() public {
        uint256 id = runningDefault(2);
        vm.expectEmit(true, true, true, true, address(market));
        // No commitment yet: every round's budget comes back; the creation dust is round 0's carry, the trainers'.
        emit MarketplaceStorage.ProjectCancelled(id, POOL - POOL % 3);
        vm.prank(owner);
        market.cancel(id);

        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.StakeWithdrawn(id, trainer(0), STAKE);
        vm.prank(trainer(0));
        market.withdrawStake(id);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.BondWithdrawn(id, owner, AGG_BOND);
        vm.prank(owner);
        market.withdrawBond(id);
        vm.expectEmit(true, true, true, true, address(market));
        emit MarketplaceStorage.RemainderWithdrawn(id, owner, POOL - POOL % 3);
        vm.prank(owner);
        market.withdrawRemainder(id);
        assertEq(address(market).balance, STAKE + POOL % 3, "only trainer 1's stake and the end pot are left");
    }

    // =============================================================================================
    // views
    // =============================================================================================

    function test_getRound_reportsOlderRoundsAsFinalAndFutureRoundsAsNone() public {
        uint256 id = runningDefault(2);
        playRound(id, 0, 2, equalWeights(2), 0);
        playRound(id, 1, 2, equalWeights(2), 0);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Final, "round 0 final");
        assertTrue(phaseOf(id, 1) == MarketplaceStorage.Phase.Final, "round 1 final");
        assertTrue(phaseOf(id, 2) == MarketplaceStorage.Phase.Open, "round 2 open");
        assertTrue(phaseOf(id, 3) == MarketplaceStorage.Phase.None, "round 3 none");
        assertEq(views.getSubmitters(id, 0).length, 0, "older submitters only in events");
        assertEq(views.getSubmitters(id, 1).length, 2, "previous round's submitters kept");
        (uint32[] memory w, uint256 f) = views.getResult(id, 0);
        assertEq(w.length, 0, "older results only in events");
        assertEq(f, 0, "older flags only in events");
        (w,) = views.getResult(id, 1);
        assertEq(w.length, 2, "previous round's weights kept");
        (w,) = views.getResult(id, 2);
        assertEq(w.length, 0, "no result posted yet for the open round");
    }

    /// @dev Submitter addresses are packed 8 per 5 slots, some straddling two slots: every position
    /// must read back in submission order, and be credited its own reward.
    function test_getSubmitters_keepsPackedSubmittersInOrderAcrossSlots() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 19;
        cfg.minTrainers = 1;
        uint256 id = running(cfg, 19);
        for (uint256 j; j < 19; ++j) {
            commitAs(id, 0, trainer(18 - j), UPDATE_CID);
        }
        address[] memory who = views.getSubmitters(id, 0);
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
            assertEq(views.claimable(id, trainer(18 - j)), budget * w[j] / sum, "reward by position");
        }
        playRound(id, 1, 3, equalWeights(3), 0);
        assertEq(views.getSubmitters(id, 1).length, 3, "the ring entry is reused");
        address[] memory again = views.getSubmitters(id, 1);
        assertEq(again[2], trainer(2), "overwritten fields read back");
        assertEq(views.getSubmitters(id, 1).length, 3, "next round's own list");
    }

    function test_getRound_reportsRoundsBeyondTheProjectAsNone() public {
        uint256 id = runningDefault(2);
        assertTrue(phaseOf(id, 3) == MarketplaceStorage.Phase.None, "beyond last round");
        assertTrue(phaseOf(id, type(uint32).max) == MarketplaceStorage.Phase.None, "sentinel round number");
        assertEq(roundBudget(id, type(uint32).max), 0, "no budget");
    }

    function test_views_revertOnUnknownProject() public {
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.UnknownProject.selector, 7));
        views.getProject(7);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.UnknownProject.selector, 7));
        views.getConfig(7);
    }

    // =============================================================================================
    // helpers
    // =============================================================================================

    function _expectConfigError(MarketplaceStorage.ProjectConfig memory cfg, MarketplaceStorage.ConfigError reason)
        internal
    {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.InvalidConfig.selector, reason));
        setup.createProject{value: cfg.pool}(cfg);
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
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 1;
        id = running(cfg, 2);
        uint32[] memory w = new uint32[](2);
        (w[0], w[1]) = (1, 2); // 10 ether does not split 1:2 exactly: 1 wei of dust for the owner
        playRound(id, 0, 2, w, 0);
    }
}
