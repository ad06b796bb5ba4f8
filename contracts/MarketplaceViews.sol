// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketplaceStorage} from "./MarketplaceStorage.sol";
import {SubmitterList} from "./lib/SubmitterList.sol";
import {PackedResult} from "./lib/PackedResult.sol";
import {CidPair} from "./lib/CidPair.sol";

/**
 * @title MarketplaceViews
 * @notice The Marketplace's read-only functions. The Marketplace deploys this contract in its constructor
 * and delegatecalls it for every selector it does not implement itself, so clients call these functions
 * on the Marketplace's address, with the Marketplace's storage.
 * @dev Holds no state of its own and changes none: called directly, it reads its own empty storage.
 */
contract MarketplaceViews is MarketplaceStorage {
    using SubmitterList for SubmitterList.List;
    using PackedResult for PackedResult.Slots;
    using CidPair for CidPair.Pair;

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
     * @notice The deadlines that release funds when someone is absent, for the current round: the start
     * deadline of a Pending project, the end of the no-result grace period (after which `finalize` splits
     * the budget among the submitters), and the ruling deadline of a dispute (after which it is rejected).
     * Also whether the owner cancelled (the current round is then the last).
     */
    function getLiveness(uint256 projectId)
        external
        view
        returns (uint64 startDeadline, uint64 graceDeadline, uint64 rulingDeadline, bool cancelled)
    {
        Project storage p = _project(projectId);
        RoundState storage r = _ring[projectId][p.currentRound & 1];
        uint64 window = _schedules[projectId].aggregationWindow;
        graceDeadline = p.status == Status.Running ? uint64(r.aggregationDeadline) + window : 0;
        rulingDeadline = r.phase == Phase.Disputed ? uint64(r.challengeDeadline) + window : 0;
        return (p.startDeadline, graceDeadline, rulingDeadline, p.cancelled);
    }

    /**
     * @notice What the project left for its trainers when it closed (paid with `withdrawStake`), the
     * shares not yet taken, and whether every submitter (not only the never-flagged ones) shares it.
     */
    function getEndPot(uint256 projectId) external view returns (uint256 pot, uint256 shares, bool toAllSubmitters) {
        Project storage p = _project(projectId);
        return (p.endPot, p.endShares, p.endToAll);
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
        openedAt = r.submissionDeadline - _schedules[projectId].submissionWindow;
        submissionDeadline = r.submissionDeadline;
        aggregationDeadline = r.aggregationDeadline;
        submissions = r.submissions;
        budget = r.budget;
        if (phase == Phase.Challenge || phase == Phase.Disputed || phase == Phase.Final) {
            challengeDeadline = r.challengeDeadline;
            (globalModelCid_, reportCid) = r.cids.load();
        }
    }

    /// @notice CID of the latest final global model, or the initial model before any round is final.
    function globalModelCid(uint256 projectId) external view returns (string memory model) {
        Project storage p = _project(projectId);
        uint32 round = p.currentRound;
        RoundState storage latest = _ring[projectId][round & 1];
        // The current round's entry holds the latest model once it is final (the project closed after it).
        bool currentFinal = p.status != Status.Running && p.status != Status.Pending && latest.phase == Phase.Final;
        (model,) = _ring[projectId][(currentFinal ? round : round + 1) & 1].cids.load();
    }

    /// @notice The round's submitters in commit order, for the current and the previous round (older
    /// rounds: empty; their commitments are in `UpdateCommitted` events).
    function getSubmitters(uint256 projectId, uint32 round) external view returns (address[] memory submitters) {
        _project(projectId);
        RoundState storage r = _ring[projectId][round & 1];
        if (r.number != round) return new address[](0);
        SubmitterList.List storage list = _submitters[projectId][round & 1];
        uint256 n = r.submissions;
        submitters = new address[](n);
        for (uint256 i; i < n; ++i) {
            submitters[i] = list.at(i);
        }
    }

    /**
     * @notice The commitment a trainer made in `round`, while that is its latest one (zero if it did not
     * commit then), and its commit index. The contract keeps the hash's top 192 bits: the low 64 bits read
     * as zero. Every commitment is in full in its `UpdateCommitted` event.
     */
    function getCommitment(uint256 projectId, uint32 round, address trainer)
        external
        view
        returns (bytes32 commitment, uint16 index)
    {
        Seat storage seat = _seats[projectId][trainer];
        if (seat.committedRound != uint256(round) + 1) return (bytes32(0), 0);
        return (bytes32(uint256(seat.commitment) << 64), seat.index);
    }

    /**
     * @notice The reveal deadline of a round held in the ring and which submitters (bit i: commit index i)
     * revealed; zeroes for rounds no longer held.
     */
    function getReveals(uint256 projectId, uint32 round)
        external
        view
        returns (uint64 revealDeadline, uint256 revealed)
    {
        _project(projectId);
        RoundState storage r = _ring[projectId][round & 1];
        if (r.number != round) return (0, 0);
        return (r.revealDeadline, _revealed(r));
    }

    /// @notice The commitment `commitUpdate` expects: keccak256(abi.encode(trainer, projectId, round, cid, salt)).
    function commitmentOf(address trainer, uint256 projectId, uint32 round, string calldata cid, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(trainer, projectId, round, cid, salt));
    }

    /**
     * @notice A trainer's membership (false once evicted), currently held stake (zero once withdrawn),
     * total slashed and the round it joined in.
     */
    function getTrainer(uint256 projectId, address trainer)
        external
        view
        returns (bool joined, uint256 stake, uint256 slashed, uint32 joinedRound)
    {
        Account storage a = _accounts[projectId][trainer];
        if (a.flags & JOINED == 0) return (false, 0, 0, 0);
        return (
            _seats[projectId][trainer].flags & HELD != 0,
            a.flags & WITHDRAWN != 0 ? 0 : a.stake,
            _configs[projectId].stake - a.stake,
            a.joinedRound
        );
    }

    /**
     * @notice Whether anyone may `evict` the trainer now (it holds a slot and missed `MISSED_ROUNDS_LIMIT`
     * rounds in a row), and the round from which its misses are counted.
     */
    function isEvictable(uint256 projectId, address trainer) external view returns (bool, uint32 activeRound) {
        Project storage p = _project(projectId);
        Seat storage seat = _seats[projectId][trainer];
        bool missed = p.currentRound >= uint256(seat.activeRound) + MISSED_ROUNDS_LIMIT;
        return (p.status == Status.Running && seat.flags & HELD != 0 && missed, seat.activeRound);
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
        if (r.number != round || r.challengeDeadline == 0) return (new uint32[](0), 0);
        PackedResult.Slots storage res = _results[projectId][round & 1];
        return (res.read(r.submissions), r.flagged ? res.flags : r.lowFlags);
    }

    /// @notice The owner's remainder: creation dust and budgets of rounds without a submission, withdrawable
    /// once the project Ended or was Cancelled.
    function remainder(uint256 projectId) external view returns (uint256) {
        return _projects[projectId].remainder;
    }

    /// @notice The disputer of the current round while it is Disputed, else address(0).
    function disputer(uint256 projectId) external view returns (address) {
        return _projects[projectId].disputer;
    }
}
