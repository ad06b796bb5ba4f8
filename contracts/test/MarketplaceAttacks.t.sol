// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {MarketplaceStorage} from "../MarketplaceStorage.sol";
import {AssetVault} from "../AssetVault.sol";
import {TestToken} from "../mocks/TestToken.sol";
import {MarketFixture} from "./Base.t.sol";

/// @dev A token whose holders' balances shrink or grow by a factor the test sets (a rebasing token).
contract RebasingToken is ERC20 {
    uint256 public factorBps = 10_000;

    constructor() ERC20("Rebasing", "REB") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount * 10_000 / factorBps);
    }

    function rebase(uint256 newFactorBps) external {
        factorBps = newFactorBps;
    }

    function balanceOf(address who) public view override returns (uint256) {
        return super.balanceOf(who) * factorBps / 10_000;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value * 10_000 / factorBps);
    }
}

/// @notice The threat model, one attack per test: each party tries to take what is not its own or to
/// freeze funds by staying away. Every row of the README's threat table names one of these tests.
contract MarketplaceAttacksTest is MarketFixture {
    // --- the owner --------------------------------------------------------------------------------

    /// The owner cancels during Open, after trainers committed: the round is theirs.
    function test_attack_ownerCancelsAfterCommitments() public {
        uint256 id = runningDefault(2);
        submit(id, 0, 2);
        uint256 budget = roundBudget(id, 0);
        vm.prank(owner);
        market.cancel(id);
        assertEq(views.remainder(id), POOL - budget, "the owner gets only the unopened rounds");
        closeSubmissions(id, 0);
        post(id, 0, equalWeights(2), 0);
        passChallenge(id, 0);
        market.finalize(id);
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Cancelled, "closed after the round");
        (uint256 pot,,) = views.getEndPot(id);
        assertEq(
            views.claimable(id, trainer(0)) + views.claimable(id, trainer(1)) + pot,
            budget,
            "the round went to trainers"
        );
    }

    /// An aggregator working for the owner flags every honest trainer: the slashes and the unpaid budget
    /// go to the project's trainers at the end, never to the owner.
    function test_attack_aggregatorFlagsEveryoneSlashesNeverReachTheOwner() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 1;
        uint256 id = running(cfg, 2);
        playRound(id, 0, 2, equalWeights(2), 3);
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Ended, "ended");
        assertEq(views.remainder(id), 0, "the owner gets nothing back");
        (uint256 pot, uint256 shares, bool toAll) = views.getEndPot(id);
        uint256 penalty = STAKE * cfg.slashBps / 10_000;
        assertEq(pot, POOL + 2 * penalty, "pool and slashes wait for the trainers");
        assertTrue(toAll && shares == 2, "no honest trainer left: every trainer shares it");
        uint256 before = trainer(0).balance;
        vm.prank(trainer(0));
        market.withdrawStake(id);
        assertEq(trainer(0).balance - before, STAKE - penalty + pot / 2, "stake left plus half the pot");
        vm.prank(owner);
        vm.expectRevert(MarketplaceStorage.NothingToWithdraw.selector);
        market.withdrawRemainder(id);
    }

    /// The owner cannot be the arbiter (nor can the aggregator): no party judges its own case.
    function test_attack_ownerOrAggregatorAsArbiterIsRefused() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.arbiter = owner;
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.InvalidConfig.selector, MarketplaceStorage.ConfigError.ArbiterNotIndependent
            )
        );
        setup.createProject{value: POOL}(cfg);
        cfg.arbiter = aggregator;
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.InvalidConfig.selector, MarketplaceStorage.ConfigError.ArbiterNotIndependent
            )
        );
        setup.createProject{value: POOL}(cfg);
    }

    /// An upheld dispute slashes the aggregator's bond to the trainers' carry, not to the owner.
    function test_attack_upheldDisputeBondGoesToTrainers() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.rounds = 1;
        uint256 id = running(cfg, 2);
        submit(id, 0, 2);
        closeSubmissions(id, 0);
        post(id, 0, equalWeights(2), 0);
        vm.prank(owner);
        market.dispute{value: DISPUTE_BOND}(id);
        vm.prank(arbiter);
        market.resolveDispute(id, true);
        (,,,, uint256 carry,,) = views.getProject(id);
        assertEq(carry, AGG_BOND, "the bond waits for the trainers");
        // No new result ever comes: the round settles to its trainers after the grace period.
        (, uint64 grace,,) = views.getLiveness(id);
        vm.warp(grace);
        market.finalize(id);
        (uint256 pot,,) = views.getEndPot(id);
        assertEq(views.remainder(id), 0, "nothing for the owner");
        assertEq(
            views.claimable(id, trainer(0)) + views.claimable(id, trainer(1)) + pot, POOL + AGG_BOND, "all to trainers"
        );
    }

    // --- minimum bonds --------------------------------------------------------------------------

    function test_attack_zeroOrTokenBondsAreRefused() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.aggregatorBond = 0;
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.InvalidConfig.selector, MarketplaceStorage.ConfigError.AggregatorBondTooSmall
            )
        );
        setup.createProject{value: POOL}(cfg);
        // A tenth of a round's budget is the floor.
        cfg.aggregatorBond = (POOL / 3) / 10 - 1;
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.InvalidConfig.selector, MarketplaceStorage.ConfigError.AggregatorBondTooSmall
            )
        );
        setup.createProject{value: POOL}(cfg);
        cfg = defaultConfig();
        cfg.disputeBond = 0;
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                MarketplaceStorage.InvalidConfig.selector, MarketplaceStorage.ConfigError.DisputeBondTooSmall
            )
        );
        setup.createProject{value: POOL}(cfg);
    }

    // --- liveness -------------------------------------------------------------------------------

    /// A Pending project that never starts: after the start deadline anyone cancels, and everyone takes
    /// back what is theirs.
    function test_attack_pendingProjectNeverStartsAnyoneReleasesFunds() public {
        uint256 id = create(defaultConfig());
        joinAs(id, trainer(0));
        (uint64 startDeadline,,,) = views.getLiveness(id);
        vm.warp(startDeadline);
        vm.prank(stranger);
        market.cancel(id);
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Cancelled, "cancelled");
        uint256 before = trainer(0).balance;
        vm.prank(trainer(0));
        market.withdrawStake(id);
        assertEq(trainer(0).balance - before, STAKE, "stake back");
        assertEq(views.remainder(id), POOL, "pool back to the owner");
    }

    /// The aggregator is gone after an expiry and the owner does nothing: anyone settles the round after
    /// its grace period, and every later round the same way, until the project ends.
    function test_attack_aggregatorGoneEveryRoundStillSettles() public {
        uint256 id = runningDefault(2);
        for (uint32 r; r < 3; ++r) {
            submit(id, r, 2);
            closeSubmissions(id, r);
            (, uint64 grace,,) = views.getLiveness(id);
            vm.warp(grace);
            vm.prank(stranger);
            market.finalize(id);
        }
        assertTrue(statusOf(id) == MarketplaceStorage.Status.Ended, "ended without the aggregator");
        (uint256 pot,,) = views.getEndPot(id);
        uint256 paid = views.claimable(id, trainer(0)) + views.claimable(id, trainer(1));
        assertEq(paid + pot, POOL + AGG_BOND, "pool and bond went to the trainers");
    }

    // --- squatters ------------------------------------------------------------------------------

    /// Idle sybils fill the slots and never submit: after two missed rounds anyone evicts them, and an
    /// honest trainer takes the slot.
    function test_attack_idleSybilsAreEvictedAndTheSlotReopens() public {
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.maxTrainers = 2;
        cfg.minTrainers = 2;
        cfg.rounds = 4;
        uint256 id = running(cfg, 2); // trainer 0 works, trainer 1 squats
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotEvictable.selector, trainer(1), 0));
        market.evict(id, trainer(1));
        for (uint32 r; r < 2; ++r) {
            playRound(id, r, 1, equalWeights(1), 0);
        }
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotEvictable.selector, trainer(0), 2));
        market.evict(id, trainer(0));
        vm.expectEmit(true, true, false, true, address(market));
        emit MarketplaceStorage.TrainerEvicted(id, trainer(1), 2);
        vm.prank(stranger);
        market.evict(id, trainer(1));
        (bool holds,,,) = views.getTrainer(id, trainer(1));
        assertTrue(!holds, "slot freed");
        joinAs(id, trainer(2));
        // The evicted squatter can neither commit nor join again.
        vm.prank(trainer(1));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.NotTrainer.selector, trainer(1)));
        market.commitUpdate(id, 2, keccak256("x"));
        vm.deal(trainer(1), STAKE);
        vm.prank(trainer(1));
        vm.expectRevert(abi.encodeWithSelector(MarketplaceStorage.AlreadyJoined.selector, trainer(1)));
        market.join{value: STAKE}(id);
    }

    // --- rebasing tokens ------------------------------------------------------------------------

    /// A negative rebase can never be paid out of another project's funds: payouts in that token stop
    /// with AssetShortfall until the balance is restored; a second token's project is untouched.
    function test_attack_rebasingTokenLossStaysWithItsToken() public {
        RebasingToken reb = new RebasingToken();
        MarketplaceStorage.ProjectConfig memory cfg = defaultConfig();
        cfg.asset = address(reb);
        cfg.rounds = 1;
        reb.mint(owner, POOL);
        vm.startPrank(owner);
        reb.approve(address(market), POOL);
        uint256 id = setup.createProject(cfg);
        vm.stopPrank();
        _bondAndJoinIn(id, reb);
        market.start(id);
        playRound(id, 0, 2, equalWeights(2), 0);

        cfg.asset = address(token);
        uint256 other = running(cfg, 2);
        playRound(other, 0, 2, equalWeights(2), 0);

        reb.rebase(9_000); // the market's balance drops 10%
        uint256 owed = market.held(address(reb));
        uint256 balance = reb.balanceOf(address(market));
        vm.prank(trainer(0));
        vm.expectRevert(abi.encodeWithSelector(AssetVault.AssetShortfall.selector, address(reb), owed, balance));
        market.claim(id);
        vm.prank(trainer(0));
        market.claim(other); // the other token pays as usual
        // Anyone restores the balance: payouts resume, exactly as owed.
        reb.mint(address(market), owed - reb.balanceOf(address(market)) + 1);
        uint256 due = views.claimable(id, trainer(0));
        vm.prank(trainer(0));
        market.claim(id);
        // The mock converts to shares rounding down: at most a wei short.
        assertLe(due - reb.balanceOf(trainer(0)), 1, "paid in full after the top-up");
    }

    function _bondAndJoinIn(uint256 id, RebasingToken reb) internal {
        reb.mint(owner, AGG_BOND);
        vm.startPrank(owner);
        reb.approve(address(market), AGG_BOND);
        market.postAggregatorBond(id);
        vm.stopPrank();
        for (uint256 i; i < 2; ++i) {
            reb.mint(trainer(i), STAKE);
            vm.startPrank(trainer(i));
            reb.approve(address(market), STAKE);
            market.join(id);
            vm.stopPrank();
        }
    }
}
