// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Consensus of an aggregator committee
 * @notice Turns the k revealed posts of a committee (weights and offender flags per trainer) into the
 * one result the contract settles: per trainer the median weight, and a flag where a strict majority
 * flags. A member whose post strays from that consensus by more than a tolerance is a deviator.
 * @dev Pure functions over memory arrays. k is at most 7 (odd), n at most 256, so sorting k values per
 * trainer by insertion costs at most n * k^2 / 2 comparisons and no bound is a stranger's to choose.
 * Weights are fixed point: one member's weights of a round sum to 1e9 (or to 0).
 */
library Consensus {
    /// @notice The largest committee.
    uint256 internal constant MAX_MEMBERS = 7;

    /// @notice The committee size is 0, even, or larger than `MAX_MEMBERS`.
    error CommitteeSize(uint256 members);
    /// @notice A member posted `got` weights for a round with `expected` submissions.
    error WeightCount(uint256 member, uint256 got, uint256 expected);

    /// @notice The consensus of `weights[m][i]` (member m's weight for trainer i) and `flags[m]`
    /// (member m's offender bitmap): per trainer the median weight, and each flag that more than half
    /// of the members set. A trainer flagged by the majority gets weight 0 whatever its median.
    function settle(uint256[][] memory weights, uint256[] memory flags, uint256 n)
        internal
        pure
        returns (uint256[] memory median, uint256 majority)
    {
        return settleAmong(weights, flags, n, weights.length);
    }

    /// @notice The consensus of the posts that `seats` drawn members revealed (absent members post
    /// nothing): a flag stands when more than half of the `seats` set it, so an absent member counts as
    /// "not flagged"; the median is over the posts present, the lower middle value when their number is
    /// even (a committee that lost members to absence is only as robust as the posts it still has).
    function settleAmong(uint256[][] memory weights, uint256[] memory flags, uint256 n, uint256 seats)
        internal
        pure
        returns (uint256[] memory median, uint256 majority)
    {
        uint256 k = weights.length;
        if (seats == 0 || seats % 2 == 0 || seats > MAX_MEMBERS || k == 0 || k > seats || flags.length != k) {
            revert CommitteeSize(k);
        }
        for (uint256 m; m < k; ++m) {
            if (weights[m].length != n) revert WeightCount(m, weights[m].length, n);
        }
        median = new uint256[](n);
        uint256[] memory column = new uint256[](k);
        for (uint256 i; i < n; ++i) {
            uint256 votes;
            for (uint256 m; m < k; ++m) {
                column[m] = weights[m][i];
                votes += (flags[m] >> i) & 1;
            }
            if (votes * 2 > seats) {
                majority |= 1 << i;
            } else {
                median[i] = medianOf(column);
            }
        }
    }

    /// @notice The median of the values, the lower middle one for an even count (sorts `values` in place).
    function medianOf(uint256[] memory values) internal pure returns (uint256) {
        uint256 len = values.length;
        for (uint256 i = 1; i < len; ++i) {
            uint256 v = values[i];
            uint256 j = i;
            while (j > 0 && values[j - 1] > v) {
                values[j] = values[j - 1];
                --j;
            }
            values[j] = v;
        }
        return values[(len - 1) / 2];
    }

    /// @notice How far one member's post lies from the consensus: the L1 distance between its weights
    /// and the consensus weights, each vector first scaled to sum to `scale` (so that a member is judged
    /// on the shares it proposed, not on its rounding), and the number of trainers whose flag differs.
    function distance(
        uint256[] memory posted,
        uint256 postedFlags,
        uint256[] memory median,
        uint256 majority,
        uint256 scale
    ) internal pure returns (uint256 l1, uint256 flagDisagreements) {
        uint256 n = posted.length;
        uint256 postedSum;
        uint256 medianSum;
        for (uint256 i; i < n; ++i) {
            postedSum += posted[i];
            medianSum += median[i];
        }
        for (uint256 i; i < n; ++i) {
            uint256 a = postedSum == 0 ? 0 : posted[i] * scale / postedSum;
            uint256 b = medianSum == 0 ? 0 : median[i] * scale / medianSum;
            l1 += a > b ? a - b : b - a;
        }
        uint256 differing = (postedFlags ^ majority) & (n == 256 ? type(uint256).max : (uint256(1) << n) - 1);
        for (; differing != 0; differing &= differing - 1) {
            ++flagDisagreements;
        }
    }
}
