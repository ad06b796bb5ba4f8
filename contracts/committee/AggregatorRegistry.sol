// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

/**
 * @title Merit aggregator registry
 * @notice Anyone may stake ETH to become an aggregator. The marketplace draws each project's scoring
 * committee from here, so no project owner chooses who scores its trainers. A member leaves by asking
 * to exit (it is drawn no more) and withdraws after a cooling-off period, once no project it was
 * drawn for still holds it. The marketplace may take part of a member's stake as a penalty.
 *
 * @dev Randomness: the marketplace passes a seed (from `block.prevrandao` and the project) and members
 * are drawn from it by rejection sampling over the member list. A block proposer can bias a draw by
 * withholding its block (it forgoes the block reward to re-roll once); a VRF (e.g. a callback that
 * delivers a verified random word) slots in as the seed source without changing this contract. Each
 * registration is one ticket, so a party's chance grows with its number of registrations, each of which
 * must hold the project's minimum stake: capturing a committee's majority costs about a majority of the
 * eligible stake.
 *
 * The marketplace's address is fixed at construction (deployers predict it from their nonce), so nobody
 * can later point the registry at another contract.
 */
contract AggregatorRegistry is ReentrancyGuardTransient {
    /// @dev One member in one slot (with `index` + 1 so that 0 means "not a member").
    struct Member {
        uint128 stake;
        uint64 exitAt; // 0 while active; else when the stake may be withdrawn
        uint32 locks; // projects whose committee holds this member
        uint32 position; // 1 + index in `_members`
    }

    /// @notice The marketplace allowed to draw, release and penalise members.
    address public immutable market;
    /// @notice Seconds between `requestExit` and `withdraw`.
    uint64 public immutable cooldown;
    /// @notice The least stake anyone may register with.
    uint128 public immutable minimumStake;

    mapping(address => Member) private _member;
    address[] private _members;

    /// @notice Draws stop after this many tries per seat (a registry whose members mostly fail the
    /// project's minimum stake cannot be searched forever).
    uint256 internal constant TRIES_PER_SEAT = 32;

    event Registered(address indexed member, uint256 added, uint256 stake);
    event ExitRequested(address indexed member, uint256 exitAt);
    event Withdrawn(address indexed member, uint256 amount);
    event Drawn(bytes32 indexed seed, address[] members);
    event Released(address indexed member, uint256 locks);
    event Penalized(address indexed member, uint256 amount, uint256 stakeLeft);

    /// @notice Only the marketplace may do this.
    error NotMarket(address caller);
    /// @notice A stake below the registry's minimum.
    error StakeTooSmall(uint256 stake, uint256 minimum);
    /// @notice This address never registered (or already withdrew).
    error NotMember(address account);
    /// @notice The member asked to exit and may no longer add stake or be drawn.
    error Exiting(address member, uint256 exitAt);
    /// @notice `withdraw` before `requestExit`, before the cooling-off period ends, or while drawn.
    error StakeLocked(address member, uint256 exitAt, uint256 locks);
    /// @notice Fewer eligible members than seats could be found.
    error CommitteeUnavailable(uint256 found, uint256 seats);
    /// @notice A zero address or a zero cooldown at construction.
    error BadSetup();

    modifier onlyMarket() {
        if (msg.sender != market) revert NotMarket(msg.sender);
        _;
    }

    /// @param market_ The marketplace that draws committees (its address may be predicted before it exists).
    /// @param cooldown_ Seconds between asking to exit and withdrawing.
    /// @param minimumStake_ The least stake a member holds (a floor under every project's own minimum).
    constructor(address market_, uint64 cooldown_, uint128 minimumStake_) {
        if (market_ == address(0) || cooldown_ == 0 || minimumStake_ == 0) revert BadSetup();
        market = market_;
        cooldown = cooldown_;
        minimumStake = minimumStake_;
    }

    // ---------------------------------------------------------------------------------------------
    // Members
    // ---------------------------------------------------------------------------------------------

    /// @notice Register, or add to your stake, with the ETH sent.
    function register() external payable {
        Member memory m = _member[msg.sender];
        if (m.exitAt != 0) revert Exiting(msg.sender, m.exitAt);
        uint256 stake = m.stake + msg.value;
        if (stake < minimumStake) revert StakeTooSmall(stake, minimumStake);
        if (m.position == 0) {
            _members.push(msg.sender);
            m.position = uint32(_members.length);
        }
        m.stake = uint128(stake);
        _member[msg.sender] = m;
        emit Registered(msg.sender, msg.value, stake);
    }

    /// @notice Stop being drawn; the stake may be withdrawn `cooldown` seconds from now, once no
    /// project holds you.
    function requestExit() external {
        Member storage m = _member[msg.sender];
        if (m.position == 0) revert NotMember(msg.sender);
        if (m.exitAt != 0) revert Exiting(msg.sender, m.exitAt);
        uint64 exitAt = uint64(block.timestamp) + cooldown;
        m.exitAt = exitAt;
        emit ExitRequested(msg.sender, exitAt);
    }

    /// @notice Take your whole stake back and leave the registry.
    function withdraw() external nonReentrant {
        Member memory m = _member[msg.sender];
        if (m.position == 0) revert NotMember(msg.sender);
        if (m.exitAt == 0 || block.timestamp < m.exitAt || m.locks != 0) {
            revert StakeLocked(msg.sender, m.exitAt, m.locks);
        }
        _remove(msg.sender, m.position);
        emit Withdrawn(msg.sender, m.stake);
        Address.sendValue(payable(msg.sender), m.stake);
    }

    // ---------------------------------------------------------------------------------------------
    // The marketplace
    // ---------------------------------------------------------------------------------------------

    /// @notice Draw `seats` distinct active members holding at least `minStake`, and hold each until
    /// `release`. Reverts with `CommitteeUnavailable` when they cannot be found.
    function draw(bytes32 seed, uint256 seats, uint256 minStake) external onlyMarket returns (address[] memory chosen) {
        uint256 count = _members.length;
        chosen = new address[](seats);
        uint256 found;
        for (uint256 attempt; found < seats && attempt < seats * TRIES_PER_SEAT && count != 0; ++attempt) {
            address candidate = _members[uint256(keccak256(abi.encode(seed, attempt))) % count];
            Member storage m = _member[candidate];
            if (m.exitAt != 0 || m.stake < minStake || _contains(chosen, found, candidate)) continue;
            chosen[found++] = candidate;
            ++m.locks;
        }
        if (found < seats) revert CommitteeUnavailable(found, seats);
        emit Drawn(seed, chosen);
    }

    /// @notice A project no longer holds `member` (its committee work is over).
    function release(address member) external onlyMarket {
        Member storage m = _member[member];
        if (m.locks == 0) revert NotMember(member);
        uint32 locks = m.locks - 1;
        m.locks = locks;
        emit Released(member, locks);
    }

    /// @notice Take up to `amount` of `member`'s stake and send it to the marketplace, which hands it to
    /// the trainers the member tried to cheat. Returns what was taken.
    function penalize(address member, uint256 amount) external onlyMarket nonReentrant returns (uint256 taken) {
        Member storage m = _member[member];
        if (m.position == 0) revert NotMember(member);
        taken = amount < m.stake ? amount : m.stake;
        m.stake -= uint128(taken);
        emit Penalized(member, taken, m.stake);
        Address.sendValue(payable(market), taken);
    }

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @notice A member's stake, exit time (0 if active) and the number of projects holding it.
    function memberOf(address account) external view returns (uint256 stake, uint256 exitAt, uint256 locks) {
        Member memory m = _member[account];
        return (m.stake, m.exitAt, m.locks);
    }

    /// @notice The registered addresses, exiting ones included.
    function members() external view returns (address[] memory) {
        return _members;
    }

    // ---------------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------------

    function _remove(address account, uint32 position) private {
        address last = _members[_members.length - 1];
        _members[position - 1] = last;
        _member[last].position = position;
        _members.pop();
        delete _member[account];
    }

    function _contains(address[] memory list, uint256 len, address x) private pure returns (bool) {
        for (uint256 i; i < len; ++i) {
            if (list[i] == x) return true;
        }
        return false;
    }
}
