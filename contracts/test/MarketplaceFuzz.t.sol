// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {MarketplaceViews} from "../MarketplaceViews.sol";
import {MarketplaceStorage} from "../MarketplaceStorage.sol";
import {MarketFixture} from "./Base.t.sol";

/// @notice Properties of the reward arithmetic over fuzzed weights, flags, pools and trainer counts.
contract MarketplaceFuzzTest is MarketFixture {
    /// Rewards are exactly floor(budget * w_i / Σw); what is not paid carries forward, and it is less
    /// than one wei per paid trainer.
    function testFuzz_rewardSplit_isProportionalAndCarriesOnlyDust(uint256 nSeed, uint256 wSeed) public {
        uint256 n = bound(nSeed, 1, 8);
        uint256 id = running(_cfg(3, 8), n);
        uint32[] memory w = _weights(n, wSeed);
        uint256 budget = roundBudget(id, 0);
        playRound(id, 0, n, w, 0);

        uint256 sum;
        for (uint256 i; i < n; ++i) {
            sum += w[i];
        }
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            uint256 expected = sum == 0 ? 0 : budget * w[i] / sum;
            assertEq(views.claimable(id, trainer(i)), expected, "reward_i = budget * w_i / sum");
            paid += expected;
        }
        uint256 carried = budget - paid;
        assertLe(carried, sum == 0 ? budget : n, "only dust carries when anyone has weight");
        assertEq(roundBudget(id, 1), POOL / 3 + carried, "carry opens the next round");
    }

    /// Each flagged trainer loses min(stake * slashBps, stake left), which funds the unflagged trainers;
    /// flagged trainers earn nothing whatever their weight.
    function testFuzz_slashing_fundsTheRoundAndSkipsOffenders(uint256 nSeed, uint256 flagSeed, uint16 slashBps) public {
        uint256 n = bound(nSeed, 2, 8);
        MarketplaceStorage.ProjectConfig memory cfg = _cfg(2, 8);
        cfg.slashBps = uint16(bound(slashBps, 0, 10_000));
        uint256 id = running(cfg, n);
        uint256 flags = flagSeed & ((1 << n) - 1);
        uint256 budget = roundBudget(id, 0);
        uint32[] memory w = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            w[i] = uint32(1 + i);
        }
        playRound(id, 0, n, w, flags);

        uint256 penalty = STAKE * cfg.slashBps / 10_000;
        uint256 slashedTotal;
        uint256 unflaggedSum;
        for (uint256 i; i < n; ++i) {
            (, uint256 stake, uint256 slashed,) = views.getTrainer(id, trainer(i));
            bool flagged = flags & (1 << i) != 0;
            assertEq(slashed, flagged ? penalty : 0, "slash is the configured share");
            assertEq(stake, STAKE - slashed, "stake reduced by the slash");
            slashedTotal += slashed;
            if (!flagged) unflaggedSum += w[i];
        }
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            uint256 got = views.claimable(id, trainer(i));
            if (flags & (1 << i) != 0) {
                assertEq(got, 0, "offenders earn nothing");
            } else {
                assertEq(got, (budget + slashedTotal) * w[i] / unflaggedSum, "slashes join the budget");
            }
            paid += got;
        }
        assertEq(roundBudget(id, 1), POOL / 2 + budget + slashedTotal - paid, "rest carries");
    }

    /// Over a whole project, trainers' rewards plus their end pot is exactly the pool: dust never
    /// disappears, and rounds with submissions leave the owner nothing.
    function testFuzz_dustCarry_conservesThePoolAcrossAllRounds(uint256 poolSeed, uint256 roundsSeed, uint256 wSeed)
        public
    {
        uint32 rounds = uint32(bound(roundsSeed, 1, 6));
        MarketplaceStorage.ProjectConfig memory cfg = _cfg(rounds, 4);
        cfg.pool = bound(poolSeed, rounds, 1e27);
        // The minimum bonds grow with the round budget.
        cfg.aggregatorBond = cfg.pool / rounds / 10 + 1;
        cfg.disputeBond = cfg.pool / rounds / 100 + 1;
        vm.deal(owner, cfg.pool);
        uint256 id = running(cfg, 3);
        for (uint32 r; r < rounds; ++r) {
            playRound(id, r, 3, _weights(3, uint256(keccak256(abi.encode(wSeed, r)))), 0);
        }
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Ended, "ended");
        uint256 paid;
        for (uint256 i; i < 3; ++i) {
            paid += views.claimable(id, trainer(i));
        }
        (uint256 pot,,) = views.getEndPot(id);
        assertEq(views.remainder(id), 0, "the owner gets nothing back from rounds with submissions");
        assertEq(paid + pot, cfg.pool, "every wei of the pool is accounted for");
        assertEq(address(market).balance, cfg.pool + 3 * STAKE + cfg.aggregatorBond, "balance matches obligations");
    }

    /// Extreme weights: one trainer at 2^32-1 and the rest at 1, or everyone at 0. No overflow, and an
    /// all-zero round carries its whole budget.
    function testFuzz_weightsAtExtremes_oneHugeOrAllZero(uint256 nSeed, uint256 bigSeed, bool allZero) public {
        uint256 n = bound(nSeed, 1, 8);
        uint256 big = bound(bigSeed, 0, n - 1);
        uint256 id = running(_cfg(2, 8), n);
        uint256 budget = roundBudget(id, 0);
        uint32[] memory w = new uint32[](n);
        if (!allZero) {
            for (uint256 i; i < n; ++i) {
                w[i] = i == big ? type(uint32).max : 1;
            }
        }
        playRound(id, 0, n, w, 0);
        if (allZero) {
            for (uint256 i; i < n; ++i) {
                assertEq(views.claimable(id, trainer(i)), 0, "nobody paid");
            }
            assertEq(roundBudget(id, 1), POOL / 2 + budget, "whole budget carried");
        } else {
            uint256 sum = uint256(type(uint32).max) + n - 1;
            assertEq(views.claimable(id, trainer(big)), budget * type(uint32).max / sum, "huge weight share");
            for (uint256 i; i < n; ++i) {
                if (i != big) assertEq(views.claimable(id, trainer(i)), budget / sum, "unit share");
            }
        }
    }

    /// forge-config: default.fuzz.runs = 8
    /// The 256-trainer cap: a full round with fuzzed weights and flags settles and conserves funds.
    function testFuzz_fullProjectOf256Trainers_settlesAndConserves(uint256 wSeed, uint256 flagSeed) public {
        MarketplaceStorage.ProjectConfig memory cfg = _cfg(1, 256);
        uint256 id = running(cfg, 256);
        uint32[] memory w = _weights(256, wSeed);
        playRound(id, 0, 256, w, flagSeed);
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Ended, "ended");

        (uint256 held,,) = views.getEndPot(id);
        held += views.remainder(id);
        for (uint256 i; i < 256; ++i) {
            (, uint256 stake,,) = views.getTrainer(id, trainer(i));
            held += stake + views.claimable(id, trainer(i));
            if (flagSeed & (1 << i) != 0) assertEq(views.claimable(id, trainer(i)), 0, "offender unpaid");
        }
        (,,,,, uint256 bondBal,) = views.getProject(id);
        assertEq(address(market).balance, held + bondBal, "balance == rewards + stakes + bond + remainder");
    }

    /// Cancelling after k final rounds refunds exactly the budgets of the rounds that never had a
    /// submission: final rewards and their dust stay with the trainers.
    function testFuzz_cancel_refundsOnlyRoundsWithoutAResult(uint256 kSeed, uint256 wSeed) public {
        uint32 k = uint32(bound(kSeed, 0, 3));
        uint256 id = running(_cfg(4, 4), 2);
        for (uint32 r; r < k; ++r) {
            playRound(id, r, 2, _weights(2, uint256(keccak256(abi.encode(wSeed, r)))), 0);
        }
        uint256 paid = views.claimable(id, trainer(0)) + views.claimable(id, trainer(1));
        vm.prank(owner);
        market.cancel(id);
        (uint256 pot,,) = views.getEndPot(id);
        assertEq(views.remainder(id), (POOL / 4) * (4 - k), "refund is the rounds without a submission");
        assertEq(paid + pot + views.remainder(id), POOL, "the rest is the trainers'");
    }

    // ---------------------------------------------------------------------------------------------

    function _cfg(uint32 rounds, uint16 maxTrainers)
        internal
        view
        returns (MarketplaceStorage.ProjectConfig memory cfg)
    {
        cfg = defaultConfig();
        cfg.rounds = rounds;
        cfg.minTrainers = 1;
        cfg.maxTrainers = maxTrainers;
    }

    /// @dev Weights drawn from the seed, with zeros, small and full-range values all likely.
    function _weights(uint256 n, uint256 seed) internal pure returns (uint32[] memory w) {
        w = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            uint256 x = uint256(keccak256(abi.encode(seed, i)));
            uint256 kind = x % 4;
            if (kind == 0) w[i] = 0;
            else if (kind == 1) w[i] = uint32(x >> 8) % 1000;
            else w[i] = uint32(x >> 40);
        }
    }
}
