// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketplaceStorage} from "../MarketplaceStorage.sol";

/// @title The Marketplace as the committee sees it: the views it reads and the one call it makes.
interface IMarketplace {
    function getConfig(uint256 projectId) external view returns (MarketplaceStorage.ProjectConfig memory);

    function getProject(uint256 projectId)
        external
        view
        returns (
            address owner,
            MarketplaceStorage.Status status,
            uint32 currentRound,
            uint16 trainerCount,
            uint256 carry,
            uint256 bondBalance,
            string memory validationCid
        );

    function aggregationOf(uint256 projectId, uint32 round)
        external
        view
        returns (MarketplaceStorage.Phase phase, uint256 aggregationDeadline, uint256 submissions, uint256 revealed);

    function getSubmitters(uint256 projectId, uint32 round) external view returns (address[] memory);

    function globalModelCid(uint256 projectId) external view returns (string memory);

    function postResult(
        uint256 projectId,
        uint32 round,
        string calldata globalModelCid_,
        string calldata reportCid,
        uint256[] calldata weights,
        uint256 flags
    ) external;
}
