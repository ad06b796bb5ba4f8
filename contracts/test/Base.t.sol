// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Marketplace} from "../Marketplace.sol";
import {MarketplaceViews} from "../MarketplaceViews.sol";
import {MarketplaceSetup} from "../MarketplaceSetup.sol";
import {MarketplaceStorage} from "../MarketplaceStorage.sol";
import {TestToken} from "../mocks/TestToken.sol";
import {Committee} from "../committee/Committee.sol";
import {AggregatorRegistry} from "../committee/AggregatorRegistry.sol";

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
    function getNonce(address account) external view returns (uint64);
    function startPrank(address sender) external;
    function stopPrank() external;
    function deal(address account, uint256 newBalance) external;
    function warp(uint256 newTimestamp) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert() external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;
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

    /// @dev The address `deployer`'s contract creation number `nonce` gets (RLP of [deployer, nonce]).
    function createAddress(address deployer, uint256 nonce) internal pure returns (address) {
        bytes memory rlp = nonce == 0
            ? abi.encodePacked(bytes1(0xd6), bytes1(0x94), deployer, bytes1(0x80))
            : nonce < 0x80
                ? abi.encodePacked(bytes1(0xd6), bytes1(0x94), deployer, uint8(nonce))
                : abi.encodePacked(bytes1(0xd7), bytes1(0x94), deployer, bytes1(0x81), uint8(nonce));
        require(nonce <= 0xff, "createAddress: nonce > 255");
        return address(uint160(uint256(keccak256(rlp))));
    }

    /// @dev Deploys a committee (7-day exit cooldown, 1 ether minimum stake) and the Marketplace it scores for.
    function deployMarket() internal returns (Marketplace m, Committee c) {
        address predicted = createAddress(address(this), vm.getNonce(address(this)) + 1);
        c = new Committee(predicted, 7 days, 1 ether);
        m = new Marketplace(address(c));
    }

    /// @dev Registers `member` in the committee's registry with `stake`.
    function registerMember(Committee c, address member, uint256 stake) internal {
        vm.deal(member, member.balance + stake);
        AggregatorRegistry registry = c.registry();
        vm.prank(member);
        registry.register{value: stake}();
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
    /// @dev The aggregator of every project (`aggregator` is its address).
    Committee internal committee;
    /// @dev The registry member that committees of one draw (the only member unless a test adds more).
    address internal scorer = vm.addr(0x5C0);
    /// @dev The market's read-only half, at the market's address.
    MarketplaceViews internal views;
    /// @dev The market's setup module (createProject, revealValidation), at the market's address.
    MarketplaceSetup internal setup;
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
    uint32 internal constant REVEAL_WINDOW = 2 hours;
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
        (market, committee) = deployMarket();
        aggregator = address(committee);
        registerMember(committee, scorer, 1 ether);
        views = MarketplaceViews(address(market));
        setup = MarketplaceSetup(address(market));
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

    function defaultConfig() internal view returns (MarketplaceStorage.ProjectConfig memory cfg) {
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
        cfg.revealWindow = REVEAL_WINDOW;
    }

    function trainer(uint256 i) internal returns (address t) {
        t = vm.addr(0x7000 + i);
        if (t.balance == 0) vm.deal(t, 100 ether);
    }

    // --- steps ---------------------------------------------------------------------------------

    function create(MarketplaceStorage.ProjectConfig memory cfg) internal returns (uint256 id) {
        if (cfg.asset == address(0)) {
            vm.prank(owner);
            id = setup.createProject{value: cfg.pool}(cfg);
        } else {
            TestToken(cfg.asset).mint(owner, cfg.pool);
            vm.startPrank(owner);
            TestToken(cfg.asset).approve(address(market), cfg.pool);
            id = setup.createProject(cfg);
            vm.stopPrank();
        }
    }

    function bond(uint256 id) internal {
        MarketplaceStorage.ProjectConfig memory cfg = views.getConfig(id);
        _pay(cfg.asset, owner, cfg.aggregatorBond);
        vm.prank(owner);
        market.postAggregatorBond{value: cfg.asset == address(0) ? cfg.aggregatorBond : 0}(id);
    }

    function joinAs(uint256 id, address t) internal {
        MarketplaceStorage.ProjectConfig memory cfg = views.getConfig(id);
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
    function running(MarketplaceStorage.ProjectConfig memory cfg, uint256 n) internal returns (uint256 id) {
        id = create(cfg);
        bond(id);
        joinMany(id, n);
        market.start(id);
    }

    function runningDefault(uint256 n) internal returns (uint256 id) {
        return running(defaultConfig(), n);
    }

    /// @dev Commitments made by `submit`/`commitAs` and not yet revealed: `closeSubmissions` reveals them.
    address[] internal pendingReveals;
    mapping(address => string) internal pendingCid;

    function saltOf(address t, uint32 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", t, round));
    }

    /// @dev Commits `cid` for `t` (revealed later by `closeSubmissions`, or by hand with `revealAs`).
    function commitAs(uint256 id, uint32 round, address t, string memory cid) internal {
        bytes32 commitment = views.commitmentOf(t, id, round, cid, saltOf(t, round));
        vm.prank(t);
        market.commitUpdate(id, round, commitment);
        pendingReveals.push(t);
        pendingCid[t] = cid;
    }

    function revealAs(uint256 id, uint32 round, address t, string memory cid) internal {
        vm.prank(t);
        market.revealUpdate(id, round, cid, saltOf(t, round));
    }

    /// @dev Trainers 0..n-1 commit UPDATE_CID.
    function submit(uint256 id, uint32 round, uint256 n) internal {
        for (uint256 i; i < n; ++i) {
            commitAs(id, round, trainer(i), UPDATE_CID);
        }
    }

    /// @dev Moves to the submission deadline, reveals every pending commitment, then moves to the reveal
    /// deadline: the round is Aggregating.
    function closeSubmissions(uint256 id, uint32 round) internal {
        revealPending(id, round, pendingReveals.length);
        (uint64 revealDeadline,) = views.getReveals(id, round);
        if (block.timestamp < revealDeadline) vm.warp(revealDeadline);
    }

    /// @dev Moves to the submission deadline and reveals the first `k` pending commitments (drops the rest).
    function revealPending(uint256 id, uint32 round, uint256 k) internal {
        (,, uint64 submissionDeadline,,,,,,) = views.getRound(id, round);
        if (block.timestamp < submissionDeadline) vm.warp(submissionDeadline);
        for (uint256 i; i < k; ++i) {
            address t = pendingReveals[i];
            revealAs(id, round, t, pendingCid[t]);
        }
        delete pendingReveals;
    }

    /// @dev Packs uint32 weights 8 per word, as `postResult` takes them.
    function pack(uint32[] memory weights) internal pure returns (uint256[] memory words) {
        words = new uint256[]((weights.length + 7) / 8);
        for (uint256 i; i < weights.length; ++i) {
            words[i / 8] |= uint256(weights[i]) << (32 * (i % 8));
        }
    }

    function post(uint256 id, uint32 round, uint32[] memory weights, uint256 flags) internal {
        vm.prank(aggregator);
        market.postResult(id, round, MODEL_CID, REPORT_CID, pack(weights), flags);
    }

    function passChallenge(uint256 id, uint32 round) internal {
        (,,,, uint64 challengeDeadline,,,,) = views.getRound(id, round);
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
        (,,,,,, budget,,) = views.getRound(id, round);
    }

    function phaseOf(uint256 id, uint32 round) internal view returns (MarketplaceStorage.Phase phase) {
        (phase,,,,,,,,) = views.getRound(id, round);
    }

    function statusOf(uint256 id) internal view returns (MarketplaceStorage.Status status) {
        (, status,,,,,) = views.getProject(id);
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
