// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CommitteeFixture} from "./CommitteeBase.t.sol";
import {Committee} from "../../committee/Committee.sol";
import {AggregatorRegistry} from "../../committee/AggregatorRegistry.sol";
import {Consensus} from "../../committee/Consensus.sol";
import {Marketplace} from "../../Marketplace.sol";
import {MarketplaceStorage} from "../../MarketplaceStorage.sol";

/// @notice The committee as a specification: who is drawn, how members post, what the contract settles,
/// who pays for lying or absence, and what a liar majority can still do.
contract CommitteeTest is CommitteeFixture {
    // --- the draw ------------------------------------------------------------------------------

    /// The owner cannot name a scorer: a project's aggregator must be the committee.
    function test_ownerCannotNameItsOwnAggregator() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.aggregator = owner;
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.InvalidConfig.selector, MarketplaceStorage.ConfigError.NotCommittee
            )
        );
        setup.createProject{value: cfg.pool}(cfg);
    }

    /// A Marketplace cannot be wired to a committee built for another address.
    function test_marketplaceRefusesACommitteeOfAnotherMarket() public {
        Committee other = new Committee(address(0xBEEF), 7 days, 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.InvalidConfig.selector, MarketplaceStorage.ConfigError.NotCommittee
            )
        );
        new Marketplace(address(other));
    }

    /// `start` draws k distinct registered members holding the minimum stake, and locks them.
    function test_startDrawsDistinctEligibleMembersAndLocksThem() public {
        fillRegistry(6);
        // One member below the project's minimum, one exiting: neither may be drawn.
        registerMember(committee, vm.addr(0xBAD1), 1 ether);
        address exiting = vm.addr(0x5C0 + 5);
        AggregatorRegistry registry = committee.registry();
        vm.prank(exiting);
        registry.requestExit();
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        committee.configure{value: 0}(id, 3, 1 ether, 0);
        bond(id);
        joinMany(id, 2);
        market.start(id);

        address[] memory members = membersOf(id);
        assertEq(members.length, 3, "three seats");
        for (uint256 i; i < 3; ++i) {
            assertTrue(members[i] != exiting, "an exiting member is never drawn");
            (,, uint256 locks) = committee.registry().memberOf(members[i]);
            assertEq(locks, 1, "drawn members are locked");
            for (uint256 j; j < i; ++j) {
                assertTrue(members[i] != members[j], "distinct");
            }
        }
    }

    /// Too few eligible members: the project cannot start (named revert), and nothing moved.
    function test_startRevertsWhenTooFewMembers() public {
        uint256 id = create(defaultConfig());
        vm.prank(owner);
        committee.configure(id, 3, 1 ether, 0);
        bond(id);
        joinMany(id, 2);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.CommitteeUnavailable.selector, 1, 3));
        market.start(id);
    }

    /// Terms are the owner's, once, before start, odd sizes up to 7, fee escrowed in full.
    function test_configureRules() public {
        uint256 id = create(defaultConfig());
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Committee.NotProjectOwner.selector, stranger));
        committee.configure(id, 3, 1 ether, 0);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(Committee.BadCommittee.selector, 2, 1 ether));
        committee.configure(id, 2, 1 ether, 0);
        vm.expectRevert(abi.encodeWithSelector(Committee.BadCommittee.selector, 9, 1 ether));
        committee.configure(id, 9, 1 ether, 0);
        vm.expectRevert(abi.encodeWithSelector(Committee.BadCommittee.selector, 3, 0.5 ether));
        committee.configure(id, 3, 0.5 ether, 0);
        vm.expectRevert(abi.encodeWithSelector(Committee.FeeMismatch.selector, 1, 3 * FEE));
        committee.configure{value: 1}(id, 3, 1 ether, FEE);
        committee.configure{value: 3 * FEE}(id, 3, 1 ether, FEE);
        vm.expectRevert(abi.encodeWithSelector(Committee.AlreadyConfigured.selector, id));
        committee.configure(id, 5, 1 ether, 0);
        vm.stopPrank();
    }

    // --- honest committees ------------------------------------------------------------------------

    /// A committee of one (the default, for local use) runs the same flow without waiting for deadlines.
    function test_committeeOfOneSettlesItsPost() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        Committee.Post[] memory posts = commitAndReveal(id, 0, same(1, honestScores(2, 1)), allPresent(1));
        settleWith(id, 0, posts);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Challenge, "posted");
        (uint32[] memory weights, uint256 flags) = views.getResult(id, 0);
        assertEq(weights[0], 5e8, "trainer 0's weight");
        assertEq(weights[1], 1.25e8, "trainer 1's weight");
        assertEq(flags, 0, "no flags");
        assertEq(stakeOf(scorer), 1 ether, "no penalty");
    }

    /// Three honest members: the median is their common post, every member is paid an equal fee share.
    function test_honestCommitteeSettlesAndIsPaid() public {
        uint256 id = committeeProject(3, 4);
        submit(id, 0, 4);
        closeSubmissions(id, 0);
        Committee.Post[] memory posts = commitAndReveal(id, 0, same(3, honestScores(4, 2)), allPresent(3));
        settleWith(id, 0, posts);
        (uint32[] memory weights,) = views.getResult(id, 0);
        assertEq(weights[2], uint32(1e9 / 4 / 4), "the consensus is the common post");
        address[] memory members = membersOf(id);
        for (uint256 m; m < 3; ++m) {
            assertEq(committee.owed(members[m]), FEE / 3, "fee share");
            assertEq(stakeOf(members[m]), MEMBER_STAKE, "no penalty");
        }
        (,,, uint256 feeLeft,) = committee.termsOf(id);
        assertEq(feeLeft, 2 * FEE, "two rounds of fee left");
    }

    /// Per trainer, the median weight: each member's deviations on different trainers do not add up.
    function test_medianPerTrainerAndMajorityFlags() public {
        uint256 id = committeeProject(3, 4);
        submit(id, 0, 4);
        closeSubmissions(id, 0);
        Committee.Scores[] memory all = same(3, honestScores(4, 3));
        uint32[] memory w0 = new uint32[](4);
        w0[0] = 3e8; // member 0 over-weights trainer 0
        w0[1] = 2e8;
        w0[2] = 2e8;
        w0[3] = 1e8;
        all[0] = scores(w0, 1 << 3, MODEL_CID);
        uint32[] memory w1 = new uint32[](4);
        w1[0] = 2e8;
        w1[1] = 3e8; // member 1 over-weights trainer 1
        w1[2] = 2e8;
        w1[3] = 1e8;
        all[1] = scores(w1, 1 << 3, MODEL_CID);
        uint32[] memory w2 = new uint32[](4);
        w2[0] = 2e8;
        w2[1] = 2e8;
        w2[2] = 3e8; // member 2 over-weights trainer 2, and flags nobody
        w2[3] = 1e8;
        all[2] = scores(w2, 0, MODEL_CID);
        settleWith(id, 0, commitAndReveal(id, 0, all, allPresent(3)));
        (uint32[] memory weights, uint256 flags) = views.getResult(id, 0);
        assertEq(weights[0], 2e8, "median of 3,2,2");
        assertEq(weights[1], 2e8, "median of 2,3,2");
        assertEq(weights[2], 2e8, "median of 2,2,3");
        assertEq(flags, 1 << 3, "two of three flag trainer 3");
        assertEq(weights[3], 0, "a majority-flagged trainer gets no weight");
    }

    /// A weight given to a trainer the member itself flags is never paid: it is judged as 0, so honest
    /// members that agree on the flags are within tolerance whatever weight they left on the flagged.
    function test_weightsOnOwnFlaggedTrainersDoNotCountAsDeviation() public {
        uint256 id = committeeProject(3, 4);
        submit(id, 0, 4);
        closeSubmissions(id, 0);
        Committee.Scores[] memory all = same(3, honestScores(4, 0));
        all[0].flags = 1 << 3;
        all[1].flags = 1 << 3;
        all[2].flags = 1 << 3;
        settleWith(id, 0, commitAndReveal(id, 0, all, allPresent(3)));
        address[] memory members = membersOf(id);
        for (uint256 m; m < 3; ++m) {
            assertEq(stakeOf(members[m]), MEMBER_STAKE, "no penalty");
        }
    }

    // --- liars ------------------------------------------------------------------------------------

    /// One liar of three flags every honest trainer and gives all weight to its own trainer: the pay is
    /// exactly what three honest members settle, the liar loses stake (to the honest trainers, claimable
    /// from the committee apart from their rewards) and the round's fee goes to the honest members only.
    function test_attack_oneLiarCannotChangePayAndLosesStakeToTrainers() public {
        uint256 n = 4;
        uint256 attacker = 3;
        // Reference: the same round with three honest members.
        uint256 ref = committeeProject(3, n);
        submit(ref, 0, n);
        closeSubmissions(ref, 0);
        settleWith(ref, 0, commitAndReveal(ref, 0, same(3, honestScores(n, attacker)), allPresent(3)));
        passChallenge(ref, 0);
        market.finalize(ref);

        uint256 id = create(defaultConfig());
        vm.prank(owner);
        committee.configure{value: 3 * FEE}(id, 3, MEMBER_STAKE, FEE);
        bond(id);
        joinMany(id, n);
        market.start(id);
        submit(id, 0, n);
        closeSubmissions(id, 0);
        Committee.Scores[] memory all = same(3, honestScores(n, attacker));
        all[1] = lie(n, attacker);
        address liar = membersOf(id)[1];
        uint256 before = stakeOf(liar);
        // The same registry members sat on the reference committee: count only what this round adds.
        uint256 liarOwed = committee.owed(liar);
        uint256 honestOwed = committee.owed(membersOf(id)[0]);
        settleWith(id, 0, commitAndReveal(id, 0, all, allPresent(3)));
        passChallenge(id, 0);
        market.finalize(id);

        for (uint256 i; i < n; ++i) {
            assertEq(views.claimable(id, trainer(i)), views.claimable(ref, trainer(i)), "reward as with no liar");
        }
        uint256 penalty = MEMBER_STAKE * committee.PENALTY_BPS() / 10_000;
        assertEq(before - stakeOf(liar), penalty, "the liar lost its penalty");
        assertEq(committee.owed(liar), liarOwed, "and earned no fee");
        // The honest trainers share the penalty and the liar's fee share pro rata to consensus weights.
        uint256 shared;
        for (uint256 i; i < n; ++i) {
            shared += committee.owed(trainer(i));
        }
        // (The reference round had no penalty, so everything owed to trainers comes from this one.)
        assertEq(shared, penalty, "the whole penalty to the trainers");
        assertEq(committee.owed(membersOf(id)[0]) - honestOwed, FEE / 2, "the round's fee to the two honest members");
        assertTrue(committee.owed(trainer(attacker)) < committee.owed(trainer(0)), "pro rata to weights");

        uint256 due = committee.owed(trainer(0));
        uint256 bal = trainer(0).balance;
        vm.prank(trainer(0));
        committee.claim();
        assertEq(trainer(0).balance - bal, due, "claimed");
    }

    /// A member that never posts cannot block settlement: after the reveal deadline the others settle
    /// and the absent member pays the penalty.
    function test_absentMemberCannotBlockSettlementAndIsPenalized() public {
        uint256 id = committeeProject(3, 3);
        submit(id, 0, 3);
        closeSubmissions(id, 0);
        bool[] memory present = allPresent(3);
        present[2] = false;
        address absent = membersOf(id)[2];
        Committee.Post[] memory posts = commitAndReveal(id, 0, same(3, honestScores(3, 0)), present);
        vm.expectEmit(true, true, true, true, address(committee));
        emit Committee.MemberPenalized(id, 0, absent, MEMBER_STAKE * 2_000 / 10_000, 20_000, 3);
        settleWith(id, 0, posts);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Challenge, "settled without it");
        assertEq(stakeOf(absent), MEMBER_STAKE - MEMBER_STAKE / 5, "absent member penalised");
    }

    /// Settling early (before the reveal deadline, with a member missing) is refused by name.
    function test_settleWaitsForTheRevealDeadlineUnlessAllRevealed() public {
        uint256 id = committeeProject(3, 2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        Committee.Scores memory s = honestScores(2, 0);
        address[] memory members = membersOf(id);
        commitAsMember(id, 0, members[0], s);
        (, uint256 commitDeadline, uint256 revealDeadline,) = committee.deadlinesOf(id, 0);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(Committee.RevealNotOpen.selector, commitDeadline));
        committee.revealScores(id, 0, s, memberSalt(members[0], 0));
        vm.warp(commitDeadline);
        revealAsMember(id, 0, members[0], s);
        Committee.Post[] memory posts = new Committee.Post[](1);
        posts[0] = Committee.Post({member: members[0], scores: s});
        vm.expectRevert(abi.encodeWithSelector(Committee.SettleNotOpen.selector, revealDeadline));
        settleWith(id, 0, posts);
        vm.warp(revealDeadline);
        settleWith(id, 0, posts);
        // Settled: the Marketplace holds the result now, so the committee no longer aggregates the round.
        vm.expectRevert(
            abi.encodeWithSelector(Committee.NotAggregating.selector, 0, MarketplaceStorage.Phase.Challenge)
        );
        settleWith(id, 0, posts);
    }

    /// Two liars of three agree on a lie: it becomes the consensus and the honest member is penalised.
    /// What still holds: the round's budget goes to trainers (none to the owner), and every lie is public.
    function test_attack_liarMajorityDecidesTheRoundButNotWhereTheBudgetGoes() public {
        uint256 n = 4;
        uint256 id = committeeProject(3, n);
        submit(id, 0, n);
        closeSubmissions(id, 0);
        Committee.Scores[] memory all = same(3, lie(n, 3));
        all[0] = honestScores(n, 3);
        address honestMember = membersOf(id)[0];
        uint256 budget = roundBudget(id, 0);
        settleWith(id, 0, commitAndReveal(id, 0, all, allPresent(3)));
        (, uint256 flags) = views.getResult(id, 0);
        assertEq(flags, 0x7, "the liars' flags stand");
        assertTrue(stakeOf(honestMember) < MEMBER_STAKE, "the honest member is the one penalised");
        passChallenge(id, 0);
        market.finalize(id);
        uint256 paid = views.claimable(id, trainer(3));
        assertEq(paid, budget + 3 * (STAKE / 2), "the whole budget and the slashes go to trainer 3");
        assertEq(views.remainder(id), 0, "nothing to the owner");
    }

    // --- bad input: named reverts; a malformed post never blocks the others --------------------------

    function test_postsByStrangersTwiceLateOrMalformedAreRefusedByName() public {
        uint256 id = committeeProject(3, 3);
        submit(id, 0, 3);
        Committee.Scores memory s = honestScores(3, 0);
        address[] memory members = membersOf(id);

        // Before the trainers' reveals close, the round is not being aggregated.
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(Committee.NotAggregating.selector, 0, MarketplaceStorage.Phase.Open));
        committee.commitScores(id, 0, bytes32(uint256(1)));
        closeSubmissions(id, 0);

        // Not drawn for this project.
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Committee.NotMember.selector, id, stranger));
        committee.commitScores(id, 0, bytes32(uint256(1)));
        // Not the round being aggregated.
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(Committee.NotAggregating.selector, 1, MarketplaceStorage.Phase.None));
        committee.commitScores(id, 1, bytes32(uint256(1)));
        // Twice.
        commitAsMember(id, 0, members[0], s);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(Committee.AlreadyCommitted.selector, members[0], 0));
        committee.commitScores(id, 0, bytes32(uint256(2)));

        // Member 1 commits a post with the wrong number of weights; member 2 commits too late.
        Committee.Scores memory short_ = honestScores(3, 0);
        short_.weights = new uint256[](2);
        commitAsMember(id, 0, members[1], short_);
        (, uint256 commitDeadline,,) = committee.deadlinesOf(id, 0);
        vm.warp(commitDeadline);
        vm.prank(members[2]);
        vm.expectRevert(abi.encodeWithSelector(Committee.CommitClosed.selector, commitDeadline));
        committee.commitScores(id, 0, bytes32(uint256(3)));

        vm.prank(members[1]);
        vm.expectRevert(abi.encodeWithSelector(Committee.WeightCount.selector, 2, 1));
        committee.revealScores(id, 0, short_, memberSalt(members[1], 0));
        // Scores other than the committed ones.
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(Committee.CommitmentMismatch.selector, members[0], 0));
        committee.revealScores(id, 0, short_, memberSalt(members[0], 0));
        revealAsMember(id, 0, members[0], s);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(Committee.AlreadyRevealed.selector, members[0], 0));
        committee.revealScores(id, 0, s, memberSalt(members[0], 0));

        (,, uint256 revealDeadline,) = committee.deadlinesOf(id, 0);
        vm.warp(revealDeadline);
        vm.prank(members[1]);
        vm.expectRevert(abi.encodeWithSelector(Committee.RevealClosed.selector, revealDeadline));
        committee.revealScores(id, 0, short_, memberSalt(members[1], 0));

        // A forged post in settle is refused; the true one settles despite the malformed member.
        Committee.Post[] memory posts = new Committee.Post[](1);
        posts[0] = Committee.Post({member: members[0], scores: honestScores(3, 1)});
        vm.expectRevert(abi.encodeWithSelector(Committee.PostMismatch.selector, members[0]));
        settleWith(id, 0, posts);
        posts[0].scores = s;
        settleWith(id, 0, posts);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Challenge, "settled");
        assertTrue(stakeOf(members[1]) < MEMBER_STAKE, "the malformed member counts as absent");
        assertTrue(stakeOf(members[2]) < MEMBER_STAKE, "so does the late one");
    }

    /// The seal binds each member to its post: two members with the same scores cannot be swapped in
    /// `settle` (who is paid or penalised follows the post).
    function test_postsOfEqualScoresCannotSwapMembers() public {
        uint256 id = committeeProject(3, 3);
        submit(id, 0, 3);
        closeSubmissions(id, 0);
        Committee.Post[] memory posts = commitAndReveal(id, 0, same(3, honestScores(3, 1)), allPresent(3));
        (posts[0].member, posts[1].member) = (posts[1].member, posts[0].member);
        vm.expectRevert(abi.encodeWithSelector(Committee.PostMismatch.selector, posts[0].member));
        settleWith(id, 0, posts);
        (posts[0].member, posts[1].member) = (posts[1].member, posts[0].member);
        settleWith(id, 0, posts);
        assertTrue(phaseOf(id, 0) == MarketplaceStorage.Phase.Challenge, "the true posts settle");
    }

    /// The Marketplace's one read for the committee agrees with its full views.
    function test_aggregationOfMatchesTheRoundViews() public {
        uint256 id = committeeProject(3, 3);
        (MarketplaceStorage.Phase phase, uint256 deadline, uint256 submissions, uint256 revealed) =
            market.aggregationOf(id, 1);
        assertTrue(phase == MarketplaceStorage.Phase.None, "a round not opened yet");
        assertEq(deadline + submissions + revealed, 0, "reads zeroes");
        submit(id, 0, 3);
        (phase,, submissions, revealed) = market.aggregationOf(id, 0);
        assertTrue(phase == MarketplaceStorage.Phase.Open, "open");
        assertEq(submissions, 3, "three commitments");
        assertEq(revealed, 0, "none revealed yet");
        revealPending(id, 0, 2); // the third trainer never reveals
        (uint64 revealDeadline,) = views.getReveals(id, 0);
        vm.warp(revealDeadline);
        (phase, deadline, submissions, revealed) = market.aggregationOf(id, 0);
        (MarketplaceStorage.Phase fullPhase,,, uint64 aggregationDeadline,, uint16 fullSubmissions,,,) =
            views.getRound(id, 0);
        (, uint256 fullRevealed) = views.getReveals(id, 0);
        assertTrue(phase == MarketplaceStorage.Phase.Aggregating && phase == fullPhase, "aggregating");
        assertEq(deadline, aggregationDeadline, "aggregation deadline");
        assertEq(submissions, fullSubmissions, "submissions");
        assertEq(revealed, 3, "the first two revealed");
        assertEq(revealed, fullRevealed, "reveal bitmap");
        vm.warp(aggregationDeadline);
        (phase,,,) = market.aggregationOf(id, 0);
        assertTrue(phase == MarketplaceStorage.Phase.Expired, "past the deadline");
    }

    /// Flags on a trainer that never revealed, or beyond the submitters, are refused at reveal.
    function test_flagsOnUnrevealedOrBeyondSubmittersAreRefused() public {
        uint256 id = runningDefault(3);
        submit(id, 0, 3);
        revealPending(id, 0, 2); // trainer 2 never reveals
        (uint64 revealDeadline,) = views.getReveals(id, 0);
        vm.warp(revealDeadline);
        Committee.Scores memory s = honestScores(3, 0);
        s.flags = 1 << 2;
        commitAsMember(id, 0, scorer, s);
        vm.prank(scorer);
        vm.expectRevert(abi.encodeWithSelector(Committee.BadFlags.selector, 1 << 2, 3));
        committee.revealScores(id, 0, s, memberSalt(scorer, 0));
    }

    /// No member revealed: there is no consensus to post (named), and the Marketplace's no-result rules
    /// (expiry, the owner's bond to the trainers, the equal split) settle the round.
    function test_noPostsMeansNoConsensus() public {
        uint256 id = committeeProject(3, 2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        (,, uint256 revealDeadline,) = committee.deadlinesOf(id, 0);
        vm.warp(revealDeadline);
        vm.expectRevert(abi.encodeWithSelector(Committee.NoPosts.selector, 0));
        settleWith(id, 0, new Committee.Post[](0));
    }

    /// An upheld dispute re-opens aggregation: the committee scores the round afresh and settles again.
    function test_committeeRescoresAfterAnUpheldDispute() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        settleWith(id, 0, commitAndReveal(id, 0, same(1, honestScores(2, 1)), allPresent(1)));
        vm.warp(block.timestamp + 1 hours);
        vm.prank(owner);
        market.dispute{value: DISPUTE_BOND}(id);
        vm.prank(arbiter);
        market.resolveDispute(id, true);
        bond(id); // the owner's bond was slashed; a fresh one re-opens scoring
        Committee.Scores memory fixed_ = honestScores(2, 0);
        settleWith(id, 0, commitAndReveal(id, 0, same(1, fixed_), allPresent(1)));
        (uint32[] memory weights,) = views.getResult(id, 0);
        assertEq(weights[0], 1.25e8, "the second settlement stands");
    }

    // --- the end --------------------------------------------------------------------------------

    /// Once the project closes, anyone releases the members and the owner takes back unspent fees.
    function test_releaseAndFeeRefundAfterClose() public {
        uint256 id = committeeProject(3, 2);
        vm.prank(owner);
        market.cancel(id); // round 0 has no submission: the project closes now
        address[] memory members = membersOf(id);
        committee.release(id);
        (,, uint256 locks) = committee.registry().memberOf(members[0]);
        assertEq(locks, 0, "released");
        vm.expectRevert(abi.encodeWithSelector(Committee.AlreadyReleased.selector, id));
        committee.release(id);
        uint256 before = owner.balance;
        vm.prank(owner);
        committee.refundFee(id);
        assertEq(owner.balance - before, 3 * FEE, "every round's fee back");
    }

    /// Nobody but the registry pays the committee (stray ETH would break its accounting).
    function test_refusesStrayEth() public {
        vm.prank(stranger);
        (bool ok,) = address(committee).call{value: 1}("");
        assertTrue(!ok, "refused");
    }

    // --- the pure consensus ---------------------------------------------------------------------

    /// With an absent member, a flag needs a majority of the whole committee.
    function test_flagsNeedAMajorityOfSeats() public pure {
        uint256[][] memory w = new uint256[][](2);
        w[0] = new uint256[](1);
        w[1] = new uint256[](1);
        uint256[] memory f = new uint256[](2);
        f[0] = 1;
        (, uint256 majority) = Consensus.settleAmong(w, f, 1, 3);
        require(majority == 0, "one flag of three seats does not stand");
        f[1] = 1;
        (, majority) = Consensus.settleAmong(w, f, 1, 3);
        require(majority == 1, "two of three stand");
    }
}
