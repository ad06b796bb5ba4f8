// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {AggregatorRegistry} from "./AggregatorRegistry.sol";
import {Consensus} from "./Consensus.sol";
import {IMarketplace} from "./IMarketplace.sol";
import {MarketplaceStorage} from "../MarketplaceStorage.sol";

/**
 * @title Merit aggregator committee
 * @notice The aggregator of every Marketplace project: the only caller the Marketplace takes results from.
 * At `start` it draws the project's scoring committee from the staked {AggregatorRegistry}, so no owner
 * chooses who scores its trainers. Each round, once the trainers' reveals close, every member commits to
 * its scores (weights, flags, model and report CIDs), then reveals them; anyone then settles: the contract
 * checks the revealed posts against their hashes, takes per trainer the median weight and each flag that a
 * strict majority of the committee set, posts that consensus to the Marketplace, and takes part of the
 * stake of every member that strayed from it (or never revealed), for the round's honest trainers.
 *
 * @dev Timing: the Marketplace's aggregation window (trainers' reveal deadline to aggregation deadline) is
 * cut in thirds: members commit in the first, reveal in the second (as soon as every member committed),
 * and the round is settled in the third (as soon as every member revealed). A committee of one (the
 * default) runs the same flow, for local use.
 *
 * Money, all ETH: the owner escrows a fee per round at `configure`; a settled round's fee is split equally
 * among the members within tolerance. Penalties (from the registry) and the fee shares of deviators go to
 * the round's unflagged, revealed trainers pro rata to their consensus weights, claimable here (`claim`),
 * apart from the Marketplace's rewards, which the consensus decides alone. Fees of rounds never settled go
 * back to the owner once the project closes (`refundFee`).
 *
 * What holds with a liar majority (more than k/2 members post the same lie): nothing about the round's
 * scoring; their lie is the consensus and the honest members are the ones penalised. What still holds is
 * the Marketplace's money rules (the budget goes to trainers, never the owner) and that every lie is public
 * in `MemberRevealed` events. Capturing a majority costs a majority of the draws, which costs stake.
 */
