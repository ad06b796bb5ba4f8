// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {MarketplaceStorage} from "./MarketplaceStorage.sol";
import {PackedResult} from "./lib/PackedResult.sol";
import {CidPair} from "./lib/CidPair.sol";

/**
 * @title MarketplaceSetup
 * @notice Project creation (configuration rules, escrow, storage pre-fill) and the owner's validation
 * reveal. The Marketplace deploys this contract in its constructor and delegatecalls it for these two
 * functions, so they run on the Marketplace's storage and funds; called directly, they touch only this
 * contract's own empty storage.
 */
contract MarketplaceSetup is MarketplaceStorage, ReentrancyGuardTransient {
    using PackedResult for PackedResult.Slots;
    using CidPair for CidPair.Pair;

    /// @notice The committee every project's `aggregator` must be.
    address public immutable COMMITTEE;

    constructor(address committee) {
        COMMITTEE = committee;
    }

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
        // The rounding dust joins round 0's budget (and, unpaid, stays with the trainers).
        p.carry = uint128(cfg.pool % cfg.rounds);
        p.rounds = cfg.rounds;
        // forge-lint: disable-next-line(unsafe-typecast) -- timestamps fit 40 bits for millennia
        p.startDeadline = uint40(block.timestamp + START_WINDOW);
        // forge-lint: disable-next-line(unsafe-typecast) -- penalty <= stake <= type(uint88).max (checked in _validateConfig)
        p.penalty = uint96(cfg.stake * cfg.slashBps / BPS);
        // forge-lint: disable-start(unsafe-typecast) -- windows <= MAX_WINDOW (checked in _validateConfig)
        _schedules[projectId] = Schedule({
            aggregator: cfg.aggregator,
            submissionWindow: uint24(cfg.submissionWindow),
            revealWindow: uint24(cfg.revealWindow),
            aggregationWindow: uint24(cfg.aggregationWindow),
            challengePeriod: uint24(cfg.challengePeriod)
        });
        // forge-lint: disable-end(unsafe-typecast)

        // Pre-fill both ring entries so round writes never pay for fresh slots. The previous round of
        // round 0 is entry 1, whose model is the initial model.
        RoundState[2] storage ring = _ring[projectId];
        for (uint256 i; i < 2; ++i) {
            ring[i].number = NO_ROUND;
            ring[i].budget = 1;
            ring[i].unrevealed = type(uint256).max;
            ring[i].cids.store(cfg.initialModelCid, cfg.initialModelCid);
            _results[projectId][i].prefill(cfg.maxTrainers);
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
    // Configuration rules
    // ---------------------------------------------------------------------------------------------

    function _validateConfig(ProjectConfig calldata cfg) private view {
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
        // The owner does not choose who scores: the committee draws the members at start.
        if (cfg.aggregator != COMMITTEE) revert InvalidConfig(ConfigError.NotCommittee);
        if (cfg.arbiter == address(0)) revert InvalidConfig(ConfigError.ZeroArbiter);
        // An owner (or aggregator) judging disputes about its own round is no judge.
        if (cfg.arbiter == msg.sender || cfg.arbiter == cfg.aggregator) {
            revert InvalidConfig(ConfigError.ArbiterNotIndependent);
        }
        // The aggregator must risk a meaningful share of what a round pays; a dispute must cost something.
        uint256 perRound = cfg.pool / cfg.rounds;
        if (cfg.aggregatorBond * BPS < perRound * MIN_AGGREGATOR_BOND_BPS || cfg.aggregatorBond == 0) {
            revert InvalidConfig(ConfigError.AggregatorBondTooSmall);
        }
        if (cfg.disputeBond * BPS < perRound * MIN_DISPUTE_BOND_BPS || cfg.disputeBond == 0) {
            revert InvalidConfig(ConfigError.DisputeBondTooSmall);
        }
        if (
            cfg.submissionWindow == 0 || cfg.revealWindow == 0 || cfg.aggregationWindow == 0 || cfg.challengePeriod == 0
        ) revert InvalidConfig(ConfigError.ZeroWindow);
        if (
            cfg.submissionWindow > MAX_WINDOW || cfg.revealWindow > MAX_WINDOW || cfg.aggregationWindow > MAX_WINDOW
                || cfg.challengePeriod > MAX_WINDOW
        ) revert InvalidConfig(ConfigError.WindowTooLong);
        if (bytes(cfg.specCid).length == 0) revert InvalidConfig(ConfigError.EmptySpec);
        if (bytes(cfg.initialModelCid).length == 0) revert InvalidConfig(ConfigError.EmptyInitialModel);
    }
}
