// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title The committee as the Marketplace sees it.
interface ICommittee {
    /// @notice The Marketplace the committee was built for.
    function market() external view returns (address);

    /// @notice Draws the project's committee (the Marketplace calls it at start).
    function draw(uint256 projectId) external;
}