contract Committee is ReentrancyGuardTransient {
    /// @notice A member's scores of a round: weights packed as `postResult` takes them (uint32 per
    /// submitter, 8 per word), offender flags, and the CIDs of its aggregated model and of its report.
    struct Scores {
        uint256[] weights;
        uint256 flags;
        string modelCid;
        string reportCid;
    }

    /// @notice A revealed post, as `settle` takes it back.
    struct Post {
        address member;
        Scores scores;
    }

    /// @dev One project's committee terms, fixed before start.
    struct Terms {
        uint8 size; // 0 = never configured: a committee of one at the registry's minimum stake
        uint8 seats; // members drawn (0 before start)
        bool released;
        uint32 window; // the project's aggregation window, copied at the draw
        uint128 minStake;
        uint128 feePerRound;
        uint128 feeLeft; // escrowed fee not yet paid or refunded
    }

    /// @dev The current round's progress, one slot per project reused every round (masks by member index).
    /// A round whose aggregation re-opens (an upheld dispute, or a re-posted bond after expiry) starts a
    /// fresh tally: the committee scores it again.
    struct Tally {
        uint32 marker; // 1 + the round these masks describe
        uint40 opens; // when that aggregation window opened
        uint8 committed;
        uint8 revealed;
        bool settled;
        uint128 carry; // penalty money nobody could take yet (no eligible trainer or member): next round's
    }

    /// @dev What a member's or settler's call reads of the round, once (one Marketplace call, one terms slot).
    struct Window {
        uint256 opens; // when the members' window opened
        uint256 commitEnd;
        uint256 revealEnd;
        uint256 submissions;
        uint256 revealedUpdates; // bit i: submitter i revealed its update
        uint256 seats; // members drawn
    }

    /// @notice Most members a committee has.
    uint256 public constant MAX_SIZE = 7;
    /// @notice A member whose weight shares lie further than this from the consensus shares (L1, in basis
    /// points of the total) deviates. Re-execution on the same inputs measured 0 (bench/reexecution.py);
    /// 1 % leaves room for float noise across machines and is far below any lie that moves pay.
    uint256 public constant SHARE_TOLERANCE_BPS = 100;
    /// @notice A member may disagree with the consensus flags on at most this many trainers (a borderline
    /// detector decision) without deviating.
    uint256 public constant FLAG_TOLERANCE = 1;
    /// @notice A deviating or absent member loses this share of the project's minimum member stake, per round.
    uint256 public constant PENALTY_BPS = 2_000;
    uint256 internal constant WEIGHT_SCALE = 1e9;
    uint256 internal constant BPS = 10_000;
    /// @dev L1 distance units per basis point at WEIGHT_SCALE.
    uint256 internal constant L1_PER_BPS = WEIGHT_SCALE / BPS;

    /// @notice The Marketplace this committee scores for.
    IMarketplace public immutable market;
    /// @notice The registry members are drawn from (created here: this contract is its only privileged caller).
    AggregatorRegistry public immutable registry;

    mapping(uint256 projectId => Terms) internal _terms;
    mapping(uint256 projectId => address[]) internal _members;
    /// @dev 1 + the member's seat (0: not drawn), so that a member's call finds its seat in one read.
    mapping(uint256 projectId => mapping(address member => uint256)) internal _seatPlusOne;
    mapping(uint256 projectId => Tally) internal _tally;
    /// @dev Per member seat: the commitment, replaced at reveal by keccak256(abi.encode(member, scores)).
    mapping(uint256 projectId => bytes32[MAX_SIZE]) internal _seal;
    /// @notice ETH each account may `claim`: member fees and trainers' shares of penalties.
    mapping(address account => uint256) public owed;

    event CommitteeConfigured(uint256 indexed projectId, uint256 size, uint256 minStake, uint256 feePerRound);
    event CommitteeDrawn(uint256 indexed projectId, address[] members);
    event MemberCommitted(uint256 indexed projectId, uint32 indexed round, address indexed member);
    event MemberRevealed(
        uint256 indexed projectId,
        uint32 indexed round,
        address indexed member,
        string modelCid,
        string reportCid,
        uint256[] weights,
        uint256 flags
    );
    event ConsensusSettled(
        uint256 indexed projectId, uint32 indexed round, string modelCid, uint256[] weights, uint256 flags
    );
    event MemberPenalized(
        uint256 indexed projectId,
        uint32 indexed round,
        address indexed member,
        uint256 amount,
        uint256 shareDistanceBps,
        uint256 flagDisagreements
    );
    event MemberPaid(uint256 indexed projectId, uint32 indexed round, address indexed member, uint256 amount);
    event PenaltyShared(uint256 indexed projectId, uint32 indexed round, address indexed trainer, uint256 amount);
    event CommitteeReleased(uint256 indexed projectId);
    event FeeRefunded(uint256 indexed projectId, address indexed owner, uint256 amount);
    event Claimed(address indexed account, uint256 amount);

    /// @notice Only the Marketplace may do this.
    error NotMarket(address caller);
    /// @notice Only the project's owner may do this.
    error NotProjectOwner(address caller);
    /// @notice The project is in the wrong status for this (Pending to configure, closed to release).
    error WrongStatus(MarketplaceStorage.Status status);
    /// @notice The committee was already configured (its terms are fixed).
    error AlreadyConfigured(uint256 projectId);
    /// @notice The size is not odd in 1..7, or the minimum stake is below the registry's.
    error BadCommittee(uint256 size, uint256 minStake);
    /// @notice The ETH sent is not the fee per round times the rounds.
    error FeeMismatch(uint256 sent, uint256 expected);
    /// @notice The caller was not drawn for this project's committee.
    error NotMember(uint256 projectId, address account);
    /// @notice The round is not the one being aggregated (the Marketplace's phase for it is given).
    error NotAggregating(uint32 round, MarketplaceStorage.Phase phase);
    /// @notice Commitments closed at `deadline`.
    error CommitClosed(uint256 deadline);
    /// @notice Reveals open at `opensAt` (or once every member committed).
    error RevealNotOpen(uint256 opensAt);
    /// @notice Reveals closed at `deadline`.
    error RevealClosed(uint256 deadline);
    /// @notice Settling opens at `opensAt` (or once every member revealed).
    error SettleNotOpen(uint256 opensAt);
    error EmptyCommitment();
    error AlreadyCommitted(address member, uint32 round);
    error NoCommitment(address member, uint32 round);
    error AlreadyRevealed(address member, uint32 round);
    /// @notice The revealed scores and salt do not hash to the member's commitment.
    error CommitmentMismatch(address member, uint32 round);
    /// @notice `got` packed weight words for a round whose submissions need `expected`.
    error WeightCount(uint256 got, uint256 expected);
    /// @notice A weight lane past the last submitter is set (in packed word `word`).
    error WeightsBeyondSubmitters(uint256 word);
    /// @notice Flags beyond the submitters, or on a submitter that did not reveal an update.
    error BadFlags(uint256 flags, uint256 revealed);
    error EmptyModelCid();
    error AlreadySettled(uint32 round);
    /// @notice Nobody revealed: the round has no consensus (the Marketplace's no-result rules apply).
    error NoPosts(uint32 round);
    /// @notice `settle` needs exactly the `expected` revealed posts, in committee order.
    error PostCount(uint256 expected, uint256 got);
    /// @notice A post given to `settle` is not what `member` revealed (or is out of order).
    error PostMismatch(address member);
    error NothingToClaim();
    error AlreadyReleased(uint256 projectId);
    /// @notice Only the registry sends ETH here (penalties).
    error UnexpectedPayment(address sender);

    modifier onlyMarket() {
        if (msg.sender != address(market)) revert NotMarket(msg.sender);
        _;
    }

    /// @param market_ The Marketplace (its address is predicted by the deployer: it is created next).
    /// @param cooldown Seconds between a member's exit request and its withdrawal.
    /// @param minimumStake The least stake a registered member holds.
    constructor(address market_, uint64 cooldown, uint128 minimumStake) {
        market = IMarketplace(market_);
        registry = new AggregatorRegistry(address(this), cooldown, minimumStake);
    }

    receive() external payable {
        if (msg.sender != address(registry)) revert UnexpectedPayment(msg.sender);
    }

    // ---------------------------------------------------------------------------------------------
    // Owner: terms
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Sets the project's committee size, its members' minimum stake, and the fee per round paid
     * to members within tolerance (send `feePerRound * rounds` in ETH). Only the owner, once, while the
     * project is Pending. Without it the committee is one member at the registry's minimum, unpaid.
     * @param projectId The project.
     * @param size Members, odd, 1..7.
     * @param minStake The least registry stake a member holds (at least the registry's minimum).
     * @param feePerRound ETH per settled round for the members within tolerance.
     */
    function configure(uint256 projectId, uint8 size, uint128 minStake, uint128 feePerRound) external payable {
        (address owner, MarketplaceStorage.Status status,,,,,) = market.getProject(projectId);
        if (msg.sender != owner) revert NotProjectOwner(msg.sender);
        if (status != MarketplaceStorage.Status.Pending) revert WrongStatus(status);
        Terms storage t = _terms[projectId];
        if (t.size != 0) revert AlreadyConfigured(projectId);
        if (size == 0 || size % 2 == 0 || size > MAX_SIZE || minStake < registry.minimumStake()) {
            revert BadCommittee(size, minStake);
        }
        uint256 fee = uint256(feePerRound) * market.getConfig(projectId).rounds;
        if (msg.value != fee) revert FeeMismatch(msg.value, fee);
        t.size = size;
        t.minStake = minStake;
        t.feePerRound = feePerRound;
        // forge-lint: disable-next-line(unsafe-typecast) -- feePerRound * rounds < 2^128 * 2^24 fits msg.value
        t.feeLeft = uint128(fee);
        emit CommitteeConfigured(projectId, size, minStake, feePerRound);
    }

    /// @notice Called by the Marketplace when the project starts: draws the committee.
    /// @dev The seed is `block.prevrandao` with the project and block: a proposer can withhold its block to
    /// re-roll (forgoing its reward); a VRF's verified random word would replace the seed here.
    function draw(uint256 projectId) external onlyMarket {
        Terms storage t = _terms[projectId];
        bool configured = t.size != 0;
        uint256 size = configured ? t.size : 1;
        uint256 minStake = configured ? t.minStake : registry.minimumStake();
        bytes32 seed = keccak256(abi.encode(block.prevrandao, projectId, block.number));
        t.window = market.getConfig(projectId).aggregationWindow;
        address[] memory chosen = registry.draw(seed, size, minStake);
        _members[projectId] = chosen;
        mapping(address => uint256) storage seatPlusOne = _seatPlusOne[projectId];
        for (uint256 i; i < chosen.length; ++i) {
            seatPlusOne[chosen[i]] = i + 1;
        }
        // forge-lint: disable-next-line(unsafe-typecast) -- the registry draws `size` <= 7 members
        t.seats = uint8(chosen.length);
        // Pre-fill the seats' seals and the tally (no round has marker 2^32 - 1), so that every round's
        // commits rewrite nonzero slots instead of creating them: the draw pays, once.
        bytes32[MAX_SIZE] storage seals = _seal[projectId];
        for (uint256 i; i < size; ++i) {
            seals[i] = bytes32(uint256(1));
        }
        _tally[projectId].marker = type(uint32).max;
        emit CommitteeDrawn(projectId, chosen);
    }

    // ---------------------------------------------------------------------------------------------
    // Members: commit, reveal
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Commits to the caller's scores of `round`, in the first third of the aggregation window.
     * @param commitment `scoresCommitment(member, projectId, round, weights, flags, modelCid, reportCid, salt)`.
     */
    function commitScores(uint256 projectId, uint32 round, bytes32 commitment) external {
        uint256 seat = _seatOf(projectId, msg.sender);
        Window memory w = _window(projectId, round);
        // forge-lint: disable-next-line(block-timestamp) -- windows are minutes to hours long
        if (block.timestamp >= w.commitEnd) revert CommitClosed(w.commitEnd);
        if (commitment == 0) revert EmptyCommitment();
        Tally storage tally = _current(projectId, round, w.opens);
        if ((tally.committed >> seat) & 1 != 0) revert AlreadyCommitted(msg.sender, round);
        // forge-lint: disable-next-line(unsafe-typecast) -- seat < 7
        tally.committed |= uint8(1 << seat);
        _seal[projectId][seat] = commitment;
        emit MemberCommitted(projectId, round, msg.sender);
    }

    /**
     * @notice Reveals the committed scores, in the second third of the aggregation window (earlier once
     * every member committed). The scores must fit the round: one packed weight per submitter, flags only
     * on submitters that revealed an update, a model CID. Only their hash is kept; the event carries them.
     */
    function revealScores(uint256 projectId, uint32 round, Scores calldata scores, bytes32 salt) external {
        uint256 seat = _seatOf(projectId, msg.sender);
        Window memory w = _window(projectId, round);
        Tally storage tally = _current(projectId, round, w.opens);
        // forge-lint: disable-start(block-timestamp) -- windows are minutes to hours long
        if (block.timestamp < w.commitEnd && tally.committed != _fullMask(w.seats)) revert RevealNotOpen(w.commitEnd);
        if (block.timestamp >= w.revealEnd) revert RevealClosed(w.revealEnd);
        // forge-lint: disable-end(block-timestamp)
        if ((tally.committed >> seat) & 1 == 0) revert NoCommitment(msg.sender, round);
        if ((tally.revealed >> seat) & 1 != 0) revert AlreadyRevealed(msg.sender, round);
        if (_seal[projectId][seat] != _commitmentOf(projectId, round, scores, salt)) {
            revert CommitmentMismatch(msg.sender, round);
        }
        _checkScores(scores, w.submissions, w.revealedUpdates);

        // forge-lint: disable-next-line(unsafe-typecast) -- seat < 7
        tally.revealed |= uint8(1 << seat);
        // The member is in the seal: `settle` checks who posted what with this one hash.
        _seal[projectId][seat] = keccak256(abi.encode(msg.sender, scores));
        _emitRevealed(projectId, round, scores);
    }

    function _emitRevealed(uint256 projectId, uint32 round, Scores calldata scores) private {
        emit MemberRevealed(
            projectId, round, msg.sender, scores.modelCid, scores.reportCid, scores.weights, scores.flags
        );
    }

    // ---------------------------------------------------------------------------------------------
    // Anyone: settle
    // ---------------------------------------------------------------------------------------------

    /**
     * @notice Settles `round`: checks `posts` (every revealed post, in committee order) against the
     * revealed hashes, posts the consensus to the Marketplace, penalises deviating and absent members and
     * shares the penalties and the fee. Anyone, in the last third of the aggregation window (earlier once
     * every member revealed).
     * @dev The consensus model CID is the one a strict majority of the committee revealed (honest members
     * aggregate the same kept updates deterministically, so they publish the same bytes); without such a
     * majority the previous model carries forward.
     */
    function settle(uint256 projectId, uint32 round, Post[] calldata posts) external nonReentrant {
        Window memory w = _window(projectId, round);
        Tally storage tally = _current(projectId, round, w.opens);
        if (tally.settled) revert AlreadySettled(round);
        uint8 revealedSeats = tally.revealed;
        // forge-lint: disable-next-line(block-timestamp) -- windows are minutes to hours long
        if (block.timestamp < w.revealEnd && revealedSeats != _fullMask(w.seats)) revert SettleNotOpen(w.revealEnd);
        if (revealedSeats == 0) revert NoPosts(round);
        tally.settled = true;

        (uint256[][] memory words, uint256[] memory flags) = _openPosts(projectId, revealedSeats, posts);
        (uint256[] memory median, uint256 majority) = Consensus.settlePacked(words, flags, w.submissions, w.seats);
        _settleMoney(projectId, round, tally, posts, words, median, majority, w);
        _postConsensus(projectId, round, posts, median, majority, w.seats);
    }

    /// @dev Penalties, the fee, and the pot they make for the trainers.
    function _settleMoney(
        uint256 projectId,
        uint32 round,
        Tally storage tally,
        Post[] calldata posts,
        uint256[][] memory words,
        uint256[] memory median,
        uint256 majority,
        Window memory w
    ) private {
        uint8 revealedSeats = tally.revealed;
        uint256 n = w.submissions;
        (uint256 honest, uint256 pot) = _judge(projectId, round, posts, words, revealedSeats, median, majority, n);
        pot += _penalizeAbsent(projectId, round, _fullMask(w.seats) & ~uint256(revealedSeats), n);
        pot += tally.carry + _payFee(projectId, round, honest);
        if (tally.carry != 0) tally.carry = 0;
        if (pot != 0) {
            _share(projectId, round, tally, pot, Consensus.unpack(median, n), majority | ~w.revealedUpdates, honest);
        }
    }

    /// @dev Posts the consensus (its weights are packed as the Marketplace takes them) with its model and report.
    function _postConsensus(
        uint256 projectId,
        uint32 round,
        Post[] calldata posts,
        uint256[] memory median,
        uint256 majority,
        uint256 seats
    ) private {
        (string memory model, string memory report) = _modelOf(projectId, posts, seats);
        emit ConsensusSettled(projectId, round, model, median, majority);
        market.postResult(projectId, round, model, report, median, majority);
    }

    // ---------------------------------------------------------------------------------------------
    // Payouts and release
    // ---------------------------------------------------------------------------------------------

    /// @notice Pays the caller what it is owed here (member fees, trainers' shares of penalties).
    function claim() external nonReentrant {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingToClaim();
        owed[msg.sender] = 0;
        emit Claimed(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Frees the members of a closed project in the registry (they may exit again). Anyone.
    function release(uint256 projectId) external {
        (, MarketplaceStorage.Status status,,,,,) = market.getProject(projectId);
        _requireClosed(status);
        Terms storage t = _terms[projectId];
        if (t.released) revert AlreadyReleased(projectId);
        t.released = true;
        emit CommitteeReleased(projectId);
        address[] memory chosen = _members[projectId];
        for (uint256 i; i < chosen.length; ++i) {
            registry.release(chosen[i]);
        }
    }

    /// @notice Returns to the owner the fee of rounds that were never settled, once the project closed.
    function refundFee(uint256 projectId) external nonReentrant {
        (address owner, MarketplaceStorage.Status status,,,,,) = market.getProject(projectId);
        if (msg.sender != owner) revert NotProjectOwner(msg.sender);
        _requireClosed(status);
        Terms storage t = _terms[projectId];
        uint256 amount = t.feeLeft;
        if (amount == 0) revert NothingToClaim();
        t.feeLeft = 0;
        emit FeeRefunded(projectId, owner, amount);
        Address.sendValue(payable(owner), amount);
    }

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @notice The hash a member commits to: keccak256(abi.encode(member, projectId, round, weights, flags,
    /// modelCid, reportCid, salt)), weights packed as `postResult` takes them.
    function scoresCommitment(
        address member,
        uint256 projectId,
        uint32 round,
        uint256[] calldata weights,
        uint256 flags,
        string calldata modelCid,
        string calldata reportCid,
        bytes32 salt
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(member, projectId, round, weights, flags, modelCid, reportCid, salt));
    }

    /// @notice The members drawn for the project (empty before start), in seat order.
    function membersOf(uint256 projectId) external view returns (address[] memory) {
        return _members[projectId];
    }

    /// @notice The project's committee terms: size (0 = the default of one), minimum stake, fee per round,
    /// fee still escrowed, and whether its members were released.
    function termsOf(uint256 projectId)
        external
        view
        returns (uint256 size, uint256 minStake, uint256 feePerRound, uint256 feeLeft, bool released)
    {
        Terms memory t = _terms[projectId];
        return (t.size, t.minStake, t.feePerRound, t.feeLeft, t.released);
    }

    /// @notice Progress of the project's latest members' window with activity: its round, when it opened
    /// (compare with `deadlinesOf`: an older window's progress is stale), the seats that committed and
    /// revealed (bit = seat), and whether it was settled.
    function progressOf(uint256 projectId)
        external
        view
        returns (bool any, uint32 round, uint256 opensAt, uint256 committed, uint256 revealed, bool settled)
    {
        Tally memory tally = _tally[projectId];
        if (tally.marker == 0 || tally.marker == type(uint32).max) return (false, 0, 0, 0, 0, false);
        return (true, tally.marker - 1, tally.opens, tally.committed, tally.revealed, tally.settled);
    }

    /// @notice When the members' window for `round` opened (a re-opened aggregation opens a new one), and
    /// when commitments, reveals and settlement close (reverts unless the round is Aggregating).
    function deadlinesOf(uint256 projectId, uint32 round)
        external
        view
        returns (uint256 opensAt, uint256 commitDeadline, uint256 revealDeadline, uint256 settleDeadline)
    {
        Window memory w = _window(projectId, round);
        return (w.opens, w.commitEnd, w.revealEnd, w.opens + _terms[projectId].window);
    }

    // ---------------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------------

    /// @dev `scoresCommitment` of the caller's scores.
    function _commitmentOf(uint256 projectId, uint32 round, Scores calldata scores, bytes32 salt)
        private
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                msg.sender, projectId, round, scores.weights, scores.flags, scores.modelCid, scores.reportCid, salt
            )
        );
    }

    /// @dev The member's seat (index in the committee), or NotMember.
    function _seatOf(uint256 projectId, address account) private view returns (uint256) {
        uint256 seatPlusOne = _seatPlusOne[projectId][account];
        if (seatPlusOne == 0) revert NotMember(projectId, account);
        return seatPlusOne - 1;
    }

    function _fullMask(uint256 seats) private pure returns (uint256) {
        return (uint256(1) << seats) - 1;
    }

    /// @dev When the round's aggregation window opened, the members' commit and reveal deadlines (its
    /// thirds), the submission count, the submitters that revealed and the seats; reverts unless the
    /// Marketplace is aggregating `round`.
    function _window(uint256 projectId, uint32 round) private view returns (Window memory w) {
        (MarketplaceStorage.Phase phase, uint256 aggregationDeadline, uint256 submissions, uint256 revealed) =
            market.aggregationOf(projectId, round);
        if (phase != MarketplaceStorage.Phase.Aggregating) revert NotAggregating(round, phase);
        Terms storage t = _terms[projectId];
        uint256 window = t.window;
        // Opened at the trainers' reveal deadline, or when aggregation re-opened with a fresh deadline.
        w.opens = aggregationDeadline - window;
        uint256 third = window / 3;
        w.commitEnd = w.opens + third;
        w.revealEnd = w.opens + 2 * third;
        w.submissions = submissions;
        w.revealedUpdates = revealed;
        w.seats = t.seats;
    }

    /// @dev The tally slot, reset for a new round or a re-opened aggregation (nonzero-to-nonzero writes
    /// after the first round).
    function _current(uint256 projectId, uint32 round, uint256 opens) private returns (Tally storage tally) {
        tally = _tally[projectId];
        uint32 marker = round + 1;
        if (tally.marker != marker || tally.opens != opens) {
            tally.marker = marker;
            // forge-lint: disable-next-line(unsafe-typecast) -- timestamps fit 40 bits for millennia
            tally.opens = uint40(opens);
            tally.committed = 0;
            tally.revealed = 0;
            tally.settled = false;
        }
    }

    /// @dev Named reverts for scores that cannot be settled, so that a malformed post is refused at its
    /// reveal (its member then counts as absent) and never reaches `settle`.
    function _checkScores(Scores calldata scores, uint256 n, uint256 revealed) private pure {
        uint256 words = (n + 7) >> 3;
        if (scores.weights.length != words) revert WeightCount(scores.weights.length, words);
        if (n & 7 != 0 && scores.weights[n >> 3] >> ((n & 7) << 5) != 0) revert WeightsBeyondSubmitters(n >> 3);
        uint256 flags = scores.flags;
        if ((n < 256 && flags >> n != 0) || flags & ~revealed != 0) revert BadFlags(flags, revealed);
        if (bytes(scores.modelCid).length == 0) revert EmptyModelCid();
    }

    /// @dev Checks that `posts` are exactly the revealed ones, in seat order (one hash each: the seal binds
    /// the member to its scores), and returns their packed weights and flags.
    function _openPosts(uint256 projectId, uint8 revealedSeats, Post[] calldata posts)
        private
        view
        returns (uint256[][] memory words, uint256[] memory flags)
    {
        uint256 count = Consensus.popcount(revealedSeats);
        if (posts.length != count) revert PostCount(count, posts.length);
        words = new uint256[][](count);
        flags = new uint256[](count);
        bytes32[MAX_SIZE] storage seals = _seal[projectId];
        uint256 seat;
        for (uint256 p; p < count; ++p) {
            while ((revealedSeats >> seat) & 1 == 0) ++seat;
            Post calldata post = posts[p];
            if (keccak256(abi.encode(post.member, post.scores)) != seals[seat]) revert PostMismatch(post.member);
            words[p] = post.scores.weights;
            flags[p] = post.scores.flags;
            ++seat;
        }
    }

    /// @dev The model CID a strict majority of the committee revealed, with the report of the first member
    /// that revealed it; else the previous model and no report.
    function _modelOf(uint256 projectId, Post[] calldata posts, uint256 seats)
        private
        view
        returns (string memory model, string memory report)
    {
        uint256 count = posts.length;
        bytes32[] memory ids = new bytes32[](count);
        for (uint256 p; p < count; ++p) {
            ids[p] = keccak256(bytes(posts[p].scores.modelCid));
        }
        for (uint256 p; p < count; ++p) {
            uint256 votes;
            for (uint256 q; q < count; ++q) {
                if (ids[q] == ids[p]) ++votes;
            }
            if (votes * 2 > seats) return (posts[p].scores.modelCid, posts[p].scores.reportCid);
        }
        return (market.globalModelCid(projectId), "");
    }

    /// @dev Penalises each revealed member whose post strays from the consensus beyond the tolerance;
    /// returns the seats of the others (the honest ones, paid the fee) and the stake taken. Zeroes the
    /// flagged lanes of `words` (see `Consensus.distance`).
    function _judge(
        uint256 projectId,
        uint32 round,
        Post[] calldata posts,
        uint256[][] memory words,
        uint8 revealedSeats,
        uint256[] memory median,
        uint256 majority,
        uint256 n
    ) private returns (uint256 honest, uint256 taken) {
        uint256 seat;
        for (uint256 p; p < posts.length; ++p) {
            while ((revealedSeats >> seat) & 1 == 0) ++seat;
            (uint256 l1, uint256 flagsOff) =
                Consensus.distancePacked(words[p], posts[p].scores.flags, median, majority, n, WEIGHT_SCALE);
            if (l1 <= SHARE_TOLERANCE_BPS * L1_PER_BPS && flagsOff <= FLAG_TOLERANCE) {
                honest |= uint256(1) << seat;
            } else {
                taken += _penalize(projectId, round, posts[p].member, (l1 + L1_PER_BPS - 1) / L1_PER_BPS, flagsOff);
            }
            ++seat;
        }
    }

    /// @dev Penalises the members of `seats` (they never revealed) as maximally distant; returns what was taken.
    function _penalizeAbsent(uint256 projectId, uint32 round, uint256 seats, uint256 n)
        private
        returns (uint256 taken)
    {
        address[] storage chosen = _members[projectId];
        for (uint256 seat; seats >> seat != 0; ++seat) {
            if ((seats >> seat) & 1 == 0) continue;
            taken += _penalize(projectId, round, chosen[seat], 2 * BPS, n);
        }
    }

    /// @dev Takes the per-round penalty from `member`'s registry stake (the ETH arrives here).
    function _penalize(uint256 projectId, uint32 round, address member, uint256 distanceBps, uint256 flagsOff)
        private
        returns (uint256 taken)
    {
        uint256 amount = uint256(_terms[projectId].minStake) * PENALTY_BPS / BPS;
        if (amount == 0) amount = registry.minimumStake() * PENALTY_BPS / BPS;
        taken = registry.penalize(member, amount);
        emit MemberPenalized(projectId, round, member, taken, distanceBps, flagsOff);
    }

    /// @dev Splits the round's fee among the honest seats; returns what is left for the trainers (the
    /// deviators' and absentees' shares and the division dust).
    function _payFee(uint256 projectId, uint32 round, uint256 honest) private returns (uint256 left) {
        Terms storage t = _terms[projectId];
        uint256 fee = t.feePerRound;
        if (fee == 0) return 0;
        if (fee > t.feeLeft) fee = t.feeLeft;
        // forge-lint: disable-next-line(unsafe-typecast) -- fee <= feeLeft, a uint128
        t.feeLeft -= uint128(fee);
        uint256 count = Consensus.popcount(honest);
        if (count == 0) return fee;
        uint256 each = fee / count;
        address[] storage chosen = _members[projectId];
        for (uint256 seat; honest >> seat != 0; ++seat) {
            if ((honest >> seat) & 1 == 0) continue;
            owed[chosen[seat]] += each;
            emit MemberPaid(projectId, round, chosen[seat], each);
        }
        return fee - each * count;
    }

    /// @dev Shares `pot` among the round's trainers outside `excluded`, pro rata to their consensus weights;
    /// with no such weight, among the honest members; with none either, it waits for the next round.
    function _share(
        uint256 projectId,
        uint32 round,
        Tally storage tally,
        uint256 pot,
        uint256[] memory median,
        uint256 excluded,
        uint256 honest
    ) private {
        uint256 n = median.length;
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            if ((excluded >> i) & 1 == 0) sum += median[i];
        }
        if (sum == 0) {
            uint256 count = Consensus.popcount(honest);
            // forge-lint: disable-next-line(unsafe-typecast) -- pot <= penalties and fees held here
            if (count == 0) tally.carry += uint128(pot);
            else _payFeeShares(projectId, round, honest, pot, count);
            return;
        }
        address[] memory trainers = market.getSubmitters(projectId, round);
        uint256 paid;
        address last;
        for (uint256 i; i < n; ++i) {
            if ((excluded >> i) & 1 != 0 || median[i] == 0) continue;
            uint256 part = pot * median[i] / sum;
            owed[trainers[i]] += part;
            paid += part;
            last = trainers[i];
            emit PenaltyShared(projectId, round, trainers[i], part);
        }
        // The division dust goes to the last trainer paid.
        owed[last] += pot - paid;
    }

    function _payFeeShares(uint256 projectId, uint32 round, uint256 honest, uint256 pot, uint256 count) private {
        address[] storage chosen = _members[projectId];
        uint256 each = pot / count;
        uint256 dust = pot - each * count;
        for (uint256 seat; honest >> seat != 0; ++seat) {
            if ((honest >> seat) & 1 == 0) continue;
            owed[chosen[seat]] += each + dust;
            emit MemberPaid(projectId, round, chosen[seat], each + dust);
            dust = 0;
        }
    }

    function _requireClosed(MarketplaceStorage.Status status) private pure {
        if (status != MarketplaceStorage.Status.Ended && status != MarketplaceStorage.Status.Cancelled) {
            revert WrongStatus(status);
        }
    }
}
