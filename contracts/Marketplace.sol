// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Proxy} from "@openzeppelin/contracts/proxy/Proxy.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {MarketplaceStorage} from "./MarketplaceStorage.sol";
import {MarketplaceViews} from "./MarketplaceViews.sol";
import {MarketplaceSetup} from "./MarketplaceSetup.sol";
import {SubmitterList} from "./lib/SubmitterList.sol";
import {PackedResult} from "./lib/PackedResult.sol";
import {CidPair} from "./lib/CidPair.sol";
import {ICommittee} from "./committee/ICommittee.sol";

/**
 * @title Merit Marketplace
 * @notice One contract holding many collaborative-training projects. An owner escrows a reward pool,
 * trainers stake and submit model updates (by IPFS CID), an aggregator scores each round and posts
 * contribution weights and offender flags, and this contract turns those into rewards and slashes.
 *
 * @dev Round lifecycle: Open --deadline--> Aggregating --postResult--> Challenge --period--> Final.
 * Aggregating and Expired are derived from time. A dispute moves Challenge to Disputed; the arbiter sends
 * it back to Challenge (rejected) or to Aggregating (upheld, result voided).
 *
 * Money rules that hold whatever the owner, the aggregator or the arbiter do:
 * - a round's budget belongs to its trainers once it has a submission: `cancel` refunds only rounds that
 *   never had one, and a round with submissions settles to them even without a result (equal split
 *   after the aggregation deadline plus a grace period of one more aggregation window);
 * - slashed stakes and slashed aggregator bonds go to trainers only: the round's unflagged trainers, or the
 *   carry into the next round, or, when the project closes, its honest trainers (`withdrawStake`);
 * - every waiting state ends: a Pending project may be cancelled by anyone after `START_WINDOW`; a dispute
 *   not ruled on within one aggregation window after the challenge deadline is rejected by default; an
 *   expired round settles after its grace period;
 * - bonds have minimums; a trainer that misses `MISSED_ROUNDS_LIMIT` rounds in a row may be evicted.
 *
 * Project creation lives in {MarketplaceSetup} and read-only functions in {MarketplaceViews}, both
 * deployed by the constructor and reached through the fallback by delegatecall (one address, one ABI for
 * clients); all three share {MarketplaceStorage}. The core keeps every rule that moves money after creation.
 *
 * Funds conservation: for every asset, this contract's balance equals the sum over projects of unopened
 * budgets + carry + the current round's budget + stakes + claimable + bonds + held dispute bond + owner
 * remainder + end pot. Every transfer out zeroes the paid balance first (checks-effects-interactions)
 * and runs under a transient reentrancy guard.
 */
