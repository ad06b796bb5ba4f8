// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AssetVault} from "./AssetVault.sol";
import {SubmitterList} from "./lib/SubmitterList.sol";
import {PackedResult} from "./lib/PackedResult.sol";
import {CidPair} from "./lib/CidPair.sol";

/**
 * @title MarketplaceStorage
 * @notice The Marketplace's types, constants, storage, events and errors, shared by the core
 * (`Marketplace`) and its read-only half (`MarketplaceViews`, reached by delegatecall), which therefore
 * see one storage layout.
 * @dev Storage is laid out for the per-round gas budget:
 * - the headers, budgets and CIDs of rounds live in a two-entry ring per project (round r in entry r % 2),
 *   pre-filled at creation so that every later write is nonzero-to-nonzero; older rounds are rebuilt from
 *   events (`RoundOpened`, `ResultPosted`, `RoundFinalized`);
 * - posted weights and flags live in a second two-entry ring (`PackedResult`), pre-filled likewise;
 * - submitters are kept for every round (`SubmitterList`);
 * - a participant's stake, claimable balance and round markers share one slot, nonzero from `join` on.
 */
abstract contract MarketplaceStorage is AssetVault {
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
        Expired,
        Revealing
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
        TooManyRounds,
        AggregatorBondTooSmall,
        DisputeBondTooSmall,
        ArbiterNotIndependent,
        WindowTooLong,
        NotCommittee
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
        uint32 revealWindow; // after the submission deadline: when committed updates are revealed
    }

    /// @dev Mutable per-project state. Slot 0 is read by almost every call.
    struct Project {
        // slot 0
        address owner;
        Status status;
        uint32 currentRound;
        uint16 trainerCount; // trainers holding a slot (joined, not evicted)
        bool bonded;
        bool revealed;
        bool cancelled; // the owner cancelled; the project ends after its last round with submissions
        uint16 honest; // trainers that revealed an update and were never flagged (finalize writes this slot anyway)
        // slot 1: what finalize needs to open the next round
        uint96 perRound; // pool / rounds
        uint128 carry; // trainers' money waiting for the next round: slashes, unpaid budgets, slashed bonds
        uint32 rounds;
        // slot 2
        uint96 bondBalance; // aggregator bond held
        uint128 remainder; // the owner's: budgets of rounds that never had a submission
        uint16 members; // trainers that ever joined (the end pot's fallback shares)
        uint16 listWords; // submitter-list words pre-filled in both ring entries
        // slot 3
        address disputer; // nonzero while a round is Disputed
        uint96 penalty; // stake * slashBps / 10000, cut per offence
        // slot 4: the carry left when the project closes, shared by its trainers (`withdrawStake`)
        uint128 endPot;
        uint16 endShares; // shares of endPot not yet taken
        bool endToAll; // no honest trainer remained: every trainer that ever joined shares endPot
        uint40 startDeadline; // a Pending project not started by then may be cancelled by anyone
        string validationCid;
    }

    /// @dev The aggregator and the round timing, copied from the config into one slot for per-round calls.
    /// Windows are below 2^24 seconds (194 days), checked at creation.
    struct Schedule {
        address aggregator;
        uint24 submissionWindow;
        uint24 revealWindow;
        uint24 aggregationWindow;
        uint24 challengePeriod;
    }

    /// @dev One participant's money in one project, in a single slot that is nonzero from `join` on.
    struct Account {
        uint104 claimable;
        uint88 stake; // remaining stake (config stake minus slashes); kept after withdrawal for `slashed`
        uint24 joinedRound;
        uint16 flags; // JOINED | WITHDRAWN | SLASHED
    }

    /// @dev A trainer's place in the rounds, in one slot pre-filled at `join`: what committing and
    /// revealing read and write, so that neither touches the Account.
    struct Seat {
        uint192 commitment; // top 192 bits of the latest commitment hash
        uint24 committedRound; // 1 + the round of that commitment; 0 = none
        uint24 activeRound; // missed rounds are counted from this round on (joining, or the last reveal + 1)
        uint8 index; // commit index of that commitment
        uint8 flags; // HELD | REVEALED
    }

    /// @dev Ring entry for round `number`. Slot 0 is the header. Timestamps are uint32 (valid until 2106),
    /// so that the four deadlines fit the header beside the weight sum.
    struct RoundState {
        // slot 0
        uint24 number; // NO_ROUND before the entry's first round
        Phase phase; // stored phase: Open, Aggregating, Challenge, Disputed, Final or Expired
        uint16 submissions; // commitments, in commit order
        bool flagged; // the posted flags reach beyond bit 31: they are in the result ring's `flags` slot
        uint32 lowFlags; // the posted flags when they fit 32 bits
        uint32 submissionDeadline; // commitments close
        uint32 revealDeadline; // reveals close; aggregation starts
        uint32 aggregationDeadline;
        uint32 challengeDeadline; // nonzero once a result was posted (kept after an upheld dispute voids it)
        uint40 weightSum; // Σ weights of unflagged revealed submitters (<= 256 * 2^32)
        // slot 1
        uint256 budget;
        // slot 2: bit i clear = submitter i revealed (meaningful for i < submissions). Stored inverted so that
        // the reset to "none revealed", by the round's first commitment, rewrites a nonzero slot.
        uint256 unrevealed;
        CidPair.Pair cids; // global model and report
    }

    // ---------------------------------------------------------------------------------------------
    // Constants and storage
    // ---------------------------------------------------------------------------------------------

    /// @notice Upper bound on trainers per project; bounds every loop in the contract.
    uint256 public constant MAX_TRAINERS = 256;
    /// @notice Scale the aggregator normalises weights to. The contract only uses ratios.
    uint256 public constant WEIGHT_SCALE = 1e9;
    /// @notice Upper bound on rounds per project (round numbers are stored in 24 bits).
    uint256 public constant MAX_ROUNDS = type(uint24).max - 1;
    /// @notice A Pending project not started this long after creation may be cancelled by anyone.
    uint256 public constant START_WINDOW = 30 days;
    /// @notice A trainer that misses this many rounds in a row may be evicted by anyone.
    uint256 public constant MISSED_ROUNDS_LIMIT = 2;
    /// @notice The aggregator bond must be at least this share (bps) of a round's budget.
    uint256 public constant MIN_AGGREGATOR_BOND_BPS = 1_000;
    /// @notice The dispute bond must be nonzero and at least this share (bps) of a round's budget.
    uint256 public constant MIN_DISPUTE_BOND_BPS = 100;
    uint256 internal constant BPS = 10_000;
    uint24 internal constant NO_ROUND = type(uint24).max;

    uint16 internal constant JOINED = 1;
    uint16 internal constant WITHDRAWN = 2;
    uint16 internal constant SLASHED = 4; // flagged at least once
    uint8 internal constant HELD = 1; // the seat is held (joined, not evicted)
    uint8 internal constant REVEALED = 2; // revealed an update at least once
    /// @dev Windows are kept in 24 bits.
    uint256 internal constant MAX_WINDOW = type(uint24).max;

    uint256 internal _projectCount;
    mapping(uint256 projectId => ProjectConfig) internal _configs;
    mapping(uint256 projectId => Schedule) internal _schedules;
    mapping(uint256 projectId => Project) internal _projects;
    mapping(uint256 projectId => mapping(address account => Account)) internal _accounts;
    mapping(uint256 projectId => mapping(address trainer => Seat)) internal _seats;
    mapping(uint256 projectId => RoundState[2]) internal _ring;
    /// Submitters of the current and previous rounds, in commit order (entry round % 2); every commitment
    /// is in its `UpdateCommitted` event.
    mapping(uint256 projectId => SubmitterList.List[2]) internal _submitters;
    mapping(uint256 projectId => PackedResult.Slots[2]) internal _results;

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
    event TrainerEvicted(uint256 indexed projectId, address indexed trainer, uint32 round);
    event ProjectStarted(uint256 indexed projectId);
    event RoundOpened(
        uint256 indexed projectId,
        uint32 indexed round,
        uint256 budget,
        uint64 submissionDeadline,
        uint64 aggregationDeadline
    );
    /// @notice A trainer committed to an update; `index` is its place in commit order (the copy check's order).
    event UpdateCommitted(
        uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint16 index, bytes32 commitment
    );
    /// @notice A committed update was revealed: its CID, first public now.
    event UpdateRevealed(
        uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint16 index, string cid
    );
    /// @notice `weights` holds one uint32 per committed submitter, 8 per word: weight i is bits
    /// [32 (i % 8), 32 (i % 8) + 32) of word i / 8.
    event ResultPosted(
        uint256 indexed projectId,
        uint32 indexed round,
        string globalModelCid,
        string reportCid,
        uint256[] weights,
        uint256 flags
    );
    event TrainerSlashed(uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint256 amount);
    event RewardCredited(uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint256 amount);
    event RoundFinalized(uint256 indexed projectId, uint32 indexed round, uint256 distributed, uint256 carried);
    /// @notice A round settled without a result (the aggregator missed its deadline and the grace after it):
    /// its budget was split equally among its submitters.
    event RoundSettledWithoutResult(uint256 indexed projectId, uint32 indexed round, uint256 perSubmitter);
    event Disputed(uint256 indexed projectId, uint32 indexed round, address indexed disputer, uint256 bond);
    event DisputeResolved(uint256 indexed projectId, uint32 indexed round, address indexed disputer, bool upheld);
    /// @notice The arbiter did not rule by the ruling deadline: the dispute was rejected by default.
    event DisputeLapsed(uint256 indexed projectId, uint32 indexed round, address indexed disputer);
    event AggregatorSlashed(uint256 indexed projectId, uint32 indexed round, uint256 amount);
    event AggregationReopened(uint256 indexed projectId, uint32 indexed round, uint64 aggregationDeadline);
    event RoundExpired(uint256 indexed projectId, uint32 indexed round, uint256 bondSlashed);
    event ProjectCancelled(uint256 indexed projectId, uint256 refunded);
    event ProjectEnded(uint256 indexed projectId, uint256 remainder);
    /// @notice What the project left for its trainers when it closed, and how many shares it is split into.
    event EndPotSet(uint256 indexed projectId, uint256 amount, uint256 shares, bool toAllSubmitters);
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
    error EmptyCommitment();
    error NoCommitment(address trainer, uint32 round);
    error RevealMismatch(address trainer, uint32 round);
    error UpdateAlreadyRevealed(address trainer, uint32 round);
    error FlagsOnUnrevealed(uint256 flags, uint256 revealed);
    error WeightsBeyondSubmitters(uint256 word);
    error NoSubmissions(uint32 round);
    error ChallengePeriodNotOver(uint64 challengeDeadline);
    error ChallengePeriodOver(uint64 challengeDeadline);
    error GracePeriodNotOver(uint64 graceDeadline);
    error RulingPeriodNotOver(uint64 rulingDeadline);
    error RulingPeriodOver(uint64 rulingDeadline);
    error AlreadyCancelled();
    error StartPeriodNotOver(uint64 startDeadline);
    error NotEvictable(address trainer, uint32 activeRound);
    error TooManySubmissions(uint32 round);
    error NothingToClaim();
    error NothingToWithdraw();
    error AlreadyWithdrawn();
    error BadReveal();
    error AlreadyRevealed();

    // ---------------------------------------------------------------------------------------------
    // Shared reads
    // ---------------------------------------------------------------------------------------------

    /// @dev Effective phase: Open turns Revealing at the submission deadline and Aggregating at the reveal
    /// deadline; Aggregating turns Expired at the aggregation deadline.
    function _phase(RoundState storage r) internal view returns (Phase phase) {
        phase = r.phase;
        if (phase == Phase.Open) {
            // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
            if (block.timestamp < r.submissionDeadline) return Phase.Open;
            // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
            if (block.timestamp < r.revealDeadline) return Phase.Revealing;
            phase = Phase.Aggregating;
        }
        // forge-lint: disable-next-line(block-timestamp) -- deadlines are hours apart; seconds of drift do not matter
        if (phase == Phase.Aggregating && block.timestamp >= r.aggregationDeadline) return Phase.Expired;
    }

    /// @dev Bit i set: submitter i (in commit order) revealed a matching update this round.
    function _revealed(RoundState storage r) internal view returns (uint256) {
        uint256 n = r.submissions;
        uint256 mask = n == 256 ? type(uint256).max : (uint256(1) << n) - 1;
        return ~r.unrevealed & mask;
    }

    function _project(uint256 projectId) internal view returns (Project storage p) {
        p = _projects[projectId];
        if (p.owner == address(0)) revert UnknownProject(projectId);
    }
}
