// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/**
 * @title Merit Marketplace
 * @notice One contract holding many collaborative-training projects. An owner escrows a reward pool,
 * trainers stake and submit model updates (by IPFS CID), an aggregator scores each round and posts
 * contribution weights and offender flags, and this contract turns those into rewards and slashes.
 *
 * @dev Round lifecycle: Open --deadline--> Aggregating --postResult--> Challenge --period--> Final.
 * Aggregating and Expired are derived from time in views; `expire` records Expired and slashes the
 * aggregator bond. A dispute moves Challenge to Disputed; the arbiter sends it back to Challenge
 * (rejected) or to Aggregating with a fresh deadline (upheld, result voided).
 *
 * Storage is laid out for the per-round gas budget:
 * - the headers, budgets and CIDs of rounds live in a two-slot ring per project (round r in slot r % 2),
 *   pre-filled at creation so every later write is nonzero-to-nonzero. The current and previous rounds
 *   are therefore readable in full; older rounds are reconstructed from events (`RoundOpened`,
 *   `ResultPosted`, `RoundFinalized`);
 * - the posted weights (packed 8 per slot, stored inverted so that a word is never zero in practice) and
 *   offender flags live in a second two-entry ring per project, pre-filled at creation for
 *   ceil(maxTrainers / 8) words per entry (plus the flags word): posting rewrites nonzero slots (5,000 gas
 *   each) instead of creating fresh ones (22,100). Flags that fit 32 bits are kept in the round header
 *   instead, which is written anyway. `getResult` therefore covers the current and previous rounds only
 *   (older results are in `ResultPosted` events);
 * - both result CIDs are packed into one run of words per ring entry (lengths, then the bytes);
 * - the submitters of every round are kept forever, their addresses packed 8 per 5 slots, so settling a
 *   round reads 5 cold slots per 8 trainers instead of 8;
 * - a participant's stake and claimable balance share one slot, nonzero from the moment they join,
 *   so crediting a reward costs a warm-slot rewrite, not a fresh slot.
 *
 * Funds conservation: for every asset, this contract's balance equals the sum over projects of
 * unopened budgets + carry + the current round's budget + stakes + claimable + bonds + held dispute
 * bond + owner remainder. Every transfer out zeroes the paid balance first (checks-effects-interactions)
 * and runs under a transient reentrancy guard.
 */
