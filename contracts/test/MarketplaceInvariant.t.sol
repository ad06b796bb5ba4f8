// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {MarketplaceViews} from "../MarketplaceViews.sol";
import {MarketplaceSetup} from "../MarketplaceSetup.sol";
import {MarketplaceStorage} from "../MarketplaceStorage.sol";
import {TestToken} from "../mocks/TestToken.sol";
import {TestBase} from "./Base.t.sol";
import {Committee} from "../committee/Committee.sol";

/// @dev Drives random sequences of protocol actions, in ETH and token projects, by every party.
/// Calls that the market rejects are simply skipped; ghost variables record only what succeeded.
contract MarketHandler is TestBase {
    Marketplace public immutable market;
    MarketplaceViews public immutable views;
    MarketplaceSetup public immutable setup;
    TestToken public immutable token;

    address public constant OWNER = address(0x0A11CE);
    /// @dev The committee, the aggregator of every project (posts are pranked from it).
    address public immutable AGGREGATOR;
    address public constant ARBITER = address(0x0A4B);
    uint256 public constant TRAINERS = 6;
    uint256 public constant MAX_PROJECTS = 4;

    uint256[] public projects;

    /// Per project: rewards credited by finalize, owner withdrawals, aggregator bonds slashed.
    mapping(uint256 => uint256) public ghostDistributed;
    mapping(uint256 => uint256) public ghostOwnerWithdrawn;
    mapping(uint256 => uint256) public ghostBondSlashed;
    mapping(uint256 => uint256) public ghostDisputeForfeited; // rejected or lapsed dispute bonds: the trainers'
    /// Per project: rounds finalized that had a commitment (their budgets are the trainers').
    mapping(uint256 => uint256) public ghostCommittedRounds;
    /// Per project and trainer: flagged in some posted result; what withdrawStake paid, and whether it did.
    mapping(uint256 => mapping(address => bool)) public ghostEverFlagged;
    mapping(uint256 => mapping(address => uint256)) public ghostStakeBack;
    mapping(uint256 => mapping(address => bool)) public ghostWithdrew;
    /// Per project and account: everything ever made claimable, and everything claimed.
    mapping(uint256 => mapping(address => uint256)) public ghostCredited;
    mapping(uint256 => mapping(address => uint256)) public ghostClaimed;

    /// Set if a claimable balance ever went down other than by `claim`.
    bool public claimableDecreased;

    mapping(bytes4 => uint256) public calls;

    constructor(Marketplace market_, TestToken token_) {
        market = market_;
        views = MarketplaceViews(address(market_));
        setup = MarketplaceSetup(address(market_));
        token = token_;
        AGGREGATOR = market_.COMMITTEE();
    }

    // --- actors --------------------------------------------------------------------------------

    function trainerAt(uint256 i) public pure returns (address) {
        return address(uint160(0x7000 + (i % TRAINERS)));
    }

    /// @dev Everyone who can ever hold a claimable balance.
    function accounts() public view returns (address[] memory all) {
        all = new address[](TRAINERS + 2);
        for (uint256 i; i < TRAINERS; ++i) {
            all[i] = trainerAt(i);
        }
        all[TRAINERS] = OWNER;
        all[TRAINERS + 1] = AGGREGATOR;
    }

    function projectCount() external view returns (uint256) {
        return projects.length;
    }

    // --- actions -------------------------------------------------------------------------------

    function create(uint256 seed, uint256 poolSeed) external {
        if (projects.length >= MAX_PROJECTS) return;
        MarketplaceStorage.ProjectConfig memory cfg;
        cfg.asset = seed % 2 == 0 ? address(0) : address(token);
        cfg.rounds = uint32(bound(seed >> 8, 1, 3));
        cfg.pool = bound(poolSeed, cfg.rounds, 50 ether) | 1; // odd: dust is likely
        cfg.stake = bound(seed >> 16, 0, 3 ether);
        // The smallest bonds the market accepts (a tenth and a hundredth of a round's budget), and more.
        uint256 perRound = cfg.pool / cfg.rounds;
        cfg.aggregatorBond = (perRound + 9) / 10 + bound(seed >> 32, 0, 2 ether);
        cfg.disputeBond = (perRound + 99) / 100 + bound(seed >> 48, 0, 1 ether);
        cfg.aggregator = AGGREGATOR;
        cfg.arbiter = ARBITER;
        cfg.minTrainers = uint16(bound(seed >> 64, 1, 2));
        cfg.maxTrainers = uint16(bound(seed >> 72, 2, TRAINERS));
        cfg.slashBps = uint16(bound(seed >> 80, 0, 10_000));
        cfg.submissionWindow = 1 days;
        cfg.aggregationWindow = 1 days;
        cfg.challengePeriod = 1 days;
        cfg.revealWindow = 1 days;
        cfg.specCid = "bafkspec";
        cfg.initialModelCid = "bafkinit";
        cfg.validationCommitment = keccak256("v");
        uint256 value = _fund(cfg.asset, OWNER, cfg.pool);
        vm.prank(OWNER);
        try setup.createProject{value: value}(cfg) returns (uint256 id) {
            projects.push(id);
            calls[msg.sig]++;
        } catch {}
    }

    function bond(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        MarketplaceStorage.ProjectConfig memory cfg = views.getConfig(id);
        uint256 value = _fund(cfg.asset, OWNER, cfg.aggregatorBond);
        vm.prank(OWNER);
        try market.postAggregatorBond{value: value}(id) {
            calls[msg.sig]++;
        } catch {}
    }

    function join(uint256 p, uint256 t) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        MarketplaceStorage.ProjectConfig memory cfg = views.getConfig(id);
        address who = trainerAt(t);
        uint256 value = _fund(cfg.asset, who, cfg.stake);
        vm.prank(who);
        try market.join{value: value}(id) {
            calls[msg.sig]++;
        } catch {}
    }

    function start(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        try market.start(id) {
            calls[msg.sig]++;
        } catch {}
    }

    function submit(uint256 p, uint256 t) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        (,, uint32 round,,,,) = views.getProject(id);
        address who = trainerAt(t);
        bytes32 commitment = views.commitmentOf(who, id, round, "bafkupdate", bytes32(t % TRAINERS));
        vm.prank(who);
        try market.commitUpdate(id, round, commitment) {
            calls[msg.sig]++;
        } catch {}
    }

    function reveal(uint256 p, uint256 t) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        (,, uint32 round,,,,) = views.getProject(id);
        vm.prank(trainerAt(t));
        try market.revealUpdate(id, round, "bafkupdate", bytes32(t % TRAINERS)) {
            calls[msg.sig]++;
        } catch {}
    }

    function evict(uint256 p, uint256 t) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        try market.evict(id, trainerAt(t)) {
            calls[msg.sig]++;
        } catch {}
    }

    function post(uint256 p, uint256 wSeed, uint256 flagSeed) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        (,, uint32 round,,,,) = views.getProject(id);
        (,,,,, uint16 n,,,) = views.getRound(id, round);
        uint32[] memory w = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            uint256 x = uint256(keccak256(abi.encode(wSeed, i)));
            w[i] = x % 3 == 0 ? 0 : (x % 3 == 1 ? type(uint32).max : uint32(x >> 8) % 1e9);
        }
        (, uint256 revealed) = views.getReveals(id, round);
        uint256 flags = flagSeed & revealed;
        uint256[] memory packed = new uint256[]((uint256(n) + 7) / 8);
        for (uint256 i; i < n; ++i) {
            packed[i / 8] |= uint256(w[i]) << (32 * (i % 8));
        }
        vm.prank(AGGREGATOR);
        try market.postResult(id, round, "bafkmodel", "bafkreport", packed, flags) {
            calls[msg.sig]++;
            address[] memory who = views.getSubmitters(id, round);
            for (uint256 i; i < n; ++i) {
                if ((flags >> i) & 1 == 1) ghostEverFlagged[id][who[i]] = true;
            }
        } catch {}
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + bound(dt, 1 hours, 2 days));
        calls[msg.sig]++;
    }

    function finalize(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        uint256[] memory before = _claimables(id);
        (,, uint32 round,,, uint256 bondBefore,) = views.getProject(id);
        (,,,,, uint16 commits,,,) = views.getRound(id, round);
        bool disputed = views.disputer(id) != address(0);
        try market.finalize(id) {
            calls[msg.sig]++;
            if (disputed) ghostDisputeForfeited[id] += views.getConfig(id).disputeBond; // lapsed: rejected
            uint256 credited = _creditDiff(id, before);
            ghostDistributed[id] += credited;
            if (commits != 0) ghostCommittedRounds[id]++;
            (,,,,, uint256 bondAfter,) = views.getProject(id);
            ghostBondSlashed[id] += bondBefore - bondAfter;
        } catch {}
    }

    function dispute(uint256 p, uint256 who) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        MarketplaceStorage.ProjectConfig memory cfg = views.getConfig(id);
        address disputer = who % 4 == 0 ? OWNER : trainerAt(who);
        uint256 value = _fund(cfg.asset, disputer, cfg.disputeBond);
        vm.prank(disputer);
        try market.dispute{value: value}(id) {
            calls[msg.sig]++;
        } catch {}
    }

    function resolve(uint256 p, bool uphold) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        uint256[] memory before = _claimables(id);
        (,,,,, uint256 bondBefore,) = views.getProject(id);
        vm.prank(ARBITER);
        try market.resolveDispute(id, uphold) {
            calls[msg.sig]++;
            if (!uphold) ghostDisputeForfeited[id] += views.getConfig(id).disputeBond;
            _creditDiff(id, before);
            (,,,,, uint256 bondAfter,) = views.getProject(id);
            ghostBondSlashed[id] += bondBefore - bondAfter;
        } catch {}
    }

    function expire(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        (,,,,, uint256 bondBefore,) = views.getProject(id);
        try market.expire(id) {
            calls[msg.sig]++;
            (,,,,, uint256 bondAfter,) = views.getProject(id);
            ghostBondSlashed[id] += bondBefore - bondAfter;
        } catch {}
    }

    function cancel(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        vm.prank(OWNER);
        try market.cancel(id) {
            calls[msg.sig]++;
        } catch {}
    }

    function claim(uint256 p, uint256 who) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        address account = accounts()[who % (TRAINERS + 2)];
        address asset = views.getConfig(id).asset;
        uint256 before = _balance(asset, account);
        vm.prank(account);
        try market.claim(id) {
            calls[msg.sig]++;
            ghostClaimed[id][account] += _balance(asset, account) - before;
        } catch {}
    }

    function withdrawStake(uint256 p, uint256 t) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        address who = trainerAt(t);
        uint256 before = _balance(views.getConfig(id).asset, who);
        vm.prank(who);
        try market.withdrawStake(id) {
            calls[msg.sig]++;
            ghostStakeBack[id][who] = _balance(views.getConfig(id).asset, who) - before;
            ghostWithdrew[id][who] = true;
        } catch {}
    }

    function withdrawBond(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        vm.prank(AGGREGATOR);
        try market.withdrawBond(id) {
            calls[msg.sig]++;
        } catch {}
    }

    function withdrawRemainder(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        address asset = views.getConfig(id).asset;
        uint256 before = _balance(asset, OWNER);
        vm.prank(OWNER);
        try market.withdrawRemainder(id) {
            calls[msg.sig]++;
            ghostOwnerWithdrawn[id] += _balance(asset, OWNER) - before;
        } catch {}
    }

    /// @dev Several happy-path steps in one call, so that runs of bounded depth reach payouts.
    function advanceMany(uint256 p, uint256 seed, uint8 steps) external {
        for (uint256 i; i < bound(steps, 1, 8); ++i) {
            advance(p, uint256(keccak256(abi.encode(seed, i))));
        }
    }

    /// @dev Takes the project one step along the happy path (bond, join, start, submit, post,
    /// finalize), warping as needed, so random runs reach settled rounds and payouts.
    function advance(uint256 p, uint256 seed) public {
        uint256 id = _pick(p);
        if (id == 0) return;
        calls[this.advance.selector]++;
        (, MarketplaceStorage.Status status, uint32 round,,,,) = views.getProject(id);
        if (status == MarketplaceStorage.Status.Pending) {
            this.bond(p);
            this.join(p, seed);
            this.join(p, seed + 1);
            this.start(p);
            return;
        }
        if (status != MarketplaceStorage.Status.Running) return;
        (MarketplaceStorage.Phase phase,, uint64 sd,, uint64 cd, uint16 submissions,,,) = views.getRound(id, round);
        if (phase == MarketplaceStorage.Phase.Open) {
            for (uint256 i; i < TRAINERS; ++i) {
                if ((seed >> i) & 3 != 0) this.submit(p, i); // most joined trainers commit
            }
            vm.warp(sd);
        } else if (phase == MarketplaceStorage.Phase.Revealing) {
            for (uint256 i; i < TRAINERS; ++i) {
                if ((seed >> (i + 16)) & 7 != 0) this.reveal(p, i); // most committers reveal
            }
            (uint64 rd,) = views.getReveals(id, round);
            vm.warp(rd);
            if (seed % 4 != 0) this.post(p, seed, seed % 3 == 0 ? seed >> 8 : 0); // else: left to expire
        } else if (phase == MarketplaceStorage.Phase.Aggregating) {
            if (seed % 5 == 0) this.evict(p, seed >> 8);
            this.post(p, seed, seed % 3 == 0 ? seed >> 8 : 0);
        } else if (phase == MarketplaceStorage.Phase.Expired) {
            if (submissions == 0 || seed % 3 == 0) {
                (, uint64 grace,,) = views.getLiveness(id);
                if (block.timestamp < grace) vm.warp(grace);
                this.finalize(p);
            } else if (seed % 3 == 1) {
                this.expire(p);
            } else {
                this.bond(p);
            }
        } else if (phase == MarketplaceStorage.Phase.Challenge) {
            if (seed % 2 == 0 && block.timestamp < cd) {
                this.dispute(p, 0); // by the owner
                return;
            }
            if (block.timestamp < cd) vm.warp(cd);
            this.finalize(p);
        } else if (phase == MarketplaceStorage.Phase.Disputed) {
            (,, uint64 ruling,) = views.getLiveness(id);
            if (seed % 5 == 0 || block.timestamp >= ruling) {
                // The arbiter stays away: the dispute lapses at its ruling deadline.
                if (block.timestamp < ruling) vm.warp(ruling);
                this.finalize(p);
            } else {
                this.resolve(p, seed % 2 == 0);
            }
        }
    }

    // --- helpers -------------------------------------------------------------------------------

    function _pick(uint256 p) internal view returns (uint256) {
        if (projects.length == 0) return 0;
        return projects[p % projects.length];
    }

    /// @dev Gives `who` `amount` of `asset` (approved to the market); returns the ETH to send.
    function _fund(address asset, address who, uint256 amount) internal returns (uint256 value) {
        if (asset == address(0)) {
            vm.deal(who, who.balance + amount);
            return amount;
        }
        token.mint(who, amount);
        vm.prank(who);
        token.approve(address(market), amount);
        return 0;
    }

    function _balance(address asset, address who) internal view returns (uint256) {
        return asset == address(0) ? who.balance : token.balanceOf(who);
    }

    function _claimables(uint256 id) internal view returns (uint256[] memory c) {
        address[] memory all = accounts();
        c = new uint256[](all.length);
        for (uint256 i; i < all.length; ++i) {
            c[i] = views.claimable(id, all[i]);
        }
    }

    /// @dev Adds each account's claimable increase to its ghost credit; returns the trainers' total.
    function _creditDiff(uint256 id, uint256[] memory before) internal returns (uint256 trainersTotal) {
        address[] memory all = accounts();
        for (uint256 i; i < all.length; ++i) {
            uint256 nowC = views.claimable(id, all[i]);
            if (nowC < before[i]) {
                claimableDecreased = true; // a revert here would be swallowed: record it for the invariant
                continue;
            }
            ghostCredited[id][all[i]] += nowC - before[i];
            if (i < TRAINERS) trainersTotal += nowC - before[i];
        }
    }
}

