// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {TestToken} from "../mocks/TestToken.sol";

/// @dev The subset of forge's cheatcodes these tests use (forge-std is not available offline).
interface Vm {
    struct Gas {
        uint64 gasLimit;
        uint64 gasTotalUsed;
        uint64 gasMemoryUsed;
        int64 gasRefunded;
        uint64 gasRemaining;
    }

    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function deal(address account, uint256 newBalance) external;
    function warp(uint256 newTimestamp) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert() external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;
    function assume(bool condition) external pure;
    function label(address account, string calldata newLabel) external;
    function addr(uint256 privateKey) external pure returns (address);
    function cool(address target) external;
    function lastCallGas() external view returns (Gas memory);
    function assertEq(uint256 left, uint256 right, string calldata message) external pure;
    function assertEq(int256 left, int256 right, string calldata message) external pure;
    function assertEq(address left, address right, string calldata message) external pure;
    function assertEq(bool left, bool right, string calldata message) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata message) external pure;
    function assertEq(string calldata left, string calldata right, string calldata message) external pure;
    function assertTrue(bool condition, string calldata message) external pure;
    function assertLe(uint256 left, uint256 right, string calldata message) external pure;
    function assertGe(uint256 left, uint256 right, string calldata message) external pure;
    function assertLt(uint256 left, uint256 right, string calldata message) external pure;
}

/// @dev Assertion and fuzzing helpers in the shape of forge-std's Test.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    /// @dev forge prints calls to this address as console logs.
    address internal constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    /// @dev Prints `label value` in forge's output (-vv).
    function log(string memory label, uint256 value) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", label, value));
        ok;
    }

    function assertEq(uint256 a, uint256 b, string memory why) internal pure {
        vm.assertEq(a, b, why);
    }

    function assertEq(address a, address b, string memory why) internal pure {
        vm.assertEq(a, b, why);
    }

    function assertEq(bool a, bool b, string memory why) internal pure {
        vm.assertEq(a, b, why);
    }

    function assertEq(bytes32 a, bytes32 b, string memory why) internal pure {
        vm.assertEq(a, b, why);
    }

    function assertEq(string memory a, string memory b, string memory why) internal pure {
        vm.assertEq(a, b, why);
    }

    function assertTrue(bool c, string memory why) internal pure {
        vm.assertTrue(c, why);
    }

    function assertLe(uint256 a, uint256 b, string memory why) internal pure {
        vm.assertLe(a, b, why);
    }

    function assertGe(uint256 a, uint256 b, string memory why) internal pure {
        vm.assertGe(a, b, why);
    }

    /// @dev Maps any fuzzed `x` into [lo, hi] without discarding runs.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        return lo + (x % (hi - lo + 1));
    }
}

