// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Consensus of an aggregator committee
 * @notice Turns the k revealed posts of a committee (weights and offender flags per trainer) into the
 * one result the contract settles: per trainer the median weight, and a flag where a strict majority
 * flags. A member whose post strays from that consensus by more than a tolerance is a deviator.
 * @dev Weights travel packed as the Marketplace's `postResult` takes them: one uint32 lane per trainer,
 * 8 lanes per word, trainer i in word i / 8 at bit 32 * (i % 8). The settlement works on those words
 * directly: a word on which every member agrees is its own median (the common case: honest members
 * re-execute the same scoring and post the same bytes), and only the lanes of words where members
 * differ are sorted. The array functions (`settle`, `settleAmong`, `distance`) state the same rule one
 * trainer and one member at a time, for any uint256 weights: the specification that the forge tests hold
 * the packed functions to (to the unit) and that the Python replica (aggregator/committee.py) mirrors.
 * k is at most 7 (odd), n at most 256, so no bound is a stranger's to choose. Weights are fixed point:
 * one member's weights of a round sum to 1e9 (or to 0).
 */
library Consensus {
    /// @notice The largest committee.
    uint256 internal constant MAX_MEMBERS = 7;
    uint256 internal constant LANE_MASK = 0xffffffff;
    /// @dev The even 32-bit lanes of a word, and the low 64-bit halves of its 128-bit halves (lane sums).
    uint256 private constant EVEN_LANES = 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff;
    uint256 private constant EVEN_PAIRS = 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff;

    /// @notice The committee size is 0, even, or larger than `MAX_MEMBERS`.
    error CommitteeSize(uint256 members);
    /// @notice A member posted `got` weights for a round with `expected` submissions.
    error WeightCount(uint256 member, uint256 got, uint256 expected);

    // ---------------------------------------------------------------------------------------------
    // The rule, over plain arrays
    // ---------------------------------------------------------------------------------------------

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
        checkSize(k, seats, flags.length);
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
        // gas savings: 1 <= j <= i < len, so no index under- or overflows
        unchecked {
            for (uint256 i = 1; i < len; ++i) {
                uint256 v = values[i];
                uint256 j = i;
                for (; j > 0 && values[j - 1] > v; --j) {
                    values[j] = values[j - 1];
                }
                values[j] = v;
            }
            return values[(len - 1) / 2];
        }
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

    // ---------------------------------------------------------------------------------------------
    // The same rule, over packed words (what the committee settles with)
    // ---------------------------------------------------------------------------------------------

    /// @notice Reverts unless `k` posts (with `flagCount` flag words) can come from a committee of `seats`.
    function checkSize(uint256 k, uint256 seats, uint256 flagCount) internal pure {
        if (seats == 0 || seats % 2 == 0 || seats > MAX_MEMBERS || k == 0 || k > seats || flagCount != k) {
            revert CommitteeSize(k);
        }
    }

    /// @notice `settleAmong` over packed weights: `words[m]` holds member m's weights, (n + 7) / 8 words
    /// each with no lane set past n (the caller checked both). Returns the median packed the same way.
    function settlePacked(uint256[][] memory words, uint256[] memory flags, uint256 n, uint256 seats)
        internal
        pure
        returns (uint256[] memory median, uint256 majority)
    {
        checkSize(words.length, seats, flags.length);
        majority = majorityOf(flags, seats) & lowBits(n);
        uint256 count = (n + 7) >> 3;
        median = new uint256[](count);
        uint256 k = words.length;
        uint256[] memory column = new uint256[](k);
        for (uint256 w; w < count; ++w) {
            uint256 word = words[0][w];
            for (uint256 m = 1; m < k; ++m) {
                if (words[m][w] != word) {
                    word = _medianWord(words, w, column);
                    break;
                }
            }
            // A trainer flagged by the majority gets 0, whatever its median.
            median[w] = word & ~laneMask(majority >> (w << 3));
        }
    }

    /// @notice What the committee judges a member by: `distance` over packed weights (`posted` and
    /// `median` hold n lanes each), with the weight the member gives a trainer it flags taken as 0. That
    /// weight is never paid (the consensus zeroes flagged trainers too), so flagging and weighting are not
    /// judged twice. Zeroes those lanes of `posted` in place.
    function distancePacked(
        uint256[] memory posted,
        uint256 postedFlags,
        uint256[] memory median,
        uint256 majority,
        uint256 n,
        uint256 scale
    ) internal pure returns (uint256 l1, uint256 flagDisagreements) {
        flagDisagreements = popcount((postedFlags ^ majority) & lowBits(n));
        (bool same, uint256 postedSum, uint256 medianSum) = _judgedSums(posted, postedFlags, median);
        // Equal vectors have equal shares: nothing to scale.
        if (!same) l1 = _l1(posted, postedSum, median, medianSum, n, scale);
    }

    /// @notice The bits set in more than half of `seats` of the `flags` words (at most 7 words).
    /// @dev Counts each bit position across the words at once, in three bit planes (c0 + 2 c1 + 4 c2),
    /// then compares the count with the threshold plane by plane: 3 word operations per member instead of
    /// one per trainer and member.
    function majorityOf(uint256[] memory flags, uint256 seats) internal pure returns (uint256) {
        uint256 c0;
        uint256 c1;
        uint256 c2;
        for (uint256 m; m < flags.length; ++m) {
            uint256 carry = c0 & flags[m];
            c0 ^= flags[m];
            c2 |= c1 & carry; // counts stay below 8: at most 7 members
            c1 ^= carry;
        }
        uint256 t = seats / 2 + 1; // 1..4
        // count >= t, from the highest plane down
        uint256 t0 = t & 1 == 0 ? type(uint256).max : 0;
        uint256 t1 = (t >> 1) & 1 == 0 ? type(uint256).max : 0;
        uint256 t2 = (t >> 2) & 1 == 0 ? type(uint256).max : 0;
        uint256 atLeast = c0 | t0; // c0 >= t0
        atLeast = (c1 & t1) | (~(c1 ^ ~t1) & atLeast); // c1 > t1, or c1 == t1 and the rest >=
        return (c2 & t2) | (~(c2 ^ ~t2) & atLeast);
    }

    /// @notice The 32-bit lanes of the words whose bits are set in `bits` (bit j: lane j of the word),
    /// as a mask: the lanes of 8 trainers' flags.
    function laneMask(uint256 bits) internal pure returns (uint256 mask) {
        bits &= 0xff;
        for (uint256 j; bits >> j != 0; ++j) {
            if ((bits >> j) & 1 != 0) mask |= LANE_MASK << (j << 5);
        }
    }

    /// @notice The sum of a word's eight 32-bit lanes (below 2^35).
    function laneSum(uint256 word) internal pure returns (uint256) {
        uint256 pairs = (word & EVEN_LANES) + ((word >> 32) & EVEN_LANES); // four 64-bit sums
        uint256 halves = (pairs & EVEN_PAIRS) + ((pairs >> 64) & EVEN_PAIRS); // two 128-bit sums
        return (halves & type(uint128).max) + (halves >> 128);
    }

    /// @notice Bits 0..n-1 set.
    function lowBits(uint256 n) internal pure returns (uint256) {
        return n >= 256 ? type(uint256).max : (uint256(1) << n) - 1;
    }

    function popcount(uint256 x) internal pure returns (uint256 count) {
        for (; x != 0; x &= x - 1) {
            ++count;
        }
    }

    /// @notice The first n lanes of packed `words`.
    function unpack(uint256[] memory words, uint256 n) internal pure returns (uint256[] memory values) {
        values = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            values[i] = (words[i >> 3] >> ((i & 7) << 5)) & LANE_MASK;
        }
    }

    /// @dev Word `w` of the median, lane by lane, where the members' words differ (`column`: k scratch slots).
    function _medianWord(uint256[][] memory words, uint256 w, uint256[] memory column)
        private
        pure
        returns (uint256 word)
    {
        uint256 k = column.length;
        for (uint256 shift; shift < 256; shift += 32) {
            for (uint256 m; m < k; ++m) {
                column[m] = (words[m][w] >> shift) & LANE_MASK;
            }
            word |= medianOf(column) << shift;
        }
    }

    /// @dev Zeroes `posted`'s flagged lanes; whether it then equals `median`, and both lane sums.
    function _judgedSums(uint256[] memory posted, uint256 postedFlags, uint256[] memory median)
        private
        pure
        returns (bool same, uint256 postedSum, uint256 medianSum)
    {
        same = true;
        for (uint256 w; w < median.length; ++w) {
            uint256 word = posted[w] & ~laneMask(postedFlags >> (w << 3));
            posted[w] = word;
            if (word != median[w]) same = false;
            postedSum += laneSum(word);
            medianSum += laneSum(median[w]);
        }
    }

    function _share(uint256 weight, uint256 scale, uint256 sum) private pure returns (uint256) {
        return sum == 0 ? 0 : weight * scale / sum;
    }

    /// @dev The L1 distance between the shares of `posted` and of `median` (lane sums given).
    function _l1(
        uint256[] memory posted,
        uint256 postedSum,
        uint256[] memory median,
        uint256 medianSum,
        uint256 n,
        uint256 scale
    ) private pure returns (uint256 l1) {
        for (uint256 i; i < n; ++i) {
            uint256 shift = (i & 7) << 5;
            uint256 a = _share((posted[i >> 3] >> shift) & LANE_MASK, scale, postedSum);
            uint256 b = _share((median[i >> 3] >> shift) & LANE_MASK, scale, medianSum);
            // gas savings: a and b are each at most `scale`, so n of their differences cannot overflow
            unchecked {
                l1 += a > b ? a - b : b - a;
            }
        }
    }
}