/// @notice Conservation of funds and pull-payment safety under random protocol traffic.
contract MarketplaceInvariantTest is TestBase {
    Marketplace internal market;
    MarketplaceViews internal views;
    TestToken internal token;
    MarketHandler internal handler;

    function setUp() public {
        Committee committee;
        (market, committee) = deployMarket();
        registerMember(committee, address(0x5C0), 1 ether);
        views = MarketplaceViews(address(market));
        token = new TestToken();
        handler = new MarketHandler(market, token);
        // Start with one project of each asset so every run exercises both.
        handler.create(uint256(keccak256("eth project")) << 1, 10 ether);
        handler.create((uint256(keccak256("token project")) << 1) | 1, 7 ether + 3);
    }

    /// @dev forge-std convention, read by forge: fuzz only the handler.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// forge-config: default.invariant.depth = 64
    /// The market's balance of each asset equals the sum over its projects of unopened budgets, carry,
    /// the current round's budget, stakes, claimable balances, the aggregator bond, a held dispute
    /// bond and the owner's remainder.
    function invariant_balanceOfEachAssetEqualsObligations() public view {
        (uint256 ethOwed, uint256 tokenOwed) = _obligations();
        assertEq(address(market).balance, ethOwed, "ETH balance == obligations");
        assertEq(token.balanceOf(address(market)), tokenOwed, "token balance == obligations");
    }

    /// forge-config: default.invariant.depth = 64
    /// Nobody claims twice: each account's claims plus what it can still claim equal what was credited.
    function invariant_claimsNeverExceedCredits() public view {
        assertTrue(!handler.claimableDecreased(), "claimable only decreases by claim");
        address[] memory all = handler.accounts();
        for (uint256 k; k < handler.projectCount(); ++k) {
            uint256 id = handler.projects(k);
            for (uint256 i; i < all.length; ++i) {
                assertEq(
                    handler.ghostClaimed(id, all[i]) + views.claimable(id, all[i]),
                    handler.ghostCredited(id, all[i]),
                    "claimed + claimable == credited"
                );
            }
        }
    }

    /// forge-config: default.invariant.depth = 64
    /// The owner never reaches escrow that belongs to a finalized round: what it withdrew or can still
    /// withdraw never exceeds the pool plus slashed stakes and bonds minus the rewards already credited.
    function invariant_ownerNeverTakesFinalizedBudgets() public view {
        address[] memory all = handler.accounts();
        for (uint256 k; k < handler.projectCount(); ++k) {
            uint256 id = handler.projects(k);
            MarketplaceStorage.ProjectConfig memory cfg = views.getConfig(id);
            uint256 slashedStakes;
            for (uint256 i; i < handler.TRAINERS(); ++i) {
                (,, uint256 slashed,) = views.getTrainer(id, all[i]);
                slashedStakes += slashed;
            }
            uint256 ownerTakes = handler.ghostOwnerWithdrawn(id) + views.remainder(id);
            assertLe(
                ownerTakes + handler.ghostDistributed(id),
                cfg.pool + slashedStakes + handler.ghostBondSlashed(id) + handler.ghostDisputeForfeited(id),
                "owner + rewards <= pool + slashes + forfeited dispute bonds"
            );
            // Stronger: a round with a commitment never pays the owner, and slashes never do.
            assertLe(
                ownerTakes,
                cfg.pool - (cfg.pool / cfg.rounds) * handler.ghostCommittedRounds(id),
                "owner <= deposit - budgets of rounds with a commitment"
            );
        }
    }

    /// forge-config: default.invariant.depth = 64
    /// An honest trainer (never flagged in a posted result) loses nothing: its stake is whole while held,
    /// and withdrawStake pays back at least the stake.
    function invariant_honestTrainersGetTheirStakeBack() public view {
        address[] memory all = handler.accounts();
        for (uint256 k; k < handler.projectCount(); ++k) {
            uint256 id = handler.projects(k);
            uint256 stake = views.getConfig(id).stake;
            for (uint256 i; i < handler.TRAINERS(); ++i) {
                address t = all[i];
                if (handler.ghostEverFlagged(id, t)) continue;
                (,, uint256 slashed,) = views.getTrainer(id, t);
                assertEq(slashed, 0, "never flagged, never slashed");
                if (handler.ghostWithdrew(id, t)) assertGe(handler.ghostStakeBack(id, t), stake, "stake back in full");
            }
        }
    }

    /// The handler reaches every settled state (so the invariants above are not vacuous), and the
    /// invariants hold along a scripted life of both projects, disputes and expiries included.
    function test_handler_reachesPayoutsDisputesAndExpiries() public {
        for (uint256 step; step < 120; ++step) {
            if (step % 30 == 29) handler.create(uint256(keccak256(abi.encode("more", step))), 3 ether);
            handler.advance(step / 3, uint256(keccak256(abi.encode(step))));
            if (step % 2 == 1) handler.dispute(step / 3, step % 8); // by the owner or a trainer
            if (step % 7 == 3) handler.warp(2 days);
            handler.expire(step);
            for (uint256 a; a < 8; ++a) {
                handler.claim(step, a);
            }
            invariant_balanceOfEachAssetEqualsObligations();
            invariant_claimsNeverExceedCredits();
            invariant_ownerNeverTakesFinalizedBudgets();
            invariant_honestTrainersGetTheirStakeBack();
        }
        handler.create(2, 5 ether);
        handler.cancel(2);
        for (uint256 k; k < 3; ++k) {
            handler.withdrawRemainder(k);
            handler.withdrawBond(k);
            for (uint256 t; t < 6; ++t) {
                handler.withdrawStake(k, t);
            }
        }
        invariant_balanceOfEachAssetEqualsObligations();
        invariant_claimsNeverExceedCredits();
        invariant_ownerNeverTakesFinalizedBudgets();
        invariant_honestTrainersGetTheirStakeBack();
        log("submit", handler.calls(MarketHandler.submit.selector));
        log("reveal", handler.calls(MarketHandler.reveal.selector));
        log("post", handler.calls(MarketHandler.post.selector));
        log("finalize", handler.calls(MarketHandler.finalize.selector));
        log("claim", handler.calls(MarketHandler.claim.selector));
        log("resolve", handler.calls(MarketHandler.resolve.selector));
        log("expire", handler.calls(MarketHandler.expire.selector));
        log("dispute", handler.calls(MarketHandler.dispute.selector));
        log("withdrawRemainder", handler.calls(MarketHandler.withdrawRemainder.selector));
        log("withdrawStake", handler.calls(MarketHandler.withdrawStake.selector));
        log("withdrawBond", handler.calls(MarketHandler.withdrawBond.selector));
        assertGe(handler.calls(MarketHandler.finalize.selector), 4, "rounds finalized");
        assertGe(handler.calls(MarketHandler.claim.selector), 4, "rewards claimed");
        assertGe(handler.calls(MarketHandler.dispute.selector), 1, "disputes raised (resolved or lapsed)");
        assertGe(handler.calls(MarketHandler.post.selector), 4, "results posted");
        assertGe(handler.calls(MarketHandler.withdrawRemainder.selector), 1, "remainders withdrawn");
        assertGe(handler.calls(MarketHandler.withdrawStake.selector), 1, "stakes withdrawn");
    }

    function _obligations() internal view returns (uint256 eth, uint256 tok) {
        for (uint256 k; k < handler.projectCount(); ++k) {
            uint256 id = handler.projects(k);
            MarketplaceStorage.ProjectConfig memory cfg = views.getConfig(id);
            uint256 owed = _escrowed(id, cfg) + _accountsOwed(id);
            if (views.disputer(id) != address(0)) owed += cfg.disputeBond;
            if (cfg.asset == address(0)) eth += owed;
            else tok += owed;
        }
    }

    /// @dev Budgets (unopened, current, carried), the owner's remainder, the end pot and the bond.
    function _escrowed(uint256 id, MarketplaceStorage.ProjectConfig memory cfg) internal view returns (uint256 owed) {
        (, MarketplaceStorage.Status status, uint32 round,, uint256 carry, uint256 bondBal,) = views.getProject(id);
        (uint256 pot,,) = views.getEndPot(id);
        owed = carry + bondBal + views.remainder(id) + pot;
        uint256 perRound = cfg.pool / cfg.rounds;
        (,,, bool cancelled) = views.getLiveness(id);
        if (status == MarketplaceStorage.Status.Pending) {
            owed += perRound * cfg.rounds;
        } else if (status == MarketplaceStorage.Status.Running) {
            (,,,,,, uint256 budget,,) = views.getRound(id, round);
            // After a cancel the current round is the last: later rounds were refunded.
            owed += budget + (cancelled ? 0 : perRound * (cfg.rounds - round - 1));
        }
    }

    function _accountsOwed(uint256 id) internal view returns (uint256 owed) {
        address[] memory all = handler.accounts();
        for (uint256 i; i < all.length; ++i) {
            (, uint256 stake,,) = views.getTrainer(id, all[i]);
            owed += stake + views.claimable(id, all[i]);
        }
    }
}