/// @dev A deployed market, actors, and a default project, plus steps that walk a round through its life.
abstract contract MarketFixture is TestBase {
    Marketplace internal market;
    TestToken internal token;

    address internal owner = vm.addr(0xA11CE);
    address internal aggregator = vm.addr(0xA66);
    address internal arbiter = vm.addr(0xA4B);
    address internal stranger = vm.addr(0x5757);

    uint256 internal constant POOL = 10 ether;
    uint256 internal constant STAKE = 1 ether;
    uint256 internal constant AGG_BOND = 2 ether;
    uint256 internal constant DISPUTE_BOND = 0.5 ether;
    uint32 internal constant WINDOW = 1 days;
    uint32 internal constant AGG_WINDOW = 12 hours;
    uint32 internal constant CHALLENGE = 6 hours;

    string internal constant SPEC_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    string internal constant INIT_CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    string internal constant MODEL_CID = "bafybeihkoviema7g3gxyt6la7vd5ho32ictqbilu3wnlo3rs7ewhnp7lly";
    string internal constant REPORT_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    string internal constant UPDATE_CID = "bafkreie5cvv4h45wyqhrkcswpdypxmwrfzsldikfd7hzrbfoxk3vbzscsq";
    string internal constant VALIDATION_CID = "bafybeibml5uieyxa5tufngvg7fgwbkwvlsuntwbxgtskoqynbt7wlchmfm";
    bytes32 internal constant SALT = keccak256("validation salt");

    function setUp() public virtual {
        market = new Marketplace();
        token = new TestToken();
        vm.label(address(market), "market");
        vm.label(owner, "owner");
        vm.label(aggregator, "aggregator");
        vm.label(arbiter, "arbiter");
        vm.deal(owner, 1_000_000 ether);
        vm.deal(aggregator, 1_000 ether);
        vm.deal(stranger, 1_000 ether);
    }

    // --- configuration -------------------------------------------------------------------------

    function defaultConfig() internal view returns (Marketplace.ProjectConfig memory cfg) {
        cfg.asset = address(0);
        cfg.pool = POOL;
        cfg.stake = STAKE;
        cfg.aggregatorBond = AGG_BOND;
        cfg.disputeBond = DISPUTE_BOND;
        cfg.aggregator = aggregator;
        cfg.arbiter = arbiter;
        cfg.rounds = 3;
        cfg.minTrainers = 2;
        cfg.maxTrainers = 8;
        cfg.slashBps = 5_000;
        cfg.submissionWindow = WINDOW;
        cfg.aggregationWindow = AGG_WINDOW;
        cfg.challengePeriod = CHALLENGE;
        cfg.specCid = SPEC_CID;
        cfg.initialModelCid = INIT_CID;
        cfg.validationCommitment = keccak256(abi.encode(VALIDATION_CID, SALT));
    }

    function trainer(uint256 i) internal returns (address t) {
        t = vm.addr(0x7000 + i);
        if (t.balance == 0) vm.deal(t, 100 ether);
    }

    // --- steps ---------------------------------------------------------------------------------

    function create(Marketplace.ProjectConfig memory cfg) internal returns (uint256 id) {
        if (cfg.asset == address(0)) {
            vm.prank(owner);
            id = market.createProject{value: cfg.pool}(cfg);
        } else {
            TestToken(cfg.asset).mint(owner, cfg.pool);
            vm.startPrank(owner);
            TestToken(cfg.asset).approve(address(market), cfg.pool);
            id = market.createProject(cfg);
            vm.stopPrank();
        }
    }

    function bond(uint256 id) internal {
        Marketplace.ProjectConfig memory cfg = market.getConfig(id);
        _pay(cfg.asset, aggregator, cfg.aggregatorBond);
        vm.prank(aggregator);
        market.postAggregatorBond{value: cfg.asset == address(0) ? cfg.aggregatorBond : 0}(id);
    }

    function joinAs(uint256 id, address t) internal {
        Marketplace.ProjectConfig memory cfg = market.getConfig(id);
        _pay(cfg.asset, t, cfg.stake);
        vm.prank(t);
        market.join{value: cfg.asset == address(0) ? cfg.stake : 0}(id);
    }

    function joinMany(uint256 id, uint256 n) internal {
        for (uint256 i; i < n; ++i) {
            joinAs(id, trainer(i));
        }
    }

    /// @dev Creates `cfg`, bonds, joins `n` trainers and starts round 0.
    function running(Marketplace.ProjectConfig memory cfg, uint256 n) internal returns (uint256 id) {
        id = create(cfg);
        bond(id);
        joinMany(id, n);
        market.start(id);
    }

    function runningDefault(uint256 n) internal returns (uint256 id) {
        return running(defaultConfig(), n);
    }

    function submit(uint256 id, uint32 round, uint256 n) internal {
        for (uint256 i; i < n; ++i) {
            vm.prank(trainer(i));
            market.submitUpdate(id, round, UPDATE_CID);
        }
    }

    function closeSubmissions(uint256 id, uint32 round) internal {
        (,, uint64 submissionDeadline,,,,,,) = market.getRound(id, round);
        vm.warp(submissionDeadline);
    }

    function post(uint256 id, uint32 round, uint32[] memory weights, uint256 flags) internal {
        vm.prank(aggregator);
        market.postResult(id, round, MODEL_CID, REPORT_CID, weights, flags);
    }

    function passChallenge(uint256 id, uint32 round) internal {
        (,,,, uint64 challengeDeadline,,,,) = market.getRound(id, round);
        vm.warp(challengeDeadline);
    }

    /// @dev Submits for `n` trainers, posts `weights`/`flags` and waits out the challenge period.
    function readyToFinalize(uint256 id, uint32 round, uint256 n, uint32[] memory weights, uint256 flags) internal {
        submit(id, round, n);
        closeSubmissions(id, round);
        post(id, round, weights, flags);
        passChallenge(id, round);
    }

    /// @dev `readyToFinalize`, then finalize.
    function playRound(uint256 id, uint32 round, uint256 n, uint32[] memory weights, uint256 flags) internal {
        readyToFinalize(id, round, n, weights, flags);
        market.finalize(id);
    }

    function equalWeights(uint256 n) internal pure returns (uint32[] memory w) {
        w = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            w[i] = uint32(1e9 / n);
        }
    }

    function roundBudget(uint256 id, uint32 round) internal view returns (uint256 budget) {
        (,,,,,, budget,,) = market.getRound(id, round);
    }

    function phaseOf(uint256 id, uint32 round) internal view returns (Marketplace.Phase phase) {
        (phase,,,,,,,,) = market.getRound(id, round);
    }

    function statusOf(uint256 id) internal view returns (Marketplace.Status status) {
        (, status,,,,,) = market.getProject(id);
    }

    function _pay(address asset, address who, uint256 amount) private {
        if (asset == address(0)) {
            vm.deal(who, who.balance + amount);
        } else {
            TestToken(asset).mint(who, amount);
            vm.prank(who);
            TestToken(asset).approve(address(market), amount);
        }
    }
}
