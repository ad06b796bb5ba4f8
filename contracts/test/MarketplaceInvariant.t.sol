// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {TestToken} from "../mocks/TestToken.sol";
import {TestBase} from "./Base.t.sol";

/// @dev Drives random sequences of protocol actions, in ETH and token projects, by every party.
/// Calls that the market rejects are simply skipped; ghost variables record only what succeeded.
contract MarketHandler is TestBase {
    Marketplace public immutable market;
    TestToken public immutable token;

    address public constant OWNER = address(0x0A11CE);
    address public constant AGGREGATOR = address(0x0A66);
    address public constant ARBITER = address(0x0A4B);
    uint256 public constant TRAINERS = 6;
    uint256 public constant MAX_PROJECTS = 4;

    uint256[] public projects;

    /// Per project: rewards credited by finalize, owner withdrawals, aggregator bonds slashed.
    mapping(uint256 => uint256) public ghostDistributed;
    mapping(uint256 => uint256) public ghostOwnerWithdrawn;
    mapping(uint256 => uint256) public ghostBondSlashed;
    /// Per project and account: everything ever made claimable, and everything claimed.
    mapping(uint256 => mapping(address => uint256)) public ghostCredited;
    mapping(uint256 => mapping(address => uint256)) public ghostClaimed;

    /// Set if a claimable balance ever went down other than by `claim`.
    bool public claimableDecreased;

    mapping(bytes4 => uint256) public calls;

    constructor(Marketplace market_, TestToken token_) {
        market = market_;
        token = token_;
    }

    // --- actors --------------------------------------------------------------------------------

    function trainerAt(uint256 i) public pure returns (address) {
        return address(uint160(0x7000 + (i % TRAINERS)));
    }

    /// @dev Everyone who can ever hold a claimable balance.
    function accounts() public pure returns (address[] memory all) {
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
        Marketplace.ProjectConfig memory cfg;
        cfg.asset = seed % 2 == 0 ? address(0) : address(token);
        cfg.rounds = uint32(bound(seed >> 8, 1, 3));
        cfg.pool = bound(poolSeed, cfg.rounds, 50 ether) | 1; // odd: dust is likely
        cfg.stake = bound(seed >> 16, 0, 3 ether);
        cfg.aggregatorBond = bound(seed >> 32, 0, 2 ether);
        cfg.disputeBond = bound(seed >> 48, 0, 1 ether);
        cfg.aggregator = AGGREGATOR;
        cfg.arbiter = ARBITER;
        cfg.minTrainers = uint16(bound(seed >> 64, 1, 2));
        cfg.maxTrainers = uint16(bound(seed >> 72, 2, TRAINERS));
        cfg.slashBps = uint16(bound(seed >> 80, 0, 10_000));
        cfg.submissionWindow = 1 days;
        cfg.aggregationWindow = 1 days;
        cfg.challengePeriod = 1 days;
        cfg.specCid = "bafkspec";
        cfg.initialModelCid = "bafkinit";
        cfg.validationCommitment = keccak256("v");
        uint256 value = _fund(cfg.asset, OWNER, cfg.pool);
        vm.prank(OWNER);
        try market.createProject{value: value}(cfg) returns (uint256 id) {
            projects.push(id);
            calls[msg.sig]++;
        } catch {}
    }

    function bond(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        Marketplace.ProjectConfig memory cfg = market.getConfig(id);
        uint256 value = _fund(cfg.asset, AGGREGATOR, cfg.aggregatorBond);
        vm.prank(AGGREGATOR);
        try market.postAggregatorBond{value: value}(id) {
            calls[msg.sig]++;
        } catch {}
    }

    function join(uint256 p, uint256 t) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        Marketplace.ProjectConfig memory cfg = market.getConfig(id);
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
        (,, uint32 round,,,,) = market.getProject(id);
        vm.prank(trainerAt(t));
        try market.submitUpdate(id, round, "bafkupdate") {
            calls[msg.sig]++;
        } catch {}
    }

    function post(uint256 p, uint256 wSeed, uint256 flagSeed) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        (,, uint32 round,,,,) = market.getProject(id);
        (,,,,, uint16 n,,,) = market.getRound(id, round);
        uint32[] memory w = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            uint256 x = uint256(keccak256(abi.encode(wSeed, i)));
            w[i] = x % 3 == 0 ? 0 : (x % 3 == 1 ? type(uint32).max : uint32(x >> 8) % 1e9);
        }
        uint256 flags = n == 0 ? 0 : flagSeed & ((1 << n) - 1);
        vm.prank(AGGREGATOR);
        try market.postResult(id, round, "bafkmodel", "bafkreport", w, flags) {
            calls[msg.sig]++;
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
        try market.finalize(id) {
            calls[msg.sig]++;
            uint256 credited = _creditDiff(id, before);
            ghostDistributed[id] += credited;
        } catch {}
    }

    function dispute(uint256 p, uint256 who) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        Marketplace.ProjectConfig memory cfg = market.getConfig(id);
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
        (,,,,, uint256 bondBefore,) = market.getProject(id);
        vm.prank(ARBITER);
        try market.resolveDispute(id, uphold) {
            calls[msg.sig]++;
            _creditDiff(id, before);
            (,,,,, uint256 bondAfter,) = market.getProject(id);
            ghostBondSlashed[id] += bondBefore - bondAfter;
        } catch {}
    }

    function expire(uint256 p) external {
        uint256 id = _pick(p);
        if (id == 0) return;
        (,,,,, uint256 bondBefore,) = market.getProject(id);
        try market.expire(id) {
            calls[msg.sig]++;
            (,,,,, uint256 bondAfter,) = market.getProject(id);
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
        address asset = market.getConfig(id).asset;
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
        vm.prank(trainerAt(t));
        try market.withdrawStake(id) {
            calls[msg.sig]++;
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
        address asset = market.getConfig(id).asset;
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
        (, Marketplace.Status status, uint32 round,,,,) = market.getProject(id);
        if (status == Marketplace.Status.Pending) {
            this.bond(p);
            this.join(p, seed);
            this.join(p, seed + 1);
            this.start(p);
            return;
        }
        if (status != Marketplace.Status.Running) return;
        (Marketplace.Phase phase,, uint64 sd,, uint64 cd, uint16 submissions,,,) = market.getRound(id, round);
        if (phase == Marketplace.Phase.Open) {
            for (uint256 i; i < TRAINERS; ++i) {
                if ((seed >> i) & 3 != 0) this.submit(p, i); // most joined trainers submit
            }
            vm.warp(sd);
        } else if (phase == Marketplace.Phase.Aggregating) {
            this.post(p, seed, seed % 3 == 0 ? seed >> 8 : 0);
        } else if (phase == Marketplace.Phase.Expired) {
            if (submissions == 0) this.finalize(p);
            else if (seed % 2 == 0) this.expire(p);
            else this.bond(p);
        } else if (phase == Marketplace.Phase.Challenge) {
            if (block.timestamp < cd) vm.warp(cd);
            this.finalize(p);
        } else if (phase == Marketplace.Phase.Disputed) {
            this.resolve(p, seed % 2 == 0);
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
            c[i] = market.claimable(id, all[i]);
        }
    }

    /// @dev Adds each account's claimable increase to its ghost credit; returns the trainers' total.
    function _creditDiff(uint256 id, uint256[] memory before) internal returns (uint256 trainersTotal) {
        address[] memory all = accounts();
        for (uint256 i; i < all.length; ++i) {
            uint256 nowC = market.claimable(id, all[i]);
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
    TestToken internal token;
    MarketHandler internal handler;

    function setUp() public {
        market = new Marketplace();
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
                    handler.ghostClaimed(id, all[i]) + market.claimable(id, all[i]),
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
            Marketplace.ProjectConfig memory cfg = market.getConfig(id);
            uint256 slashedStakes;
            for (uint256 i; i < handler.TRAINERS(); ++i) {
                (,, uint256 slashed,) = market.getTrainer(id, all[i]);
                slashedStakes += slashed;
            }
            uint256 ownerTakes = handler.ghostOwnerWithdrawn(id) + market.remainder(id);
            assertLe(
                ownerTakes + handler.ghostDistributed(id),
                cfg.pool + slashedStakes + handler.ghostBondSlashed(id),
                "owner + rewards <= pool + slashes"
            );
        }
    }

    /// The handler reaches every settled state (so the invariants above are not vacuous), and the
    /// invariants hold along a scripted life of both projects, disputes and expiries included.
    function test_handler_reachesPayoutsDisputesAndExpiries() public {
        for (uint256 step; step < 120; ++step) {
            if (step % 30 == 29) handler.create(uint256(keccak256(abi.encode("more", step))), 3 ether);
            handler.advance(step / 3, uint256(keccak256(abi.encode(step))));
            if (step % 4 == 1) handler.dispute(step / 3, 0); // by the owner
            if (step % 7 == 3) handler.warp(2 days);
            handler.expire(step);
            for (uint256 a; a < 8; ++a) {
                handler.claim(step, a);
            }
            invariant_balanceOfEachAssetEqualsObligations();
            invariant_claimsNeverExceedCredits();
            invariant_ownerNeverTakesFinalizedBudgets();
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
        assertGe(handler.calls(MarketHandler.resolve.selector), 1, "disputes resolved");
        assertGe(handler.calls(MarketHandler.withdrawRemainder.selector), 1, "remainders withdrawn");
        assertGe(handler.calls(MarketHandler.withdrawStake.selector), 1, "stakes withdrawn");
    }

    function _obligations() internal view returns (uint256 eth, uint256 tok) {
        address[] memory all = handler.accounts();
        for (uint256 k; k < handler.projectCount(); ++k) {
            uint256 id = handler.projects(k);
            Marketplace.ProjectConfig memory cfg = market.getConfig(id);
            (, Marketplace.Status status, uint32 round,, uint256 carry, uint256 bondBal,) = market.getProject(id);
            uint256 owed = carry + bondBal + market.remainder(id);
            uint256 perRound = cfg.pool / cfg.rounds;
            if (status == Marketplace.Status.Pending) {
                owed += perRound * cfg.rounds;
            } else if (status == Marketplace.Status.Running) {
                (,,,,,, uint256 budget,,) = market.getRound(id, round);
                owed += budget + perRound * (cfg.rounds - round - 1);
            }
            if (market.disputer(id) != address(0)) owed += cfg.disputeBond;
            for (uint256 i; i < all.length; ++i) {
                (, uint256 stake,,) = market.getTrainer(id, all[i]);
                owed += stake + market.claimable(id, all[i]);
            }
            if (cfg.asset == address(0)) eth += owed;
            else tok += owed;
        }
    }
}