contract Marketplace is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    // ---------------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------------

    enum Phase {
        None,
        Open,
        Aggregating,
        Challenge,
        Disputed,
        Final,
        Expired
    }

    enum Status {
        Pending,
        Running,
        Ended,
        Cancelled
    }

    /// @notice Why `createProject` rejected a configuration.
    enum ConfigError {
        ZeroRounds,
        PoolTooSmall,
        AmountTooLarge,
        MinTrainers,
        SlashBps,
        ZeroAggregator,
        ZeroArbiter,
        ZeroWindow,
        EmptySpec,
        EmptyInitialModel,
        TooManyRounds
    }

    struct ProjectConfig {
        address asset; // address(0) = ETH, else an ERC-20
        uint256 pool; // full reward escrow, deposited at creation
        uint256 stake; // trainer stake
        uint256 aggregatorBond;
        uint256 disputeBond;
        address aggregator;
        address arbiter;
        uint32 rounds;
        uint16 minTrainers;
        uint16 maxTrainers; // <= MAX_TRAINERS
        uint16 slashBps; // share of stake slashed per offence
        uint32 submissionWindow;
        uint32 aggregationWindow;
        uint32 challengePeriod;
        string specCid;
        string initialModelCid;
        bytes32 validationCommitment; // keccak256(abi.encode(validationCid, salt))
    }

    /// @dev Mutable per-project state. Slot 0 is read by almost every call.
    struct Project {
        // slot 0
        address owner;
        Status status;
        uint32 currentRound;
        uint16 trainerCount;
        bool bonded;
        bool revealed;
        // slot 1: what finalize needs to open the next round
        uint96 perRound; // pool / rounds
        uint128 carry; // dust, unspent budgets and slashed bonds waiting for the next round
        uint32 rounds;
        // slot 2
        uint96 bondBalance; // aggregator bond held
        uint128 remainder; // owner-withdrawable after Ended / Cancelled
        // slot 3
        address disputer; // nonzero while a round is Disputed
        uint96 penalty; // stake * slashBps / 10000, cut per offence
        string validationCid;
    }

    /// @dev The aggregator and the round timing, copied from the config into one slot for per-round calls.
    struct Schedule {
        address aggregator;
        uint32 submissionWindow;
        uint32 aggregationWindow;
        uint32 challengePeriod;
    }

    /// @dev One participant in one project, in a single slot that is nonzero from `join` on: crediting
    /// a reward or recording a submission rewrites a warm slot instead of creating one.
    struct Account {
        uint104 claimable;
        uint88 stake; // remaining stake (config stake minus slashes); kept after withdrawal for `slashed`
        uint24 joinedRound;
        uint24 submittedRound; // 1 + the last round submitted in; 0 = none
        bool joined;
        bool withdrawn;
    }

    /// @dev Ring entry for round `number`. Slot 0 is the header.
    struct RoundState {
        // slot 0 (all 256 bits used)
        uint24 number; // rounds are numbered below MAX_ROUNDS; NO_ROUND before the entry's first round
        Phase phase; // stored phase: Open, Aggregating, Challenge, Disputed, Final or Expired
        uint16 submissions;
        bool flagged; // the posted flags reach beyond bit 31: they are in the result ring's `flags` slot
        bool posted; // a result (possibly voided by an upheld dispute) was posted for this round
        uint32 lowFlags; // the posted flags when they fit 32 bits (offenders among the first 32 submitters)
        uint40 submissionDeadline;
        uint40 aggregationDeadline;
        uint40 challengeDeadline;
        uint40 weightSum; // Σ weights of unflagged submitters (<= 256 * 2^32)
        // slot 1
        uint256 budget;
        // the global-model and report CIDs, packed: word 0 starts with their byte lengths (uint32 each),
        // then both CIDs follow back to back (see `_storeCids`); ~4 slots for two CIDv1 strings
        mapping(uint256 word => uint256) cids;
    }

    /// @dev Per-round data kept for the life of the contract: the submitters' addresses packed
    /// back to back, 160 bits each (8 per 5 words); submitter i occupies bits [160 i, 160 i + 160).
    struct RoundData {
        mapping(uint256 word => uint256) submitters;
    }

    /// @dev Ring entry for a round's posted result: 32 words of inverted packed weights (8 uint32 per
    /// word, `~word` so an all-zero group does not empty the slot), then the flags.
    struct ResultSlots {
        uint256[32] weights;
        uint256 flags; // meaningful only while the round header's `flagged` is set
    }

    // ---------------------------------------------------------------------------------------------
    // Constants and storage
    // ---------------------------------------------------------------------------------------------

    /// @notice Upper bound on trainers per project; bounds every loop in the contract.
    uint256 public constant MAX_TRAINERS = 256;
    /// @notice Scale the aggregator normalises weights to. The contract only uses ratios.
    uint256 public constant WEIGHT_SCALE = 1e9;
    uint256 private constant BPS = 10_000;
    /// @notice Upper bound on rounds per project (round numbers are stored in 24 bits).
    uint256 public constant MAX_ROUNDS = type(uint24).max - 1;
    uint24 private constant NO_ROUND = type(uint24).max;
    /// @dev Placeholder written to a trainer's update slot at join, so submissions rewrite a warm slot.
    bytes32 private constant NO_UPDATE = bytes32(uint256(1));

    uint256 private _projectCount;
    mapping(uint256 projectId => ProjectConfig) private _configs;
    mapping(uint256 projectId => Schedule) private _schedules;
    mapping(uint256 projectId => Project) private _projects;
    mapping(uint256 projectId => mapping(address account => Account)) private _accounts;
    mapping(uint256 projectId => RoundState[2]) private _ring;
    mapping(uint256 projectId => mapping(uint32 round => RoundData)) private _rounds;
    mapping(uint256 projectId => ResultSlots[2]) private _results;
    /// keccak256 of each trainer's latest update CID (its round is the Account's `submittedRound`);
    /// every update CID is in its `UpdateSubmitted` event.
    mapping(uint256 projectId => mapping(address trainer => bytes32)) private _latestUpdate;

    // ---------------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------------

    event ProjectCreated(
        uint256 indexed projectId,
        address indexed owner,
        address indexed asset,
        uint256 pool,
        uint32 rounds,
        address aggregator,
        address arbiter,
        string specCid,
        string initialModelCid,
        bytes32 validationCommitment
    );
    event AggregatorBonded(uint256 indexed projectId, address indexed aggregator, uint256 amount);
    event TrainerJoined(uint256 indexed projectId, address indexed trainer, uint32 joinedRound, uint256 stake);
    event ProjectStarted(uint256 indexed projectId);
    event RoundOpened(
        uint256 indexed projectId,
        uint32 indexed round,
        uint256 budget,
        uint64 submissionDeadline,
        uint64 aggregationDeadline
    );
    event UpdateSubmitted(
        uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint16 index, string cid
    );
    event ResultPosted(
        uint256 indexed projectId,
        uint32 indexed round,
        string globalModelCid,
        string reportCid,
        uint32[] weights,
        uint256 flags
    );
    event TrainerSlashed(uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint256 amount);
    event RewardCredited(uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint256 amount);
    event RoundFinalized(uint256 indexed projectId, uint32 indexed round, uint256 distributed, uint256 carried);
    event Disputed(uint256 indexed projectId, uint32 indexed round, address indexed disputer, uint256 bond);
    event DisputeResolved(uint256 indexed projectId, uint32 indexed round, address indexed disputer, bool upheld);
    event AggregatorSlashed(uint256 indexed projectId, uint32 indexed round, uint256 amount);
    event AggregationReopened(uint256 indexed projectId, uint32 indexed round, uint64 aggregationDeadline);
    event RoundExpired(uint256 indexed projectId, uint32 indexed round, uint256 bondSlashed);
    event ProjectCancelled(uint256 indexed projectId, uint256 refunded);
    event ProjectEnded(uint256 indexed projectId, uint256 remainder);
    event Claimed(uint256 indexed projectId, address indexed account, uint256 amount);
    event StakeWithdrawn(uint256 indexed projectId, address indexed trainer, uint256 amount);
    event BondWithdrawn(uint256 indexed projectId, address indexed aggregator, uint256 amount);
    event RemainderWithdrawn(uint256 indexed projectId, address indexed owner, uint256 amount);
    event ValidationRevealed(uint256 indexed projectId, string validationCid, bytes32 salt);

    // ---------------------------------------------------------------------------------------------
    // Errors
    // ---------------------------------------------------------------------------------------------

    error UnknownProject(uint256 projectId);
    error InvalidConfig(ConfigError reason);
    error TooManyTrainers(uint256 maxTrainers, uint256 limit);
    error WrongValue(uint256 expected, uint256 actual);
    error TransferAmountMismatch(uint256 expected, uint256 received);
    error NotOwner(address caller);
    error NotAggregator(address caller);
    error NotArbiter(address caller);
    error NotTrainer(address caller);
    error NotParticipant(address caller);
    error WrongStatus(Status actual);
    error WrongPhase(Phase expected, Phase actual);
    error WrongRound(uint32 expected, uint32 actual);
    error AlreadyJoined(address trainer);
    error ProjectFull(uint16 maxTrainers);
    error NotEnoughTrainers(uint16 have, uint16 need);
    error BondNotPosted();
    error AlreadyBonded();
    error AlreadySubmitted(address trainer, uint32 round);
    error LengthMismatch(uint256 expected, uint256 actual);
    error InvalidFlags(uint256 flags, uint256 submitters);
    error EmptyCid();
    error NoSubmissions(uint32 round);
    error ChallengePeriodNotOver(uint64 challengeDeadline);
    error ChallengePeriodOver(uint64 challengeDeadline);
    error ResultPending(uint32 round);
    error NothingToClaim();
    error NothingToWithdraw();
    error AlreadyWithdrawn();
    error BadReveal();
    error AlreadyRevealed();

    // ---------------------------------------------------------------------------------------------
    // Project setup
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Creates a project and escrows its whole reward pool.
     * @dev For ETH (`cfg.asset == address(0)`) send exactly `cfg.pool`; for an ERC-20 approve `cfg.pool`
     * first and send no ETH. Tokens that deliver less than asked (fee-on-transfer) are rejected.
     * @param cfg The fixed project parameters; see {ProjectConfig}.
     * @return projectId The new project's id; ids start at 1.
     */
    function createProject(ProjectConfig calldata cfg) external payable nonReentrant returns (uint256 projectId) {
        _validateConfig(cfg);

        projectId = ++_projectCount;
        _configs[projectId] = cfg;

        Project storage p = _projects[projectId];
        p.owner = msg.sender;
        p.perRound = uint96(cfg.pool / cfg.rounds);
        p.carry = uint128(cfg.pool % cfg.rounds);
        p.rounds = cfg.rounds;
        // forge-lint: disable-next-line(unsafe-typecast) -- penalty <= stake <= type(uint88).max (checked in _validateConfig)
        p.penalty = uint96(cfg.stake * cfg.slashBps / BPS);
        _schedules[projectId] = Schedule({
            aggregator: cfg.aggregator,
            submissionWindow: cfg.submissionWindow,
            aggregationWindow: cfg.aggregationWindow,
            challengePeriod: cfg.challengePeriod
        });

        // Pre-fill both ring entries so round writes never pay for fresh slots. The previous round of
        // round 0 is entry 1, whose model is the initial model: `globalModelCid` reads it before round 0
        // is final.
        RoundState[2] storage ring = _ring[projectId];
        for (uint256 i; i < 2; ++i) {
            ring[i].number = NO_ROUND;
            ring[i].budget = 1;
            _storeCids(ring[i], cfg.initialModelCid, cfg.initialModelCid);
            // Nonzero placeholders for the weight words a round can use, and the flags: posting a result
            // then never writes a fresh slot.
            ResultSlots storage res = _results[projectId][i];
            uint256 words = (uint256(cfg.maxTrainers) + 7) >> 3;
            for (uint256 w; w < words; ++w) {
                res.weights[w] = 1;
            }
            res.flags = 1;
        }

        emit ProjectCreated(
            projectId,
            msg.sender,
            cfg.asset,
            cfg.pool,
            cfg.rounds,
            cfg.aggregator,
            cfg.arbiter,
            cfg.specCid,
            cfg.initialModelCid,
            cfg.validationCommitment
        );
        _pull(cfg.asset, cfg.pool);
    }

    /**
     * @notice Posts the aggregator bond. Only the project's aggregator, while the project is Pending or
     * Running and no bond is currently held.
     * @dev After `expire` or an upheld dispute the bond is gone; posting it again re-opens an Expired
     * round for aggregation with a fresh aggregation deadline.
     * @param projectId The project.
     */
    function postAggregatorBond(uint256 projectId) external payable nonReentrant {
        Project storage p = _project(projectId);
        ProjectConfig storage cfg = _configs[projectId];
        if (msg.sender != cfg.aggregator) revert NotAggregator(msg.sender);
        if (p.status != Status.Pending && p.status != Status.Running) revert WrongStatus(p.status);
        if (p.bonded) revert AlreadyBonded();

        uint256 amount = cfg.aggregatorBond;
        p.bonded = true;
        p.bondBalance += amount.toUint96();
        emit AggregatorBonded(projectId, msg.sender, amount);

        if (p.status == Status.Running) {
            RoundState storage r = _ring[projectId][p.currentRound & 1];
            // Expired, whether recorded by `expire` or only by the clock (a bond re-posted late after an
            // upheld dispute): a fresh deadline, so the new bond is not slashed for the old delay.
            if (_phase(r) == Phase.Expired) {
                uint40 deadline = uint40(block.timestamp + cfg.aggregationWindow);
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
     * @param projectId The project.
     */
    function join(uint256 projectId) external payable nonReentrant {
        Project storage p = _project(projectId);
        ProjectConfig storage cfg = _configs[projectId];
        uint32 joinedRound;
        if (p.status == Status.Running) {
            Phase phase = _phase(_current(projectId, p));
            if (phase != Phase.Open) revert WrongPhase(Phase.Open, phase);
            joinedRound = p.currentRound;
        } else if (p.status != Status.Pending) {
            revert WrongStatus(p.status);
        }
        Account storage a = _accounts[projectId][msg.sender];
        if (a.joined) revert AlreadyJoined(msg.sender);
        if (p.trainerCount >= cfg.maxTrainers) revert ProjectFull(cfg.maxTrainers);

        uint256 stake = cfg.stake;
        p.trainerCount += 1;
        a.joined = true;
        // forge-lint: disable-next-line(unsafe-typecast) -- stake <= type(uint88).max (checked in _validateConfig)
        a.stake = uint88(stake);
        // forge-lint: disable-next-line(unsafe-typecast) -- rounds <= MAX_ROUNDS (checked in _validateConfig)
        a.joinedRound = uint24(joinedRound);
        _latestUpdate[projectId][msg.sender] = NO_UPDATE;
        emit TrainerJoined(projectId, msg.sender, joinedRound, stake);
        _pull(cfg.asset, stake);
    }

    /**
     * @notice Starts a Pending project: opens round 0. Anyone may call it once the aggregator bond is
     * posted and at least `minTrainers` trainers have joined.
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
    }

    // ---------------------------------------------------------------------------------------------
    // Rounds
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Commits the caller's model update for the current round. Once per trainer per round, only
     * while the round is Open.
     * @dev Stores keccak256(bytes(cid)) as the trainer's latest update and the submission order; the
     * full CID is in the event.
     * @param projectId The project.
     * @param round The current round (guards against a late transaction landing in the next round).
     * @param cid The IPFS CID of the update (safetensors).
     */
    function submitUpdate(uint256 projectId, uint32 round, string calldata cid) external {
        Project storage p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        if (round != p.currentRound) revert WrongRound(p.currentRound, round);
        if (bytes(cid).length == 0) revert EmptyCid();
        Account storage a = _accounts[projectId][msg.sender];
        if (!a.joined) revert NotTrainer(msg.sender);
        RoundState storage r = _ring[projectId][round & 1];
        Phase phase = _phase(r);
        if (phase != Phase.Open) revert WrongPhase(Phase.Open, phase);
        // forge-lint: disable-next-line(unsafe-typecast) -- rounds <= MAX_ROUNDS (checked in _validateConfig)
        uint24 marker = uint24(round + 1);
        if (a.submittedRound == marker) revert AlreadySubmitted(msg.sender, round);

        uint16 index = r.submissions;
        r.submissions = index + 1;
        a.submittedRound = marker;
        _latestUpdate[projectId][msg.sender] = keccak256(bytes(cid));
        _pushSubmitter(_rounds[projectId][round], index, msg.sender);
        emit UpdateSubmitted(projectId, round, msg.sender, index, cid);
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
     * @param weights One contribution weight per submitter, in submission order (fixed point, ratios only).
     * @param flags Bit i set means submitter i is an offender: slashed, and not rewarded.
     */
    function postResult(
        uint256 projectId,
        uint32 round,
        string calldata globalModelCid,
        string calldata reportCid,
        uint32[] calldata weights,
        uint256 flags
    ) external {
        RoundState storage r = _requirePostable(projectId, round, weights.length, flags);
        if (bytes(globalModelCid).length == 0) revert EmptyCid();

        uint256 sum = _storeResult(_results[projectId][round & 1], weights, flags);
        r.phase = Phase.Challenge;
        r.posted = true;
        // forge-lint: disable-next-line(unsafe-typecast) -- sum <= 256 * (2^32 - 1) < 2^40
        r.weightSum = uint40(sum);
        r.challengeDeadline = uint40(block.timestamp + _schedules[projectId].challengePeriod);
        // Flags that fit 32 bits live in the header, which is written anyway; wider ones in the ring slot.
        bool wide = flags >> 32 != 0;
        r.flagged = wide;
        // forge-lint: disable-next-line(unsafe-typecast) -- zero unless flags < 2^32
        r.lowFlags = wide ? 0 : uint32(flags);
        _storeCids(r, globalModelCid, reportCid);
        emit ResultPosted(projectId, round, globalModelCid, reportCid, weights, flags);
    }

    /**
     * @notice Finalizes the current round once its challenge period is over: slashes flagged trainers
     * into the round budget, credits `budget * w_i / Σw` to each unflagged trainer, carries dust (or the
     * whole budget when Σw = 0) into the next round, then opens the next round or ends the project.
     * @dev A round with no submissions needs no result: anyone may finalize it once its submission
     * window has closed, carrying its whole budget. Anyone may call.
     * @param projectId The project.
     */
    function finalize(uint256 projectId) external {
        (Project storage p, uint32 round, RoundState storage r, Phase phase) = _runningRound(projectId);

        uint256 budget = r.budget;
        uint256 distributed;
        if (r.submissions == 0 && (phase == Phase.Aggregating || phase == Phase.Expired)) {
            // Nothing to aggregate: the model carries forward unchanged.
            (string memory model,) = _loadCids(_ring[projectId][(round + 1) & 1]);
            _storeCids(r, model, "");
        } else {
            if (phase != Phase.Challenge) revert WrongPhase(Phase.Challenge, phase);
            // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
            if (block.timestamp < r.challengeDeadline) revert ChallengePeriodNotOver(r.challengeDeadline);
            (budget, distributed) = _settle(projectId, round, r, budget);
        }

        uint256 carried = budget - distributed;
        r.phase = Phase.Final;
        r.budget = budget;
        emit RoundFinalized(projectId, round, distributed, carried);

        uint256 carry = p.carry + carried;
        if (round + 1 == p.rounds) {
            p.carry = 0;
            p.remainder += carry.toUint128();
            p.status = Status.Ended;
            emit ProjectEnded(projectId, carry);
        } else {
            p.carry = carry.toUint128();
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
        if (msg.sender != p.owner && !_accounts[projectId][msg.sender].joined) revert NotParticipant(msg.sender);
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
     * @notice Resolves the pending dispute. Only the arbiter.
     * @dev Uphold: the result is voided, the aggregator bond is slashed into the carry, the disputer's
     * bond becomes claimable by the disputer, and the round returns to Aggregating with a fresh
     * deadline (the aggregator must re-post its bond before posting again). Reject: the dispute bond
     * becomes claimable by the aggregator and the round returns to Challenge with its original deadline,
     * so it may be finalizable at once.
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

        address challenger = p.disputer;
        p.disputer = address(0);
        uint256 bond = cfg.disputeBond;
        if (uphold) {
            uint256 slashed = p.bondBalance;
            p.bondBalance = 0;
            p.bonded = false;
            // forge-lint: disable-next-line(unsafe-typecast) -- bondBalance is a uint96
            p.carry += uint128(slashed);
            _credit(projectId, challenger, bond);
            uint40 deadline = uint40(block.timestamp + cfg.aggregationWindow);
            r.phase = Phase.Aggregating;
            r.aggregationDeadline = deadline;
            r.challengeDeadline = 0;
            r.weightSum = 0;
            emit DisputeResolved(projectId, round, challenger, true);
            emit AggregatorSlashed(projectId, round, slashed);
            emit AggregationReopened(projectId, round, deadline);
        } else {
            _credit(projectId, cfg.aggregator, bond);
            r.phase = Phase.Challenge;
            emit DisputeResolved(projectId, round, challenger, false);
        }
    }

    /**
     * @notice Expires the current round when the aggregator missed its aggregation deadline: the
     * aggregator bond is slashed into the carry and the round becomes Expired. Anyone may call.
     * @dev The owner may then cancel, or the aggregator may re-post its bond to re-open aggregation.
     * A round without submissions is finalized instead (there was nothing to aggregate).
     * @param projectId The project.
     */
    function expire(uint256 projectId) external {
        (Project storage p, uint32 round, RoundState storage r, Phase phase) = _runningRound(projectId);
        if (phase != Phase.Expired || r.phase == Phase.Expired) revert WrongPhase(Phase.Expired, phase);
        if (r.submissions == 0) revert NoSubmissions(round);

        uint256 slashed = p.bondBalance;
        p.bondBalance = 0;
        p.bonded = false;
        // forge-lint: disable-next-line(unsafe-typecast) -- bondBalance is a uint96
        p.carry += uint128(slashed);
        r.phase = Phase.Expired;
        emit RoundExpired(projectId, round, slashed);
    }

    /**
     * @notice Cancels the project. Only the owner, not while a result is pending (Challenge or Disputed).
     * @dev Everything already final stays claimable. Only budget of rounds that never produced a result
     * (the current one, unopened ones) and the carry become the owner's remainder.
     * @param projectId The project.
     */
    function cancel(uint256 projectId) external {
        Project storage p = _project(projectId);
        if (msg.sender != p.owner) revert NotOwner(msg.sender);
        uint256 refund = p.carry;
        if (p.status == Status.Pending) {
            refund += uint256(p.perRound) * p.rounds;
        } else if (p.status == Status.Running) {
            uint32 round = p.currentRound;
            RoundState storage r = _ring[projectId][round & 1];
            if (r.phase == Phase.Challenge || r.phase == Phase.Disputed) revert ResultPending(round);
            refund += r.budget + uint256(p.perRound) * (p.rounds - round - 1);
        } else {
            revert WrongStatus(p.status);
        }

        p.status = Status.Cancelled;
        p.carry = 0;
        p.remainder += refund.toUint128();
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
     * @notice Returns the caller's stake minus slashes, after the project Ended or was Cancelled.
     * @param projectId The project.
     */
    function withdrawStake(uint256 projectId) external nonReentrant {
        Project storage p = _project(projectId);
        _requireClosed(p);
        Account storage a = _accounts[projectId][msg.sender];
        if (!a.joined) revert NotTrainer(msg.sender);
        if (a.withdrawn) revert AlreadyWithdrawn();
        uint256 amount = a.stake;
        a.withdrawn = true;
        emit StakeWithdrawn(projectId, msg.sender, amount);
        if (amount != 0) _push(_configs[projectId].asset, msg.sender, amount);
    }

    /**
     * @notice Returns what is left of the aggregator's bond, after the project Ended or was Cancelled.
     * Only the aggregator.
     * @param projectId The project.
     */
    function withdrawBond(uint256 projectId) external nonReentrant {
        Project storage p = _project(projectId);
        ProjectConfig storage cfg = _configs[projectId];
        if (msg.sender != cfg.aggregator) revert NotAggregator(msg.sender);
        _requireClosed(p);
        uint256 amount = p.bondBalance;
        if (amount == 0) revert NothingToWithdraw();
        p.bondBalance = 0;
        p.bonded = false;
        emit BondWithdrawn(projectId, msg.sender, amount);
        _push(cfg.asset, msg.sender, amount);
    }

    /**
     * @notice Pays the owner what the project did not spend: carried dust and unspent or refunded budgets.
     * Only the owner, after the project Ended or was Cancelled.
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

    /**
     * @notice Reveals the owner's validation set so that anyone can re-verify every round. Only the
     * owner, once; the CID and salt must match the commitment given at creation.
     * @param projectId The project.
     * @param validationCid The validation set's CID.
     * @param salt The salt used in the commitment.
     */
    function revealValidation(uint256 projectId, string calldata validationCid, bytes32 salt) external {
        Project storage p = _project(projectId);
        if (msg.sender != p.owner) revert NotOwner(msg.sender);
        if (p.revealed) revert AlreadyRevealed();
        if (keccak256(abi.encode(validationCid, salt)) != _configs[projectId].validationCommitment) {
            revert BadReveal();
        }
        p.revealed = true;
        p.validationCid = validationCid;
        emit ValidationRevealed(projectId, validationCid, salt);
    }

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @notice Number of projects created; ids are 1..projectCount.
    function projectCount() external view returns (uint256) {
        return _projectCount;
    }

    /// @notice The project's fixed configuration.
    function getConfig(uint256 projectId) external view returns (ProjectConfig memory) {
        _project(projectId);
        return _configs[projectId];
    }

    /// @notice The project's mutable state.
    function getProject(uint256 projectId)
        external
        view
        returns (
            address owner,
            Status status,
            uint32 currentRound,
            uint16 trainerCount,
            uint256 carry,
            uint256 bondBalance,
            string memory validationCid
        )
    {
        Project storage p = _project(projectId);
        return (p.owner, p.status, p.currentRound, p.trainerCount, p.carry, p.bondBalance, p.validationCid);
    }

    /**
     * @notice A round's phase (Aggregating and Expired derived from time), deadlines, submission count,
     * budget and posted CIDs.
     * @dev The current and previous rounds are held in full. Older rounds report `Final` with zeroes;
     * their history is in events. CIDs are empty unless a result is posted. A round's budget includes
     * the slashes added at finalization.
     */
    function getRound(uint256 projectId, uint32 round)
        external
        view
        returns (
            Phase phase,
            uint64 openedAt,
            uint64 submissionDeadline,
            uint64 aggregationDeadline,
            uint64 challengeDeadline,
            uint16 submissions,
            uint256 budget,
            string memory globalModelCid_,
            string memory reportCid
        )
    {
        Project storage p = _project(projectId);
        RoundState storage r = _ring[projectId][round & 1];
        if (round >= p.rounds || r.number != round) {
            return (round < p.currentRound ? Phase.Final : Phase.None, 0, 0, 0, 0, 0, 0, "", "");
        }
        phase = _phase(r);
        if (phase == Phase.Challenge || phase == Phase.Disputed || phase == Phase.Final) {
            (globalModelCid_, reportCid) = _loadCids(r);
        }
        return (
            phase,
            r.submissionDeadline - _schedules[projectId].submissionWindow,
            r.submissionDeadline,
            r.aggregationDeadline,
            r.challengeDeadline,
            r.submissions,
            r.budget,
            globalModelCid_,
            reportCid
        );
    }

    /// @notice CID of the latest final global model, or the initial model before any round is final.
    function globalModelCid(uint256 projectId) external view returns (string memory) {
        Project storage p = _project(projectId);
        uint32 round = p.currentRound;
        (string memory model,) = _loadCids(_ring[projectId][(p.status == Status.Ended ? round : round + 1) & 1]);
        return model;
    }

    /// @notice The round's submitters in submission order.
    function getSubmitters(uint256 projectId, uint32 round) external view returns (address[] memory submitters) {
        _project(projectId);
        RoundData storage d = _rounds[projectId][round];
        uint256 n = _submitterCount(d);
        submitters = new address[](n);
        for (uint256 i; i < n; ++i) {
            submitters[i] = _submitterAt(d, i);
        }
    }

    /**
     * @notice keccak256 of the update CID a trainer submitted in `round`, while that is its latest
     * submission; zero if it did not submit then. Earlier CIDs are in `UpdateSubmitted` events.
     */
    function getSubmission(uint256 projectId, uint32 round, address trainer) external view returns (bytes32) {
        if (_accounts[projectId][trainer].submittedRound != uint256(round) + 1) return bytes32(0);
        return _latestUpdate[projectId][trainer];
    }

    /**
     * @notice A trainer's membership, currently held stake (zero once withdrawn), total slashed and the
     * round it joined in.
     */
    function getTrainer(uint256 projectId, address trainer)
        external
        view
        returns (bool joined, uint256 stake, uint256 slashed, uint32 joinedRound)
    {
        Account storage a = _accounts[projectId][trainer];
        if (!a.joined) return (false, 0, 0, 0);
        return (true, a.withdrawn ? 0 : a.stake, _configs[projectId].stake - a.stake, uint32(a.joinedRound));
    }

    /// @notice What `account` can `claim` in this project now.
    function claimable(uint256 projectId, address account) external view returns (uint256) {
        return _accounts[projectId][account].claimable;
    }

    /**
     * @notice The weights and flags of the round's latest posted result (a voided result until replaced).
     * @dev Held for the current and the previous round only, like `getRound`. Empty (no weights, zero
     * flags) while no result has been posted for the round and for rounds older than the previous one:
     * every result is in its `ResultPosted` event.
     */
    function getResult(uint256 projectId, uint32 round) external view returns (uint32[] memory weights, uint256 flags) {
        _project(projectId);
        RoundState storage r = _ring[projectId][round & 1];
        if (r.number != round || !r.posted) return (new uint32[](0), 0);
        ResultSlots storage res = _results[projectId][round & 1];
        uint256 n = r.submissions;
        weights = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast) -- extracts the i-th packed uint32 on purpose
            weights[i] = uint32(~res.weights[i >> 3] >> ((i & 7) * 32));
        }
        return (weights, r.flagged ? res.flags : r.lowFlags);
    }

    /// @notice The owner's withdrawable remainder (set when the project Ends or is Cancelled).
    function remainder(uint256 projectId) external view returns (uint256) {
        return _projects[projectId].remainder;
    }

    /// @notice The disputer of the current round while it is Disputed, else address(0).
    function disputer(uint256 projectId) external view returns (address) {
        return _projects[projectId].disputer;
    }

    // ---------------------------------------------------------------------------------------------
    // Internal helpers
    // ---------------------------------------------------------------------------------------------

    function _validateConfig(ProjectConfig calldata cfg) private pure {
        if (cfg.rounds == 0) revert InvalidConfig(ConfigError.ZeroRounds);
        if (cfg.rounds > MAX_ROUNDS) revert InvalidConfig(ConfigError.TooManyRounds);
        if (cfg.pool < cfg.rounds) revert InvalidConfig(ConfigError.PoolTooSmall);
        if (cfg.maxTrainers > MAX_TRAINERS) revert TooManyTrainers(cfg.maxTrainers, MAX_TRAINERS);
        if (cfg.minTrainers == 0 || cfg.minTrainers > cfg.maxTrainers) revert InvalidConfig(ConfigError.MinTrainers);
        if (cfg.slashBps > BPS) revert InvalidConfig(ConfigError.SlashBps);
        // Stakes must fit an Account's uint88; pools and bonds the Project's uint96 fields. Then no sum of
        // credits in one project can overflow an Account's uint104 claimable.
        if (
            cfg.stake > type(uint88).max || cfg.pool > type(uint96).max || cfg.aggregatorBond > type(uint96).max
                || cfg.disputeBond > type(uint96).max
        ) revert InvalidConfig(ConfigError.AmountTooLarge);
        if (cfg.aggregator == address(0)) revert InvalidConfig(ConfigError.ZeroAggregator);
        if (cfg.arbiter == address(0)) revert InvalidConfig(ConfigError.ZeroArbiter);
        if (cfg.submissionWindow == 0 || cfg.aggregationWindow == 0 || cfg.challengePeriod == 0) {
            revert InvalidConfig(ConfigError.ZeroWindow);
        }
        if (bytes(cfg.specCid).length == 0) revert InvalidConfig(ConfigError.EmptySpec);
        if (bytes(cfg.initialModelCid).length == 0) revert InvalidConfig(ConfigError.EmptyInitialModel);
    }

    /// @dev Slashes flagged submitters into `budget`, then credits rewards pro rata to unflagged weights.
    function _settle(uint256 projectId, uint32 round, RoundState storage r, uint256 budget)
        private
        returns (uint256 newBudget, uint256 distributed)
    {
        RoundData storage d = _rounds[projectId][round];
        ResultSlots storage res = _results[projectId][round & 1];
        uint256 n = r.submissions;
        uint256 weightSum = r.weightSum;
        uint256 flags = r.flagged ? res.flags : r.lowFlags;
        newBudget = budget;
        if (flags != 0) newBudget += _slash(projectId, round, d, n, flags);
        if (weightSum != 0) distributed = _reward(projectId, round, n, flags, newBudget, weightSum);
    }

    /// @dev Cuts `stake * slashBps` (at most what is left) from each flagged submitter; returns the total.
    function _slash(uint256 projectId, uint32 round, RoundData storage d, uint256 n, uint256 flags)
        private
        returns (uint256 total)
    {
        uint256 penalty = _projects[projectId].penalty;
        for (uint256 i; i < n; ++i) {
            // forge-lint: disable-next-line(incorrect-shift) -- bit i of flags
            if (flags & (1 << i) == 0) continue;
            address trainer = _submitterAt(d, i);
            Account storage a = _accounts[projectId][trainer];
            uint256 cut = Math.min(penalty, a.stake);
            // forge-lint: disable-next-line(unsafe-typecast) -- cut <= a.stake, a uint88
            a.stake -= uint88(cut);
            total += cut;
            emit TrainerSlashed(projectId, round, trainer, cut);
        }
    }

    /// @dev Credits `budget * w_i / weightSum` to each unflagged submitter; returns the total credited.
    /// Written in assembly because it runs once per trainer per round: per credited trainer it reads
    /// the packed submitter words (5 cold slots per 8 trainers, as `_submitterAt`), adds the reward to
    /// the trainer's Account slot (`claimable`, its low 104 bits, overflow-checked) and emits
    /// `RewardCredited`, without the per-iteration overhead of the Solidity form.
    /// `round` is widened here, in Solidity, so that the assembly sees clean high bits.
    function _reward(uint256 projectId, uint256 round, uint256 n, uint256 flags, uint256 budget, uint256 weightSum)
        private
        returns (uint256 total)
    {
        uint256 subBase;
        uint256 weightBase;
        uint256 accBase;
        {
            // forge-lint: disable-next-line(unsafe-typecast) -- round came in as a uint32
            RoundData storage d = _rounds[projectId][uint32(round)];
            ResultSlots storage res = _results[projectId][round & 1];
            mapping(address => Account) storage accounts = _accounts[projectId];
            assembly ("memory-safe") {
                subBase := d.slot
                weightBase := res.slot
                accBase := accounts.slot
            }
        }
        assembly ("memory-safe") {
            // _submitterAt: submitter i occupies bits [160 i, 160 i + 160) of the words keccak(k . subBase)
            function submitterAt(base, i) -> trainer {
                let bit := mul(i, 160)
                let k := shr(8, bit)
                let off := and(bit, 255)
                mstore(0x00, k)
                mstore(0x20, base)
                let v := shr(off, sload(keccak256(0x00, 0x40)))
                if gt(off, 96) {
                    mstore(0x00, add(k, 1))
                    v := or(v, shl(sub(256, off), sload(keccak256(0x00, 0x40))))
                }
                trainer := and(v, 0xffffffffffffffffffffffffffffffffffffffff)
            }
            // _accounts[projectId][trainer].claimable += amount, checked against uint104
            function credit(base, trainer, amount) {
                mstore(0x00, trainer)
                mstore(0x20, base)
                let slot := keccak256(0x00, 0x40)
                let acc := sload(slot)
                let mask := 0xffffffffffffffffffffffffff
                let c := add(and(acc, mask), amount)
                if gt(c, mask) {
                    mstore(0x00, shl(224, 0x4e487b71)) // Panic(0x11): arithmetic overflow
                    mstore(0x04, 0x11)
                    revert(0x00, 0x24)
                }
                sstore(slot, or(and(acc, not(mask)), c))
            }
            let word := 0
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                // weights are stored inverted, 8 uint32 per word
                if iszero(and(i, 7)) { word := not(sload(add(weightBase, shr(3, i)))) }
                let w := and(shr(shl(5, and(i, 7)), word), 0xffffffff)
                // skip zero weights and flagged submitters
                if and(iszero(iszero(w)), iszero(and(shr(i, flags), 1))) {
                    let trainer := submitterAt(subBase, i)
                    // budget < 2^130 (pool, carry and slashes are bounded at creation) and w < 2^32: no
                    // overflow; weightSum != 0 (the caller checks); the rewards sum to at most budget.
                    let reward := div(mul(budget, w), weightSum)
                    total := add(total, reward)
                    credit(accBase, trainer, reward)
                    // emit RewardCredited(projectId, round, trainer, reward)
                    mstore(0x00, reward)
                    log4(
                        0x00,
                        0x20,
                        0x8804f95d3501e04a794f73ef14af970c12f177d6043cef5e946c5890617434c6,
                        projectId,
                        round,
                        trainer
                    )
                }
            }
        }
    }

    /// @dev The running project's current round and its phase now; reverts unless the project is Running.
    function _runningRound(uint256 projectId)
        private
        view
        returns (Project storage p, uint32 round, RoundState storage r, Phase phase)
    {
        p = _project(projectId);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        round = p.currentRound;
        r = _ring[projectId][round & 1];
        phase = _phase(r);
    }

    /// @dev Checks that the aggregator may post `n` weights and these flags for `round` now.
    function _requirePostable(uint256 projectId, uint32 round, uint256 n, uint256 flags)
        private
        view
        returns (RoundState storage r)
    {
        Project storage p = _project(projectId);
        if (msg.sender != _schedules[projectId].aggregator) revert NotAggregator(msg.sender);
        if (p.status != Status.Running) revert WrongStatus(p.status);
        if (round != p.currentRound) revert WrongRound(p.currentRound, round);
        r = _ring[projectId][round & 1];
        Phase phase = _phase(r);
        if (phase != Phase.Aggregating) revert WrongPhase(Phase.Aggregating, phase);
        if (!p.bonded) revert BondNotPosted();
        if (n != r.submissions) revert LengthMismatch(r.submissions, n);
        if (n < 256 && flags >> n != 0) revert InvalidFlags(flags, n);
    }

    /// @dev Packs the weights 8 per word (stored inverted), records flags wider than 32 bits, and returns Σ weights of unflagged submitters.
    function _storeResult(ResultSlots storage res, uint32[] calldata weights, uint256 flags)
        private
        returns (uint256 sum)
    {
        // Assembly for the per-trainer loop. As `weights[i]` would, a value with dirty high bits reverts.
        assembly ("memory-safe") {
            let base := res.slot
            let n := weights.length
            let word := 0
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let w := calldataload(add(weights.offset, shl(5, i)))
                if gt(w, 0xffffffff) { revert(0, 0) }
                // at most 256 weights below 2^32: the sum of unflagged ones stays below 2^40
                if iszero(and(shr(i, flags), 1)) { sum := add(sum, w) }
                word := or(word, shl(shl(5, and(i, 7)), w))
                // res.weights[i >> 3] = ~word once a word is full or the weights end
                if or(eq(and(i, 7), 7), eq(i, sub(n, 1))) {
                    sstore(add(base, shr(3, i)), not(word))
                    word := 0
                }
            }
        }
        // Flags below 2^32 (the common case: none, or offenders among the first 32) go to the header;
        // readers consult the header's `flagged` before this slot.
        if (flags >> 32 != 0) res.flags = flags;
    }

    function _openRound(uint256 projectId, Project storage p, uint32 round) private {
        Schedule storage schedule = _schedules[projectId];
        RoundState storage r = _ring[projectId][round & 1];
        uint256 budget = uint256(p.perRound) + p.carry;
        p.carry = 0;
        uint40 submissionDeadline = uint40(block.timestamp + schedule.submissionWindow);
        uint40 aggregationDeadline = submissionDeadline + schedule.aggregationWindow;

        // forge-lint: disable-next-line(unsafe-typecast) -- round < rounds <= MAX_ROUNDS < 2^24 - 1
        r.number = uint24(round);
        r.phase = Phase.Open;
        r.submissions = 0;
        r.flagged = false;
        r.posted = false;
        r.lowFlags = 0;
        r.submissionDeadline = submissionDeadline;
        r.aggregationDeadline = aggregationDeadline;
        r.challengeDeadline = 0;
        r.weightSum = 0;
        r.budget = budget;
        emit RoundOpened(projectId, round, budget, submissionDeadline, aggregationDeadline);
    }

    /// @dev Packs both CIDs into the ring entry's `cids` words: lengths in the top 8 bytes of word 0,
    /// then the bytes of `model` and `report`; the unused tail of the last word is zeroed.
    function _storeCids(RoundState storage r, string memory model, string memory report) private {
        bytes memory blob =
            abi.encodePacked(bytes(model).length.toUint32(), bytes(report).length.toUint32(), model, report);
        uint256 len = blob.length;
        mapping(uint256 => uint256) storage words = r.cids;
        for (uint256 k; k << 5 < len; ++k) {
            uint256 word;
            assembly ("memory-safe") {
                word := mload(add(add(blob, 32), shl(5, k)))
            }
            uint256 rest = len - (k << 5);
            if (rest < 32) word &= ~(type(uint256).max >> (rest << 3));
            words[k] = word;
        }
    }

    /// @dev Unpacks the CIDs written by `_storeCids`.
    function _loadCids(RoundState storage r) private view returns (string memory model, string memory report) {
        mapping(uint256 => uint256) storage words = r.cids;
        uint256 head = words[0];
        uint256 modelLen = head >> 224;
        uint256 reportLen = (head >> 192) & 0xffffffff;
        uint256 len = 8 + modelLen + reportLen;
        bytes memory blob = new bytes(((len + 31) >> 5) << 5);
        for (uint256 k; k << 5 < len; ++k) {
            uint256 word = words[k];
            assembly ("memory-safe") {
                mstore(add(add(blob, 32), shl(5, k)), word)
            }
        }
        bytes memory m = new bytes(modelLen);
        for (uint256 i; i < modelLen; ++i) {
            m[i] = blob[8 + i];
        }
        bytes memory rep = new bytes(reportLen);
        for (uint256 i; i < reportLen; ++i) {
            rep[i] = blob[8 + modelLen + i];
        }
        return (string(m), string(rep));
    }

    function _credit(uint256 projectId, address account, uint256 amount) private {
        _accounts[projectId][account].claimable += amount.toUint104();
    }

    /// @dev Effective phase: Open turns Aggregating at the submission deadline; Aggregating turns
    /// Expired at the aggregation deadline.
    function _phase(RoundState storage r) private view returns (Phase phase) {
        phase = r.phase;
        if (phase == Phase.Open) {
            // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
            if (block.timestamp < r.submissionDeadline) return Phase.Open;
            phase = Phase.Aggregating;
        }
        // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
        if (phase == Phase.Aggregating && block.timestamp >= r.aggregationDeadline) return Phase.Expired;
    }

    function _current(uint256 projectId, Project storage p) private view returns (RoundState storage) {
        return _ring[projectId][p.currentRound & 1];
    }

    function _project(uint256 projectId) private view returns (Project storage p) {
        p = _projects[projectId];
        if (p.owner == address(0)) revert UnknownProject(projectId);
    }

    function _requireClosed(Project storage p) private view {
        if (p.status != Status.Ended && p.status != Status.Cancelled) revert WrongStatus(p.status);
    }

    function _submitterCount(RoundData storage d) private view returns (uint256 n) {
        while (n < MAX_TRAINERS && _submitterAt(d, n) != address(0)) ++n;
    }

    /// @dev Appends submitter `i` (the slots of higher indices are still empty).
    function _pushSubmitter(RoundData storage d, uint256 i, address trainer) private {
        uint256 v = uint160(trainer);
        uint256 bit = i * 160;
        uint256 w = bit >> 8;
        uint256 off = bit & 255;
        d.submitters[w] |= v << off;
        if (off > 96) d.submitters[w + 1] = v >> (256 - off);
    }

    function _submitterAt(RoundData storage d, uint256 i) private view returns (address) {
        uint256 bit = i * 160;
        uint256 w = bit >> 8;
        uint256 off = bit & 255;
        uint256 v = d.submitters[w] >> off;
        if (off > 96) v |= d.submitters[w + 1] << (256 - off);
        // forge-lint: disable-next-line(unsafe-typecast) -- the low 160 bits are the address
        return address(uint160(v));
    }

    /// @dev Takes `amount` of `asset` from the caller: exact msg.value for ETH, else transferFrom with a
    /// balance check that rejects fee-on-transfer tokens.
    function _pull(address asset, uint256 amount) private {
        if (asset == address(0)) {
            if (msg.value != amount) revert WrongValue(amount, msg.value);
            return;
        }
        if (msg.value != 0) revert WrongValue(0, msg.value);
        if (amount == 0) return;
        IERC20 token = IERC20(asset);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TransferAmountMismatch(amount, received);
    }

    function _push(address asset, address to, uint256 amount) private {
        if (asset == address(0)) {
            Address.sendValue(payable(to), amount);
        } else {
            IERC20(asset).safeTransfer(to, amount);
        }
    }
}
