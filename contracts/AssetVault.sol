// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

/**
 * @title AssetVault
 * @notice Moves the assets a market holds (ETH or ERC-20) in and out, and keeps the books honest about
 * tokens whose balances change on their own.
 * @dev Every ERC-20 unit taken in is counted in `held[token]`, every unit paid out is taken off it.
 * - Fee-on-transfer tokens are refused at `_pull` (the balance must grow by exactly the amount).
 * - Rebasing tokens are made safe at `_push`: a payment is refused with `AssetShortfall` while the
 *   market's balance is below what it owes in that token, so a negative rebase can never be paid out of
 *   another project's funds (the first claimants would otherwise drain the last). Anyone may restore the
 *   balance by sending the shortfall. A positive rebase is never paid to anyone: the surplus stays put.
 */
abstract contract AssetVault {
    using SafeERC20 for IERC20;

    /// @notice ERC-20 units this contract owes, per token.
    mapping(address token => uint256) public held;

    error WrongValue(uint256 expected, uint256 actual);
    error TransferAmountMismatch(uint256 expected, uint256 received);
    error AssetShortfall(address token, uint256 owed, uint256 balance);

    /// @dev Takes `amount` of `asset` from the caller: exact msg.value for ETH, else transferFrom with a
    /// balance check that refuses fee-on-transfer tokens.
    function _pull(address asset, uint256 amount) internal {
        if (asset == address(0)) {
            if (msg.value != amount) revert WrongValue(amount, msg.value);
            return;
        }
        if (msg.value != 0) revert WrongValue(0, msg.value);
        if (amount == 0) return;
        IERC20 token = IERC20(asset);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TransferAmountMismatch(amount, received);
        held[asset] += amount;
    }

    /// @dev Pays `amount` of `asset` to `to`; for an ERC-20, only while the books are covered.
    function _push(address asset, address to, uint256 amount) internal {
        if (asset == address(0)) {
            Address.sendValue(payable(to), amount);
            return;
        }
        IERC20 token = IERC20(asset);
        uint256 owed = held[asset];
        uint256 balance = token.balanceOf(address(this));
        if (balance < owed) revert AssetShortfall(asset, owed, balance);
        held[asset] = owed - amount;
        token.safeTransfer(to, amount);
    }
}