contract Marketplace is MarketplaceStorage, ReentrancyGuardTransient, Proxy {
    using SafeCast for uint256;
    using SubmitterList for SubmitterList.List;
    using PackedResult for PackedResult.Slots;
    using CidPair for CidPair.Pair;

    /// @notice The read-only half, reached by delegatecall for every selector this contract lacks.
    address public immutable VIEWS;
    /// @notice Project creation and the owner's validation reveal, reached by delegatecall.
    address public immutable SETUP;
    /// @notice The aggregator of every project: the committee contract that draws each project's scorers
    /// from its staked registry and posts their consensus. No owner names an aggregator.
    address public immutable COMMITTEE;

    /// @param committee The {Committee}, built for this Marketplace's (predicted) address.
    constructor(address committee) {
        if (committee.code.length == 0 || ICommittee(committee).market() != address(this)) {
            revert InvalidConfig(ConfigError.NotCommittee);
        }
        COMMITTEE = committee;
        VIEWS = address(new MarketplaceViews());
        SETUP = address(new MarketplaceSetup(committee));
    }

    // ---------------------------------------------------------------------------------------------
    // Project setup
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Posts the aggregator bond: the owner's guarantee that its rounds get scored. Only the
     * project's owner (the aggregator is the committee, whose members stake in the registry), while the
     * project is Pending or Running and no bond is currently held. If the committee misses a deadline the
     * bond goes to the trainers, as before.
     * @dev After `expire` or an upheld dispute the bond is gone; posting it again re-opens an Expired
     * round for aggregation with a fresh aggregation deadline.
     * @param projectId The project.
     */
    function postAggregatorBond(uint256 projectId) external payable nonReentrant {
        Project storage p = _project(projectId);
        if (msg.sender != p.owner) revert NotOwner(msg.sender);
        if (p.status != Status.Pending && p.status != Status.Running) revert WrongStatus(p.status);
        if (p.bonded) revert AlreadyBonded();

        ProjectConfig storage cfg = _configs[projectId];
        uint256 amount = cfg.aggregatorBond;
        p.bonded = true;
        p.bondBalance += amount.toUint96();
        emit AggregatorBonded(projectId, msg.sender, amount);

        if (p.status == Status.Running) {
            RoundState storage r = _ring[projectId][p.currentRound & 1];
            // Expired, recorded or only by the clock: a fresh deadline, so the new bond is not slashed
            // for the old delay.
            if (_phase(r) == Phase.Expired) {
                // forge-lint: disable-next-line(unsafe-typecast) -- timestamps fit 32 bits until 2106
                uint32 deadline = uint32(block.timestamp + cfg.aggregationWindow);
                r.phase = Phase.Aggregating;
                r.aggregationDeadline = deadline;
                emit AggregationReopened(projectId, p.currentRound, deadline);
            }
        }
        _pull(cfg.asset, amount);
    }

    /**
     * @notice Joins a project as a trainer by paying the stake.
     * @dev Allowed while the project is Pending, or while its current round is Open, if there is room.
     * An evicted address cannot join the same project again.
     * @param projectId The project.
     */
    function join(uint256 projectId) external payable nonReentrant {
        Project storage p = _project(projectId);
        ProjectConfig storage cfg = _configs[projectId];
        uint32 joinedRound;
        if (p.status == Status.Running) {
            Phase phase = _phase(_ring[projectId][p.currentRound & 1]);
            if (phase != Phase.Open) revert WrongPhase(Phase.Open, phase);
            joinedRound = p.currentRound;
        } else if (p.status != Status.Pending) {
            revert WrongStatus(p.status);
        }
        Account storage a = _accounts[projectId][msg.sender];
        if (a.flags & JOINED != 0) revert AlreadyJoined(msg.sender);
        if (p.trainerCount >= cfg.maxTrainers) revert ProjectFull(cfg.maxTrainers);

        uint256 stake = cfg.stake;
        p.trainerCount += 1;
        p.members += 1;
        a.flags = JOINED;
        // forge-lint: disable-start(unsafe-typecast) -- stake <= type(uint88).max, rounds <= MAX_ROUNDS (checked at creation)
        a.stake = uint88(stake);
        a.joinedRound = uint24(joinedRound);
        _seats[projectId][msg.sender] =
            Seat({commitment: 0, committedRound: 0, activeRound: uint24(joinedRound), index: 0, flags: HELD});
        // forge-lint: disable-end(unsafe-typecast)
        _prefillSubmitterSlots(projectId, p);
        emit TrainerJoined(projectId, msg.sender, joinedRound, stake);
        _pull(cfg.asset, stake);
    }

    /**
     * @notice Starts a Pending project: opens round 0 and has the committee draw the project's scorers.
     * Anyone may call it once the aggregator bond is posted and at least `minTrainers` trainers have joined.
     * @param projectId The project.
     */
    function start(uint256 projectId) external {
        Project storage p = _project(projectId);
        if (p.status != Status.Pending) revert WrongStatus(p.status);
        if (!p.bonded) revert BondNotPosted();
        uint16 need = _configs[projectId].minTrainers;
        if (p.trainerCount < need) revert NotEnoughTrainers(p.trainerCount, need);

        p.status = Status.Running;
        emit ProjectStarted(projectId);
        _openRound(projectId, p, 0);
        ICommittee(COMMITTEE).draw(projectId);
    }

    /**
     * @notice Frees the slot of a trainer that missed `MISSED_ROUNDS_LIMIT` rounds in a row, so that
     * squatters cannot keep honest trainers out. Anyone may call, while the project is Running.
     * @dev The evicted trainer keeps its stake (withdrawn when the project closes) but can no longer
     * submit, and its address cannot join this project again.
     * @param projectId The project.
     * @param trainer The trainer to evict.
     */
    function evict(uint256 projectId, address trainer) external {
        Project storage p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        Seat storage seat = _seats[projectId][trainer];
        if (seat.flags & HELD == 0) revert NotTrainer(trainer);
        if (p.currentRound < uint256(seat.activeRound) + MISSED_ROUNDS_LIMIT) {
            revert NotEvictable(trainer, seat.activeRound);
        }
        seat.flags &= ~HELD;
        p.trainerCount -= 1;
        emit TrainerEvicted(projectId, trainer, p.currentRound);
    }

    // ---------------------------------------------------------------------------------------------
    // Rounds
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Commits the caller's model update for the current round without revealing it. Once per
     * trainer per round, only while the round is Open. The commit order is the copy check's order.
     * @param projectId The project.
     * @param round The current round (guards against a late transaction landing in the next round).
     * @param commitment keccak256(abi.encode(trainer, projectId, round, cid, salt)); see `commitmentOf`.
     */
    function commitUpdate(uint256 projectId, uint32 round, bytes32 commitment) external {
        Project storage p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        if (round != p.currentRound) revert WrongRound(p.currentRound, round);
        if (commitment == 0) revert EmptyCommitment();
        Seat storage seat = _seats[projectId][msg.sender];
        if (seat.flags & HELD == 0) revert NotTrainer(msg.sender);
        RoundState storage r = _ring[projectId][round & 1];
        Phase phase = _phase(r);
        if (phase != Phase.Open) revert WrongPhase(Phase.Open, phase);
        // forge-lint: disable-next-line(unsafe-typecast) -- rounds <= MAX_ROUNDS (checked at creation)
        uint24 marker = uint24(round + 1);
        if (seat.committedRound == marker) revert AlreadySubmitted(msg.sender, round);
        uint16 index = r.submissions;
        // Bitmaps and the list hold 256 submitters (an eviction and a join within a round could add one).
        if (index == MAX_TRAINERS) revert TooManySubmissions(round);

        r.submissions = index + 1;
        // The round's first committer resets the reveal bitmap (finalize would pay it on every round).
        if (index == 0) r.unrevealed = type(uint256).max;
        seat.commitment = uint192(uint256(commitment) >> 64);
        seat.committedRound = marker;
        // forge-lint: disable-next-line(unsafe-typecast) -- index < 256
        seat.index = uint8(index);
        _submitters[projectId][round & 1].push(index, msg.sender);
        emit UpdateCommitted(projectId, round, msg.sender, index, commitment);
    }

    /**
     * @notice Reveals the update committed this round, after the submission deadline and before the
     * reveal deadline. Only revealed updates are scored; an unrevealed commitment is a missed round.
     * @param projectId The project.
     * @param round The current round.
     * @param cid The IPFS CID of the update (safetensors), as committed.
     * @param salt The salt of the commitment.
     */
    function revealUpdate(uint256 projectId, uint32 round, string calldata cid, bytes32 salt) external {
        Project storage p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        if (round != p.currentRound) revert WrongRound(p.currentRound, round);
        if (bytes(cid).length == 0) revert EmptyCid();
        Seat storage seat = _seats[projectId][msg.sender];
        if (seat.committedRound != uint256(round) + 1) revert NoCommitment(msg.sender, round);
        RoundState storage r = _ring[projectId][round & 1];
        Phase phase = _phase(r);
        if (phase != Phase.Revealing) revert WrongPhase(Phase.Revealing, phase);
        bytes32 expected = keccak256(abi.encode(msg.sender, projectId, round, cid, salt));
        if (seat.commitment != uint192(uint256(expected) >> 64)) revert RevealMismatch(msg.sender, round);
        uint256 index = seat.index;
        uint256 unrevealed = r.unrevealed;
        if ((unrevealed >> index) & 1 == 0) revert UpdateAlreadyRevealed(msg.sender, round);

        r.unrevealed = unrevealed & ~(uint256(1) << index);
        // forge-lint: disable-next-line(unsafe-typecast) -- rounds <= MAX_ROUNDS (checked at creation)
        seat.activeRound = uint24(round + 1);
        if (seat.flags & REVEALED == 0) {
            // First reveal: an honest trainer until flagged.
            seat.flags |= REVEALED;
            p.honest += 1;
        }
        // forge-lint: disable-next-line(unsafe-typecast) -- index < 256
        emit UpdateRevealed(projectId, round, msg.sender, uint16(index), cid);
    }

    /**
     * @notice Posts the aggregation result of the current round. Only the aggregator, only while the
     * round is Aggregating and the aggregator's bond is held.
     * @dev Nothing moves here: slashes and rewards are applied by `finalize`, so voiding a result after
     * an upheld dispute needs no undo.
     * @param projectId The project.
     * @param round The current round.
     * @param globalModelCid CID of the new global model (non-empty; the previous model if nothing was kept).
     * @param reportCid CID of the round report (JSON).
     * @param weights One uint32 contribution weight per committed submitter, in commit order (fixed point,
     * ratios only), packed 8 per word: weight i is bits [32 (i % 8), 32 (i % 8) + 32) of word i / 8. Weights
     * of submitters that did not reveal are ignored.
     * @param flags Bit i set means submitter i is an offender: slashed, and not rewarded. Only revealed
     * submitters can be flagged.
     */
    function postResult(
        uint256 projectId,
        uint32 round,
        string calldata globalModelCid,
        string calldata reportCid,
        uint256[] calldata weights,
        uint256 flags
    ) external {
        RoundState storage r = _requirePostable(projectId, round, weights, flags);
        if (bytes(globalModelCid).length == 0) revert EmptyCid();

        _recordWeights(projectId, round, r, weights, flags);
        r.cids.store(globalModelCid, reportCid);
        emit ResultPosted(projectId, round, globalModelCid, reportCid, weights, flags);
    }

    /**
     * @notice Finalizes the current round and opens the next (or closes the project). Anyone may call.
     * @dev Settles the round by the first rule that applies:
     * - no submissions, window closed: the budget's new part returns to the owner, the carried part stays
     *   with the trainers; the model carries forward;
     * - a result whose challenge period is over (a dispute not ruled on within one aggregation window after
     *   the challenge deadline is rejected by default): slashes flagged submitters into the budget and
     *   credits `budget * w_i / Σw` to the others; the unpaid rest carries to the next round;
     * - no result, and the aggregation deadline plus one aggregation window of grace has passed: the
     *   aggregator's bond (if held) joins the budget, which is split equally among the submitters.
     * @param projectId The project.
     */
    function finalize(uint256 projectId) external {
        Project storage p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        uint32 round = p.currentRound;
        RoundState storage r = _ring[projectId][round & 1];
        Phase phase = _phase(r);

        uint256 budget = r.budget;
        uint256 distributed;
        if (r.submissions == 0 && phase != Phase.Open) {
            // No commitment: nothing to aggregate. The model carries forward; the owner gets the round's
            // new budget back and the trainers keep the carried part.
            _carryModelForward(projectId, round, r);
            uint256 fresh = Math.min(budget, p.perRound);
            p.remainder += fresh.toUint128();
            budget -= fresh;
        } else if (phase == Phase.Aggregating || phase == Phase.Expired) {
            if (_revealed(r) == 0) {
                // Commitments, none revealed: nothing to aggregate; the budget stays with the trainers.
                _carryModelForward(projectId, round, r);
            } else {
                (budget, distributed) = _settleWithoutResult(projectId, p, round, r, budget);
            }
        } else {
            if (phase == Phase.Disputed) budget += _lapseDispute(projectId, p, round, r);
            else if (phase != Phase.Challenge) revert WrongPhase(Phase.Challenge, phase);
            // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
            if (block.timestamp < r.challengeDeadline) revert ChallengePeriodNotOver(r.challengeDeadline);
            (budget, distributed) = _settle(projectId, p, round, r, budget);
        }
        uint256 carried = budget - distributed;
        r.phase = Phase.Final;
        r.budget = budget;
        emit RoundFinalized(projectId, round, distributed, carried);

        p.carry += carried.toUint128();
        if (round + 1 == p.rounds) {
            _close(projectId, p, p.cancelled ? Status.Cancelled : Status.Ended);
            emit ProjectEnded(projectId, p.remainder);
        } else {
            p.currentRound = round + 1;
            _openRound(projectId, p, round + 1);
        }
    }

    /**
     * @notice Disputes the posted result of the current round by paying the dispute bond. Only a
     * trainer of the project or its owner, only during the challenge period.
     * @param projectId The project.
     */
    function dispute(uint256 projectId) external payable nonReentrant {
        Project storage p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        if (msg.sender != p.owner && _accounts[projectId][msg.sender].flags & JOINED == 0) {
            revert NotParticipant(msg.sender);
        }
        uint32 round = p.currentRound;
        RoundState storage r = _ring[projectId][round & 1];
        if (r.phase != Phase.Challenge) revert WrongPhase(Phase.Challenge, _phase(r));
        // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
        if (block.timestamp >= r.challengeDeadline) revert ChallengePeriodOver(r.challengeDeadline);

        ProjectConfig storage cfg = _configs[projectId];
        uint256 bond = cfg.disputeBond;
        r.phase = Phase.Disputed;
        p.disputer = msg.sender;
        emit Disputed(projectId, round, msg.sender, bond);
        _pull(cfg.asset, bond);
    }

    /**
     * @notice Resolves the pending dispute. Only the arbiter, before the ruling deadline (the challenge
     * deadline plus one aggregation window); after it the dispute is rejected by default in `finalize`.
     * @dev Uphold: the result is voided, the aggregator bond is slashed into the trainers' carry, the
     * disputer's bond becomes claimable by the disputer, and the round returns to Aggregating with a fresh
     * deadline (the aggregator must re-post its bond before posting again). Reject: the dispute bond
     * joins the round's budget (the trainers whose pay the dispute held up share it like the rest) and
     * the round returns to Challenge with its original deadline.
     * @param projectId The project.
     * @param uphold Whether the dispute is upheld.
     */
    function resolveDispute(uint256 projectId, bool uphold) external {
        Project storage p = _project(projectId);
        ProjectConfig storage cfg = _configs[projectId];
        if (msg.sender != cfg.arbiter) revert NotArbiter(msg.sender);
        uint32 round = p.currentRound;
        RoundState storage r = _ring[projectId][round & 1];
        if (p.status != Status.Running || r.phase != Phase.Disputed) {
            revert WrongPhase(Phase.Disputed, _phase(r));
        }
        // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
        uint64 rulingDeadline = _rulingDeadline(projectId, r);
        if (block.timestamp >= rulingDeadline) revert RulingPeriodOver(rulingDeadline);

        address challenger = p.disputer;
        p.disputer = address(0);
        if (uphold) {
            uint256 slashed = _slashBond(p);
            _credit(projectId, challenger, cfg.disputeBond);
            // forge-lint: disable-next-line(unsafe-typecast) -- timestamps fit 32 bits until 2106
            uint32 deadline = uint32(block.timestamp + cfg.aggregationWindow);
            // The voided result stays readable (a nonzero challenge deadline marks a posted result).
            r.phase = Phase.Aggregating;
            r.aggregationDeadline = deadline;
            r.weightSum = 0;
            emit DisputeResolved(projectId, round, challenger, true);
            emit AggregatorSlashed(projectId, round, slashed);
            emit AggregationReopened(projectId, round, deadline);
        } else {
            // A frivolous dispute's bond goes to the round's trainers, whose pay it held up.
            r.budget += cfg.disputeBond;
            r.phase = Phase.Challenge;
            emit DisputeResolved(projectId, round, challenger, false);
        }
    }

    /**
     * @notice Expires the current round when the aggregator missed its aggregation deadline: the
     * aggregator bond is slashed into the trainers' carry and the round becomes Expired. Anyone may call.
     * @dev The aggregator may re-post its bond to re-open aggregation; otherwise `finalize` settles the
     * round without a result once its grace period is over. A round without submissions is finalized
     * instead (there was nothing to aggregate).
     * @param projectId The project.
     */
    function expire(uint256 projectId) external {
        Project storage p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        uint32 round = p.currentRound;
        RoundState storage r = _ring[projectId][round & 1];
        Phase phase = _phase(r);
        if (phase != Phase.Expired || r.phase == Phase.Expired) revert WrongPhase(Phase.Expired, phase);
        if (_revealed(r) == 0) revert NoSubmissions(round);

        uint256 slashed = _slashBond(p);
        r.phase = Phase.Expired;
        emit RoundExpired(projectId, round, slashed);
    }

    /**
     * @notice Cancels the project. The owner at any time while it is Pending or Running; anyone once a
     * Pending project has passed its start deadline.
     * @dev The owner gets back only budget of rounds that never had a submission: the unopened rounds and,
     * when it has no submission, the current one. A current round with submissions still settles to its
     * trainers (by result or, failing one, by the no-result rule) and the project closes after it.
     * @param projectId The project.
     */
    function cancel(uint256 projectId) external {
        Project storage p = _project(projectId);
        uint256 refund;
        if (p.status == Status.Pending) {
            if (msg.sender != p.owner) {
                // forge-lint: disable-next-line(block-timestamp) -- a 30-day window; seconds do not matter
                if (block.timestamp < p.startDeadline) revert StartPeriodNotOver(p.startDeadline);
            }
            // Nothing ever ran: the whole pool, dust included, goes back.
            refund = uint256(p.perRound) * p.rounds + p.carry;
            p.carry = 0;
            p.remainder += refund.toUint128();
            _close(projectId, p, Status.Cancelled);
        } else if (p.status == Status.Running) {
            if (msg.sender != p.owner) revert NotOwner(msg.sender);
            if (p.cancelled) revert AlreadyCancelled();
            uint32 round = p.currentRound;
            RoundState storage r = _ring[projectId][round & 1];
            refund = uint256(p.perRound) * (p.rounds - round - 1);
            if (r.submissions == 0) {
                // The current round never had a submission: its new budget goes back too.
                uint256 fresh = Math.min(r.budget, p.perRound);
                refund += fresh;
                p.carry += (r.budget - fresh).toUint128();
                p.remainder += refund.toUint128();
                _close(projectId, p, Status.Cancelled);
            } else {
                p.remainder += refund.toUint128();
                p.rounds = round + 1;
                p.cancelled = true;
            }
        } else {
            revert WrongStatus(p.status);
        }
        emit ProjectCancelled(projectId, refund);
    }

    // ---------------------------------------------------------------------------------------------
    // Payouts
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Pays the caller's claimable balance in this project (rewards, refunded or won dispute bonds).
     * @param projectId The project.
     */
    function claim(uint256 projectId) external nonReentrant {
        Account storage a = _accounts[projectId][msg.sender];
        uint256 amount = a.claimable;
        if (amount == 0) revert NothingToClaim();
        a.claimable = 0;
        emit Claimed(projectId, msg.sender, amount);
        _push(_configs[projectId].asset, msg.sender, amount);
    }

    /**
     * @notice Returns the caller's stake minus slashes after the project Ended or was Cancelled, plus its
     * share of the end pot (what the project left for trainers: slashes and budgets nobody was paid)
     * when it submitted and was never flagged (or, if no such trainer remained, when it submitted at all).
     * @param projectId The project.
     */
    function withdrawStake(uint256 projectId) external nonReentrant {
        Project storage p = _project(projectId);
        _requireClosed(p);
        Account storage a = _accounts[projectId][msg.sender];
        if (a.flags & JOINED == 0) revert NotTrainer(msg.sender);
        if (a.flags & WITHDRAWN != 0) revert AlreadyWithdrawn();
        uint256 amount = a.stake;
        bool eligible = p.endToAll || (a.flags & SLASHED == 0 && _seats[projectId][msg.sender].flags & REVEALED != 0);
        if (p.endShares != 0 && eligible) {
            // The last share takes the division dust.
            uint256 share = p.endPot / p.endShares;
            if (p.endShares == 1) share = p.endPot;
            p.endPot -= uint128(share);
            p.endShares -= 1;
            amount += share;
        }
        a.flags |= WITHDRAWN;
        emit StakeWithdrawn(projectId, msg.sender, amount);
        if (amount != 0) _push(_configs[projectId].asset, msg.sender, amount);
    }

    /**
     * @notice Returns what is left of the aggregator bond to the owner who posted it, after the project
     * Ended or was Cancelled. Only the owner.
     * @param projectId The project.
     */
    function withdrawBond(uint256 projectId) external nonReentrant {
        Project storage p = _project(projectId);
        if (msg.sender != p.owner) revert NotOwner(msg.sender);
        _requireClosed(p);
        uint256 amount = p.bondBalance;
        if (amount == 0) revert NothingToWithdraw();
        p.bondBalance = 0;
        p.bonded = false;
        emit BondWithdrawn(projectId, msg.sender, amount);
        _push(_configs[projectId].asset, msg.sender, amount);
    }

    /**
     * @notice Pays the owner what is its own: the creation dust and the budgets of rounds that never had a
     * submission. Only the owner, after the project Ended or was Cancelled.
     * @param projectId The project.
     */
    function withdrawRemainder(uint256 projectId) external nonReentrant {
        Project storage p = _project(projectId);
        if (msg.sender != p.owner) revert NotOwner(msg.sender);
        _requireClosed(p);
        uint256 amount = p.remainder;
        if (amount == 0) revert NothingToWithdraw();
        p.remainder = 0;
        emit RemainderWithdrawn(projectId, msg.sender, amount);
        _push(_configs[projectId].asset, msg.sender, amount);
    }

    // ---------------------------------------------------------------------------------------------
    // Who scores (the seam for an aggregator committee)
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice What the committee checks on each of its members' calls, in one read: the round's phase
     * (Aggregating and Expired derived from time), aggregation deadline, submission count and the bitmap
     * of submitters that revealed (bit i = submitter i, in commit order). A round the project does not
     * hold (never opened, or older than the previous one) reads `None` and zeroes.
     * @dev Here rather than in {MarketplaceViews}: one call, two storage slots, no delegatecall, where
     * `getRound` + `getReveals` read the CIDs and the schedule too (the committee calls it up to 2k + 1
     * times a round).
     */
    function aggregationOf(uint256 projectId, uint32 round)
        external
        view
        returns (Phase phase, uint256 aggregationDeadline, uint256 submissions, uint256 revealed)
    {
        RoundState storage r = _ring[projectId][round & 1];
        if (r.number != round) return (Phase.None, 0, 0, 0);
        return (_phase(r), r.aggregationDeadline, r.submissions, _revealed(r));
    }

    /// @dev Reverts unless the caller may post results for the project: the one check of the aggregator role.
    function _requireAggregator(uint256 projectId) internal view virtual {
        if (msg.sender != _schedules[projectId].aggregator) revert NotAggregator(msg.sender);
    }

    // ---------------------------------------------------------------------------------------------
    // Internal helpers
    // ---------------------------------------------------------------------------------------------

    /// @dev Proxy hook: project setup goes to the setup module, everything else (read-only) to the views.
    function _implementation() internal view override returns (address) {
        bytes4 sig = msg.sig;
        if (sig == MarketplaceSetup.createProject.selector || sig == MarketplaceSetup.revealValidation.selector) {
            return SETUP;
        }
        return VIEWS;
    }

    /// @dev Slashes flagged submitters into `budget`, then credits rewards pro rata to unflagged weights.
    function _settle(uint256 projectId, Project storage p, uint32 round, RoundState storage r, uint256 budget)
        private
        returns (uint256 newBudget, uint256 distributed)
    {
        uint256 n = r.submissions;
        uint256 weightSum = r.weightSum;
        uint256 flags = r.flagged ? _results[projectId][round & 1].flags : r.lowFlags;
        newBudget = budget;
        if (flags != 0) newBudget += _slash(projectId, p, round, n, flags);
        // Unrevealed submitters are paid nothing, like flagged ones.
        if (weightSum != 0) distributed = _reward(projectId, round, n, flags | ~_revealed(r), newBudget, weightSum);
    }

    /// @dev Cuts `stake * slashBps` (at most what is left) from each flagged submitter; returns the total.
    /// A trainer flagged once no longer counts as honest for the end pot.
    function _slash(uint256 projectId, Project storage p, uint32 round, uint256 n, uint256 flags)
        private
        returns (uint256 total)
    {
        SubmitterList.List storage list = _submitters[projectId][round & 1];
        uint256 penalty = p.penalty;
        uint256 honest = p.honest;
        for (uint256 i; i < n; ++i) {
            // forge-lint: disable-next-line(incorrect-shift) -- bit i of flags
            if (flags & (1 << i) == 0) continue;
            address trainer = list.at(i);
            Account storage a = _accounts[projectId][trainer];
            uint256 cut = Math.min(penalty, a.stake);
            // forge-lint: disable-next-line(unsafe-typecast) -- cut <= a.stake, a uint88
            a.stake -= uint88(cut);
            if (a.flags & SLASHED == 0) {
                a.flags |= SLASHED;
                --honest;
            }
            total += cut;
            emit TrainerSlashed(projectId, round, trainer, cut);
        }
        // forge-lint: disable-next-line(unsafe-typecast) -- only decreased from a uint16
        p.honest = uint16(honest);
    }

    /// @dev Credits `budget * w_i / weightSum` to each submitter outside `excluded` with a nonzero weight;
    /// returns the total credited. Reads each packed weight word once per 8 trainers.
    function _reward(uint256 projectId, uint32 round, uint256 n, uint256 excluded, uint256 budget, uint256 weightSum)
        private
        returns (uint256 total)
    {
        SubmitterList.List storage list = _submitters[projectId][round & 1];
        mapping(address => Account) storage accounts = _accounts[projectId];
        uint256 word;
        for (uint256 i; i < n;) {
            // once per 8 trainers: the next packed weight word
            if (i & 7 == 0) word = ~_results[projectId][round & 1].weights[i >> 3];
            uint256 w = (word >> ((i & 7) << 5)) & 0xffffffff;
            if (w != 0 && (excluded >> i) & 1 == 0) {
                uint256 reward;
                unchecked {
                    // budget < 2^130 and w < 2^32: no overflow; weightSum != 0 (the caller checks);
                    // Σ budget * w_i / weightSum <= budget
                    reward = budget * w / weightSum;
                    total += reward;
                }
                address trainer = list.at(i);
                accounts[trainer].claimable += reward.toUint104();
                emit RewardCredited(projectId, round, trainer, reward);
            }
            unchecked {
                ++i; // i < n <= 256
            }
        }
    }

    /// @dev No result came by the aggregation deadline plus its grace: the held bond (if any) joins the
    /// budget, which is credited in equal parts to the submitters that revealed. Returns the budget with
    /// the bond and what was credited.
    function _settleWithoutResult(
        uint256 projectId,
        Project storage p,
        uint32 round,
        RoundState storage r,
        uint256 budget
    ) private returns (uint256, uint256 distributed) {
        uint64 grace = uint64(r.aggregationDeadline) + _schedules[projectId].aggregationWindow;
        // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
        if (block.timestamp < grace) revert GracePeriodNotOver(grace);
        if (p.bonded) {
            uint256 slashed = _slashBond(p);
            // The slashed bond went to the carry; this round's submitters were the ones let down.
            p.carry -= uint128(slashed);
            budget += slashed;
            emit AggregatorSlashed(projectId, round, slashed);
        }
        uint256 revealed = _revealed(r);
        uint256 each = budget / _popcount(revealed);
        SubmitterList.List storage list = _submitters[projectId][round & 1];
        mapping(address => Account) storage accounts = _accounts[projectId];
        for (uint256 i; revealed >> i != 0; ++i) {
            if ((revealed >> i) & 1 == 0) continue;
            _creditReward(accounts, projectId, round, list.at(i), each);
            distributed += each;
        }
        emit RoundSettledWithoutResult(projectId, round, each);
        return (budget, distributed);
    }

    function _popcount(uint256 x) private pure returns (uint256 count) {
        for (; x != 0; x &= x - 1) {
            ++count;
        }
    }

    /// @dev A round settled without aggregation keeps the previous global model.
    function _carryModelForward(uint256 projectId, uint32 round, RoundState storage r) private {
        (string memory model,) = _ring[projectId][(round + 1) & 1].cids.load();
        r.cids.store(model, "");
    }

    /// @dev The arbiter let the ruling deadline pass: the dispute is rejected (the result stands; the bond
    /// is returned, to join the round's budget, as in a rejection). Voiding by default would let any
    /// disputer with an absent arbiter erase honest results and slash the aggregator for nothing.
    function _lapseDispute(uint256 projectId, Project storage p, uint32 round, RoundState storage r)
        private
        returns (uint256 bond)
    {
        uint64 deadline = _rulingDeadline(projectId, r);
        // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
        if (block.timestamp < deadline) revert RulingPeriodNotOver(deadline);
        address challenger = p.disputer;
        p.disputer = address(0);
        bond = _configs[projectId].disputeBond;
        r.phase = Phase.Challenge;
        emit DisputeLapsed(projectId, round, challenger);
    }

    function _rulingDeadline(uint256 projectId, RoundState storage r) private view returns (uint64) {
        return uint64(r.challengeDeadline) + _schedules[projectId].aggregationWindow;
    }

    /// @dev Takes the whole aggregator bond into the trainers' carry; returns it.
    function _slashBond(Project storage p) private returns (uint256 slashed) {
        slashed = p.bondBalance;
        p.bondBalance = 0;
        p.bonded = false;
        // forge-lint: disable-next-line(unsafe-typecast) -- bondBalance is a uint96
        p.carry += uint128(slashed);
    }

    /// @dev Closes the project: what the trainers' carry still holds becomes the end pot, in one share per
    /// honest trainer (revealed an update, never flagged) or, with none, per trainer that ever joined. A
    /// nonzero carry comes from rounds with commitments, so there is always someone to go to.
    function _close(uint256 projectId, Project storage p, Status status) private {
        p.status = status;
        uint256 pot = p.carry;
        if (pot == 0) return;
        p.carry = 0;
        bool toAll = p.honest == 0;
        uint16 shares = toAll ? p.members : p.honest;
        p.endPot = pot.toUint128();
        p.endShares = shares;
        p.endToAll = toAll;
        emit EndPotSet(projectId, pot, shares, toAll);
    }

    /// @dev Checks that the aggregator may post these packed weights and flags for `round` now.
    function _requirePostable(uint256 projectId, uint32 round, uint256[] calldata weights, uint256 flags)
        private
        view
        returns (RoundState storage r)
    {
        Project storage p = _project(projectId);
        _requireAggregator(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        if (round != p.currentRound) revert WrongRound(p.currentRound, round);
        r = _ring[projectId][round & 1];
        Phase phase = _phase(r);
        if (phase != Phase.Aggregating) revert WrongPhase(Phase.Aggregating, phase);
        if (!p.bonded) revert BondNotPosted();
        uint256 n = r.submissions;
        if (n == 0) revert NoSubmissions(round);
        if (weights.length != (n + 7) >> 3) revert LengthMismatch((n + 7) >> 3, weights.length);
        // Lanes past the last submitter must be empty.
        if (n & 7 != 0 && weights[n >> 3] >> ((n & 7) << 5) != 0) revert WeightsBeyondSubmitters(n >> 3);
        if (n < 256 && flags >> n != 0) revert InvalidFlags(flags, n);
        uint256 revealed = _revealed(r);
        // Nobody saw an unrevealed update: it can be neither scored nor flagged.
        if (flags & ~revealed != 0) revert FlagsOnUnrevealed(flags, revealed);
    }

    /// @dev Stores a posted result's weights and flags and moves the round to Challenge.
    function _recordWeights(
        uint256 projectId,
        uint32 round,
        RoundState storage r,
        uint256[] calldata weights,
        uint256 flags
    ) private {
        // Unrevealed submitters' weights are ignored, like flagged ones'.
        uint256 sum = _results[projectId][round & 1].store(weights, flags | ~_revealed(r));
        r.phase = Phase.Challenge;
        // forge-lint: disable-next-line(unsafe-typecast) -- sum <= 256 * (2^32 - 1) < 2^40
        r.weightSum = uint40(sum);
        r.challengeDeadline = uint32(block.timestamp + _schedules[projectId].challengePeriod);
        // Flags that fit 32 bits live in the header, which is written anyway; wider ones in the ring slot.
        bool wide = flags >> 32 != 0;
        r.flagged = wide;
        if (wide) _results[projectId][round & 1].flags = flags;
        // forge-lint: disable-next-line(unsafe-typecast) -- zero unless flags < 2^32
        r.lowFlags = wide ? 0 : uint32(flags);
    }

    function _openRound(uint256 projectId, Project storage p, uint32 round) private {
        Schedule storage schedule = _schedules[projectId];
        RoundState storage r = _ring[projectId][round & 1];
        uint256 budget = uint256(p.perRound) + p.carry;
        p.carry = 0;
        // forge-lint: disable-next-line(unsafe-typecast) -- timestamps fit 32 bits until 2106
        uint32 submissionDeadline = uint32(block.timestamp + schedule.submissionWindow);
        uint32 revealDeadline = submissionDeadline + schedule.revealWindow;
        uint32 aggregationDeadline = revealDeadline + schedule.aggregationWindow;

        // forge-lint: disable-next-line(unsafe-typecast) -- round < rounds <= MAX_ROUNDS < 2^24 - 1
        r.number = uint24(round);
        r.phase = Phase.Open;
        r.submissions = 0;
        r.flagged = false;
        r.lowFlags = 0;
        r.submissionDeadline = submissionDeadline;
        r.revealDeadline = revealDeadline;
        r.aggregationDeadline = aggregationDeadline;
        r.challengeDeadline = 0;
        r.weightSum = 0;
        r.budget = budget;
        emit RoundOpened(projectId, round, budget, submissionDeadline, aggregationDeadline);
    }

    /// @dev Credits a round's reward to `trainer` and records it.
    function _creditReward(
        mapping(address => Account) storage accounts,
        uint256 projectId,
        uint32 round,
        address trainer,
        uint256 amount
    ) private {
        accounts[trainer].claimable += amount.toUint104();
        emit RewardCredited(projectId, round, trainer, amount);
    }

    /// @dev Pre-fills the submitter-list words that every member so far could use, in both ring entries,
    /// so that committing never pays for a fresh slot: the joiner pays it, once.
    function _prefillSubmitterSlots(uint256 projectId, Project storage p) private {
        SubmitterList.List[2] storage lists = _submitters[projectId];
        uint256 n = Math.min(p.members, MAX_TRAINERS);
        lists[0].prefill(p.listWords, n);
        // forge-lint: disable-next-line(unsafe-typecast) -- at most 160 words for 256 submitters
        p.listWords = uint16(lists[1].prefill(p.listWords, n));
    }

    function _credit(uint256 projectId, address account, uint256 amount) private {
        _accounts[projectId][account].claimable += amount.toUint104();
    }

    function _requireClosed(Project storage p) private view {
        if (p.status != Status.Ended && p.status != Status.Cancelled) revert WrongStatus(p.status);
    }
}
