// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase} from "../Base.t.sol";
import {AggregatorRegistry} from "../../committee/AggregatorRegistry.sol";

/// @dev A member contract that tries to re-enter `withdraw` when paid.
contract GreedyMember {
    AggregatorRegistry internal registry;
    uint256 public reentries;

    constructor(AggregatorRegistry registry_) payable {
        registry = registry_;
    }

    function join() external {
        registry.register{value: address(this).balance}();
        registry.requestExit();
    }

    function leave() external {
        registry.withdraw();
    }

    receive() external payable {
        try registry.withdraw() {
            ++reentries;
        } catch {}
    }
}

/// @dev The test contract plays the marketplace (the registry's fixed caller).
contract AggregatorRegistryTest is TestBase {
    AggregatorRegistry internal registry;
    uint64 internal constant COOLDOWN = 7 days;
    uint128 internal constant MIN = 1 ether;

    receive() external payable {}

    function setUp() public {
        registry = new AggregatorRegistry(address(this), COOLDOWN, MIN);
    }

    function _join(uint256 key, uint256 stake) internal returns (address member) {
        member = vm.addr(key);
        vm.deal(member, stake);
        vm.prank(member);
        registry.register{value: stake}();
    }

    function test_anyoneRegistersWithTheMinimumAndNotBelow() public {
        address a = _join(1, 1 ether);
        (uint256 stake,,) = registry.memberOf(a);
        assertEq(stake, 1 ether, "stake");
        address b = vm.addr(2);
        vm.deal(b, 1 ether);
        vm.prank(b);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.StakeTooSmall.selector, 0.5 ether, MIN));
        registry.register{value: 0.5 ether}();
    }

    function test_onlyTheMarketDrawsReleasesAndPenalizes() public {
        address a = _join(1, 1 ether);
        vm.startPrank(a);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.NotMarket.selector, a));
        registry.draw(bytes32(0), 1, 0);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.NotMarket.selector, a));
        registry.penalize(a, 1);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.NotMarket.selector, a));
        registry.release(a);
        vm.stopPrank();
    }

    function test_drawPicksDistinctEligibleMembersAndLocksThem() public {
        for (uint256 i = 1; i <= 6; ++i) {
            _join(i, i * 1 ether);
        }
        vm.prank(vm.addr(6));
        registry.requestExit(); // exiting: never drawn
        address[] memory c = registry.draw(keccak256("project 1"), 3, 2 ether); // members 2..5 are eligible
        for (uint256 i; i < 3; ++i) {
            (uint256 stake, uint256 exitAt, uint256 locks) = registry.memberOf(c[i]);
            assertGe(stake, 2 ether, "below the project's minimum stake");
            assertEq(exitAt, 0, "an exiting member was drawn");
            assertEq(locks, 1, "not locked");
            for (uint256 j; j < i; ++j) {
                assertTrue(c[i] != c[j], "drawn twice");
            }
        }
    }

    function test_aDrawThatCannotBeFilledSaysSo() public {
        _join(1, 1 ether);
        _join(2, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.CommitteeUnavailable.selector, 2, 3));
        registry.draw(bytes32(uint256(7)), 3, 0);
    }

    function test_exitWaitsForTheCooldownAndForEveryProject() public {
        address a = _join(1, 3 ether);
        registry.draw(bytes32(0), 1, 0);
        vm.prank(a);
        registry.requestExit();
        vm.warp(block.timestamp + COOLDOWN);
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.StakeLocked.selector, a, block.timestamp, 1));
        registry.withdraw();
        registry.release(a);
        vm.prank(a);
        registry.withdraw();
        assertEq(a.balance, 3 ether, "stake returned in full");
        (uint256 stake,,) = registry.memberOf(a);
        assertEq(stake, 0, "left the registry");
    }

    function test_withdrawBeforeTheCooldownIsRefused() public {
        address a = _join(1, 1 ether);
        vm.prank(a);
        registry.requestExit();
        vm.warp(block.timestamp + COOLDOWN - 1);
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(AggregatorRegistry.StakeLocked.selector, a, block.timestamp + 1, 0));
        registry.withdraw();
    }

    function test_aPenaltyGoesToTheMarketAndNeverExceedsTheStake() public {
        address a = _join(1, 2 ether);
        uint256 before = address(this).balance;
        assertEq(registry.penalize(a, 0.5 ether), 0.5 ether, "partial penalty");
        assertEq(registry.penalize(a, 10 ether), 1.5 ether, "capped at the stake");
        assertEq(address(this).balance - before, 2 ether, "the market received every penalty");
        assertEq(address(registry).balance, 0, "nothing left behind");
    }

    function test_aReentrantMemberIsPaidOnce() public {
        GreedyMember greedy = new GreedyMember{value: 2 ether}(registry);
        greedy.join();
        vm.warp(block.timestamp + COOLDOWN);
        greedy.leave();
        assertEq(address(greedy).balance, 2 ether, "paid its stake once");
        assertEq(greedy.reentries(), 0, "re-entered withdraw");
        assertEq(address(registry).balance, 0, "registry drained correctly");
    }

    /// @dev Conservation: the registry holds exactly the members' stakes, whatever joins, penalties and
    /// withdrawals happen.
    function testFuzz_balanceIsTheSumOfStakes(uint256 seed) public {
        uint256 n = 2 + seed % 6;
        for (uint256 i = 1; i <= n; ++i) {
            _join(i, MIN + uint256(keccak256(abi.encode(seed, i))) % 5 ether);
        }
        registry.penalize(vm.addr(1), uint256(keccak256(abi.encode(seed))) % 7 ether);
        vm.prank(vm.addr(2));
        registry.requestExit();
        vm.warp(block.timestamp + COOLDOWN);
        vm.prank(vm.addr(2));
        registry.withdraw();
        uint256 total;
        address[] memory all = registry.members();
        for (uint256 i; i < all.length; ++i) {
            (uint256 stake,,) = registry.memberOf(all[i]);
            total += stake;
        }
        assertEq(address(registry).balance, total, "balance = sum of stakes");
        assertEq(all.length, n - 1, "the withdrawn member left the list");
    }
}
