"""Each detector on synthetic updates: honest ones share a direction; attackers do not."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.detectors import (
    _consensus_cosines,
    DETECTORS,
    DetectionBatch,
    copy_detector,
    direction_detector,
    free_rider_detector,
    get_detector,
    krum_detector,
    krum_scores,
    norm_detector,
    run_detectors,
)
from backend.errors import ConfigError

D = 2000


def honest_updates(k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 1, D)
    return np.stack([signal + rng.normal(0, 1.2, D) for _ in range(k)]).astype(np.float32) * 0.01


def flags(findings) -> list[int]:
    return [i for i, f in enumerate(findings) if f.flagged]


def all_active(k: int) -> np.ndarray:
    return np.ones(k, dtype=bool)


def test_honest_updates_raise_no_flags():
    batch = DetectionBatch(honest_updates(10), [str(i) for i in range(10)], reference=honest_updates(1, seed=0)[0])
    assert [v.flagged for v in run_detectors(batch, list(DETECTORS))] == [False] * 10


def test_copy_detector_exact_and_near_copies_earliest_wins():
    u = honest_updates(6)
    u[3] = u[1]  # exact copy of #1
    u[5] = u[2] * (1 + 1e-3) + 1e-6  # near copy of #2
    digests = ["a", "b", "c", "b", "d", "e"]
    found = copy_detector(DetectionBatch(u, digests), all_active(6))
    assert flags(found) == [3, 5]
    assert "#1" in found[3].detail and "#2" in found[5].detail
    assert found[0].flagged is False


def test_free_rider_detector_zero_tiny_and_noise():
    u = honest_updates(10)
    rng = np.random.default_rng(1)
    u[7] = 0.0
    u[8] = rng.normal(0, 1e-4 * np.linalg.norm(u[0]) / np.sqrt(D), D)  # global + a little noise
    u[9] = rng.normal(0, np.linalg.norm(u[0]) / np.sqrt(D), D)  # global + noise of honest-like size
    found = free_rider_detector(DetectionBatch(u), all_active(10))
    assert flags(found) == [7, 8, 9]
    assert "negligible" in found[8].detail and "uncorrelated" in found[9].detail


def test_noise_of_any_size_is_no_training():
    """Pure noise a few times the median norm, where spread honest norms keep it from being a norm
    outlier, is still "global model plus noise": unaligned with the others and the reference."""
    u = honest_updates(10)
    rng = np.random.default_rng(3)
    u[:5] *= np.linspace(0.3, 3.0, 5)[:, None]  # honest norms spread widely
    median = float(np.median(np.linalg.norm(u[:9].astype(np.float64), axis=1)))
    u[9] = rng.normal(0, 4 * median / np.sqrt(D), D)
    reference = honest_updates(1, seed=0)[0]
    assert not norm_detector(DetectionBatch(u), all_active(10))[9].flagged
    found = free_rider_detector(DetectionBatch(u, reference=reference), all_active(10))
    assert flags(found) == [9] and "noise, not training" in found[9].detail
    assert found[9].scores["relative_norm"] > 3
    capped = free_rider_detector(DetectionBatch(u, reference=reference), all_active(10), max_noise_ratio=3.0)
    assert flags(capped) == []  # the old cap left it to a norm rule that does not see it


def test_a_small_shard_that_learned_is_no_free_rider_and_a_scaled_copy_is_a_copy():
    """A tiny update that points where the others (or the owner's reference) point is a small
    shard's training: scored, not slashed. The same smallness made of an earlier update scaled down
    is a copy, and so is a scaled replay of the last global step."""
    u = honest_updates(10)
    rng = np.random.default_rng(2)
    learned = u[1:7].mean(axis=0)  # what the shards teach, and some of its own
    u[7] = 0.02 * (learned + rng.normal(0, 0.01, D))  # a few steps on a few samples
    found = free_rider_detector(DetectionBatch(u), all_active(10))
    assert flags(found) == [] and found[7].scores["relative_norm"] < 0.05
    step = honest_updates(1, seed=5)[0]
    u[8] = u[0] * 1e-4
    u[9] = step * 3.0
    verdicts = run_detectors(DetectionBatch(u, [str(i) for i in range(10)], last_step=step))
    assert [i for i, v in enumerate(verdicts) if v.flagged] == [8, 9]
    assert "submission #0 scaled" in verdicts[8].detail and "the last global step scaled" in verdicts[9].detail


def test_norm_detector_flags_boosted_updates_only():
    u = honest_updates(10)
    u[4] *= 10
    found = norm_detector(DetectionBatch(u), all_active(10))
    assert flags(found) == [4]
    assert found[4].scores["norm_z"] > 3.5


def test_a_large_update_is_provisional_when_it_points_with_the_others_and_flagged_when_not():
    """Size alone is what an honest one-class shard shows too: the validation set settles it. Size
    with no alignment (noise) or against the others is flagged outright."""
    u = honest_updates(10)
    rng = np.random.default_rng(9)
    u[4] *= 10  # boosted, pointing the way the others do
    u[6] = rng.normal(0, 10 * _rms(u[0]), D)  # as large, but noise
    u[8] = -8 * u[8]  # as large, against them
    found = norm_detector(DetectionBatch(u), all_active(10))
    assert flags(found) == [4, 6, 8]
    assert [i for i, f in enumerate(found) if f.provisional] == [4]
    strict = norm_detector(DetectionBatch(u), all_active(10), needs_harm=False)
    assert flags(strict) == [4, 6, 8] and not any(f.provisional for f in strict)
    # a one-class shard late in training: orthogonal to the others, along what the owner's data teaches
    owner = rng.normal(0, 1, D)
    median = np.median(np.delete(u, 2, axis=0), axis=0)
    own = owner - (owner @ median) / (median @ median) * median
    u[2] = 10 * _rms(u[0]) * own / _rms(own)
    found = norm_detector(DetectionBatch(u, reference=owner.astype(np.float32)), all_active(10))
    assert abs(_consensus_cosines(DetectionBatch(u), all_active(10))[2]) < 5 / np.sqrt(D)
    assert 2 in flags(found) and found[2].provisional
    assert not norm_detector(DetectionBatch(u), all_active(10))[2].provisional  # no reference: noise to us


def test_direction_detector_median_and_reference():
    u = honest_updates(10)
    u[2] = -u[2]
    found = direction_detector(DetectionBatch(u), all_active(10))
    assert flags(found) == [2]
    # a reference pointing elsewhere flags an update that agrees with the (poisoned) majority
    reference = -honest_updates(1, seed=0)[0]
    found = direction_detector(DetectionBatch(u, reference=reference), all_active(10))
    assert len(flags(found)) == 10 and "reference" in found[0].detail
    found = direction_detector(DetectionBatch(u, reference=reference), all_active(10), use_reference=False)
    assert flags(found) == [2]


def test_krum_detector():
    u = honest_updates(10)
    u[6] = np.random.default_rng(3).normal(0, 0.5, D)
    scores = krum_scores(u.astype(np.float64), f=3)
    assert int(np.argmax(scores)) == 6
    assert flags(krum_detector(DetectionBatch(u), all_active(10))) == [6]


def test_small_rounds_do_not_flag_on_statistics():
    u = honest_updates(2)
    u[1] *= -50
    for name in ("norm", "direction", "krum"):
        assert (
            flags(
                get_detector(name)(
                    DetectionBatch(u), all_active(2), **({"use_reference": False} if name == "direction" else {})
                )
            )
            == []
        )


def test_run_detectors_first_reason_wins_and_stats_skip_flagged():
    u = honest_updates(10)
    u[1] = u[0]  # copy
    u[2] = 0.0  # free rider
    u[3] *= -1  # sign flip
    u[4] *= 20  # scale
    verdicts = run_detectors(DetectionBatch(u, [str(i) for i in range(10)]))
    assert [(i, v.reason, v.detector) for i, v in enumerate(verdicts) if v.flagged] == [
        (1, "copy", "copy"),
        (2, "free_rider", "free_rider"),
        (3, "outlier", "direction"),
        (4, "outlier", "norm"),
    ]


def test_detector_params_and_unknown_names():
    u = honest_updates(10)
    u[4] *= 2.0
    assert not run_detectors(DetectionBatch(u), ["norm"])[4].flagged
    assert run_detectors(DetectionBatch(u), ["norm"], {"norm": {"z": 1.0, "sigma_floor": 0.1}})[4].flagged
    with pytest.raises(ConfigError):
        run_detectors(DetectionBatch(u), ["nonsense"])


def test_free_rider_detector_spares_weakly_aligned_honest_updates_in_high_dimension():
    """Late in training honest updates agree only weakly (cos ~0.04 with the consensus), far above
    the ~1/sqrt(d) cosine of noise: they must not be taken for free-riders; noise still is."""
    rng = np.random.default_rng(0)
    d = 100_000
    base = rng.standard_normal(d)
    honest = [0.13 * base + rng.standard_normal(d) for _ in range(6)]
    noise = 0.15 * np.linalg.norm(honest[0]) / np.sqrt(d) * rng.standard_normal(d)
    batch = DetectionBatch(np.stack([*honest, noise]).astype(np.float32))
    findings = free_rider_detector(batch, np.ones(7, dtype=bool))
    assert all(0.016 < f.scores["cos_consensus"] < 0.05 for f in findings[:6]), [f.scores for f in findings]
    assert [f.flagged for f in findings] == [False] * 6 + [True]
    assert findings[6].reason == "free_rider"


def test_direction_detector_flags_an_unaligned_update_when_honest_ones_agree():
    """A label-flipper early in training is not reversed, only unaligned (cos ~0.02 with the
    reference while honest updates sit near 0.75): far below the round's typical agreement."""
    rng = np.random.default_rng(99)
    *u, reference = honest_updates(11, seed=5)  # the reference: one more honest draw
    u = np.stack(u)
    unaligned = rng.normal(0, float(np.linalg.norm(u[0])) / np.sqrt(D), D).astype(np.float32)
    u[9] = unaligned + 0.05 * u[0]  # slightly positive: the absolute rule lets it through
    found = direction_detector(DetectionBatch(u, reference=reference), all_active(10))
    assert 0 < found[9].scores["cos_reference"] < 0.25 * np.median([f.scores["cos_reference"] for f in found])
    assert flags(found) == [9]
    assert "far below the round's typical" in found[9].detail
    # the other trainers' consensus is a second witness: the flag stands without a harm test
    assert "median" in found[9].detail and not found[9].provisional
    assert flags(direction_detector(DetectionBatch(u, reference=reference), all_active(10), relative=0)) == []


def test_direction_detector_spares_honest_updates_that_disagree_among_themselves():
    """With label-skewed data honest updates agree weakly and unevenly: the spread is wide, so an
    update at a fifth of the median cosine is not an outlier of it."""
    rng = np.random.default_rng(6)
    signal = rng.normal(0, 1, D)
    strengths = [0.9, 0.1, 0.5, 0.8, 0.2, 0.6, 0.7, 0.3, 0.15, 0.05]  # how much each shard shares the signal
    u = np.stack([s * signal + rng.normal(0, 1, D) for s in strengths]).astype(np.float32)
    found = direction_detector(DetectionBatch(u, reference=signal.astype(np.float32)), all_active(10))
    cos = np.array([f.scores["cos_reference"] for f in found])
    assert cos.min() > 0 and cos.min() < 0.25 * np.median(cos)
    assert flags(found) == []


def test_consensus_rule_flags_only_outliers_of_the_rounds_spread():
    """Label-skewed honest shards share the signal unevenly, some a little against it: pointing
    slightly away from the median of the others is then within the spread. A reversed update
    stays far outside it."""
    rng = np.random.default_rng(7)
    signal = rng.normal(0, 1, D)
    strengths = [0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.0, -0.1, 0.6, 0.4]
    honest = [s * signal + rng.normal(0, 1, D) for s in strengths]
    u = np.stack([*honest, -2 * honest[0]]).astype(np.float32)  # the last one: a sign-flipped, boosted update
    found = direction_detector(DetectionBatch(u), all_active(len(u)), use_reference=False)
    cos = [f.scores["cos_median"] for f in found]
    assert min(cos[:-1]) < 0  # the old rule (cos < 0) flagged honest shards here
    assert flags(found) == [len(u) - 1]


def test_free_rider_detector_spares_an_update_the_reference_vouches_for():
    """Orthogonal to the other shards (label skew) but aligned with the owner's reference: trained,
    not noise. Noise is unaligned with both and stays flagged."""
    rng = np.random.default_rng(8)
    shared, own = rng.normal(0, 1, D), rng.normal(0, 1, D)
    others = [shared + rng.normal(0, 1, D) for _ in range(6)]
    skewed = own + rng.normal(0, 0.5, D)  # learns what the others' data does not show
    noise = rng.normal(0, 1, D)
    u = np.stack([*others, skewed, noise]).astype(np.float32)
    reference = (shared + own).astype(np.float32)  # the owner's data has both
    without = free_rider_detector(DetectionBatch(u), all_active(8))
    assert flags(without) == [6, 7]  # by the consensus alone, the skewed shard looks like noise
    found = free_rider_detector(DetectionBatch(u, reference=reference), all_active(8))
    assert found[6].scores["cos_reference"] > 0.3 and abs(found[6].scores["cos_consensus"]) < 0.05
    assert flags(found) == [7] and "reference" in found[7].detail


def test_direction_spread_rules_wait_for_enough_updates():
    """With three updates the MAD is one gap: a weakly aligned honest update is not judged by it."""
    rng = np.random.default_rng(9)
    signal = rng.normal(0, 1, D)
    u = np.stack(
        [1.2 * signal + rng.normal(0, 1, D), 1.2 * signal + rng.normal(0, 1, D), 0.12 * signal + rng.normal(0, 1, D)]
    ).astype(np.float32)
    found = direction_detector(DetectionBatch(u, reference=signal.astype(np.float32)), all_active(3))
    cos = [f.scores["cos_reference"] for f in found]
    assert 0 < cos[2] < 0.25 * np.median(cos)
    assert flags(found) == []
    assert flags(
        direction_detector(DetectionBatch(u, reference=signal.astype(np.float32)), all_active(3), min_spread_updates=3)
    ) == [2]


def _rms(v):
    return float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))


@pytest.mark.parametrize("noise", [0.06, 0.1, 0.2, 0.5, 1.0])
def test_copy_detector_sees_an_earlier_update_under_noise(noise):
    u = honest_updates(8)
    rng = np.random.default_rng(7)
    u[6] = u[2] + rng.normal(0, noise * _rms(u[2]), D)
    found = copy_detector(
        DetectionBatch(u, [str(i) for i in range(8)], reference=honest_updates(1, seed=0)[0]), all_active(8)
    )
    assert flags(found) == [6]
    assert "submission #2 plus noise" in found[6].detail


def test_copy_detector_sees_a_replayed_global_step():
    u = honest_updates(8)
    rng = np.random.default_rng(3)
    step = honest_updates(1, seed=5)[0] * 2  # last round's step: a direction of its own
    u[5] = step + rng.normal(0, 0.1 * _rms(step), D)
    batch = DetectionBatch(u, [str(i) for i in range(8)], reference=honest_updates(1, seed=0)[0], last_step=step)
    found = copy_detector(batch, all_active(8))
    assert flags(found) == [5] and "the last global step plus noise" in found[5].detail
    # without the last step there is nothing to compare with, and honest-looking updates stay
    assert flags(copy_detector(DetectionBatch(u, [str(i) for i in range(8)]), all_active(8))) == []


def test_copy_detector_keeps_honest_updates_that_resemble_each_other():
    """Label-skewed shards of one class point the same way; what one learned beyond the other (a
    second class the owner's data also teaches) is not noise, so neither is a copy."""
    rng = np.random.default_rng(11)
    classes = rng.normal(0, 1, (8, D))
    u = np.stack([classes[i] + rng.normal(0, 0.3, D) for i in range(8)])
    u[5] = u[0] + 0.4 * classes[1] + rng.normal(0, 0.05, D)  # cos with #0 about 0.9
    reference = classes.sum(axis=0)
    batch = DetectionBatch(u.astype(np.float32), [str(i) for i in range(8)], reference=reference)
    found = copy_detector(batch, all_active(8))
    assert found[5].scores["copy_cosine"] > 0.85
    assert flags(found) == []


def test_split_detector_flags_every_piece_of_a_split_update():
    from aggregator.detectors import split_detector

    u = honest_updates(10)
    whole = u[7].copy()
    owner = np.random.default_rng(4).permutation(D) % 3
    for piece, i in enumerate((7, 8, 9)):
        u[i] = np.where(owner == piece, 3 * whole, 0.0)
    found = split_detector(DetectionBatch(u), all_active(10))
    assert flags(found) == [7, 8, 9]
    assert "split" in found[8].detail and "first piece" in found[7].detail
    assert flags(split_detector(DetectionBatch(honest_updates(10)), all_active(10))) == []


def test_an_update_only_the_reference_catches_is_flagged_provisionally():
    """Label skew: a shard of one class points a little away from a reference trained on all of them,
    while it agrees with the other trainers as much as they do among themselves. The floor alone is
    no evidence of an offence, so its flag waits for the round's harm test; a reversed update, which
    the consensus rule catches too, is flagged outright."""
    rng = np.random.default_rng(11)
    signal, own = rng.normal(0, 1, D), rng.normal(0, 1, D)
    honest = [s * signal + rng.normal(0, 1, D) for s in (0.9, 0.7, 0.5, 0.6, 0.8, 0.4, 0.3)]
    skewed = 0.5 * np.mean(honest, axis=0) + 3 * own  # shares little of the signal
    reference = signal - 2 * own  # the owner's data moves away from what the skewed shard teaches
    u = np.stack([*honest, skewed, -2 * honest[0]]).astype(np.float32)
    batch = DetectionBatch(u, reference=reference.astype(np.float32))
    found = direction_detector(batch, all_active(len(u)))
    assert found[7].scores["cos_reference"] < 0 and found[7].flagged and found[7].provisional
    assert "reference" in found[7].detail and "median" not in found[7].detail
    assert found[8].flagged and not found[8].provisional and "median" in found[8].detail
    assert not any(f.provisional for f in found[:7])
    # the old behaviour, on request: the floor's flag stands by itself
    assert not direction_detector(batch, all_active(len(u)), reference_needs_harm=False)[7].provisional
    verdicts = run_detectors(batch, ["direction"])
    assert verdicts[7].flagged and verdicts[7].provisional and not verdicts[8].provisional
    verdicts[7].exclude("no harm")
    assert (verdicts[7].flagged, verdicts[7].excluded, verdicts[7].reason) == (False, True, "excluded")
    verdicts[8].confirm("harmful")
    assert verdicts[8].flagged and verdicts[8].detail.endswith("; harmful")


def test_copy_detector_keeps_honest_updates_of_a_gradient_of_sizes():
    """Shards of growing size: bigger ones take more steps, further along a direction only they
    reach. The biggest resembles the next (cosine ~0.8) and what it has beyond it is invisible to
    the median (which sits with the small steps) but shared with the other big shards: learning,
    not noise (measured on MNIST: cosine 0.006 with the median, 0.30 with the next-biggest shard)."""
    rng = np.random.default_rng(5)
    first, further = rng.normal(0, 1, D), rng.normal(0, 1, D)
    steps = np.arange(1, 9)
    u = np.stack([s * first + max(s - 5, 0) ** 1.5 * further + rng.normal(0, 0.8 * s, D) for s in steps])
    batch = DetectionBatch(u.astype(np.float32), [str(i) for i in range(8)], reference=first)
    found = copy_detector(batch, all_active(8))
    assert found[7].scores["copy_cosine"] > 0.5  # it does resemble an earlier update
    assert flags(found) == []


@pytest.mark.parametrize("noise", [0.2, 0.5])
def test_copy_detector_sees_copiers_chained_on_each_other(noise):
    """A second copier that copies the first copier (plus its own noise) shares the first one's noise:
    it would vouch for the first if it counted as a witness. Neither counts for the other, so both
    are flagged, in either order."""
    for order in ((8, 9), (9, 8)):
        u = list(honest_updates(8))
        rng = np.random.default_rng(13)
        first = u[3] + rng.normal(0, noise * _rms(u[3]), D)
        second = first + rng.normal(0, noise * _rms(u[3]), D)
        placed = dict(zip(order, (first, second)))
        u = np.stack(u + [placed[8], placed[9]]).astype(np.float32)
        found = copy_detector(
            DetectionBatch(u, [str(i) for i in range(10)], reference=honest_updates(1, seed=0)[0]), all_active(10)
        )
        assert flags(found) == [8, 9], order


def test_the_witness_median_without_two_updates_is_numpys():
    """The copy check reads each median (all unflagged updates but the two compared) off columns
    sorted once; it must be the median numpy computes, ties and even counts included."""
    from itertools import permutations

    from aggregator.detectors import _Witnesses

    rng = np.random.default_rng(0)
    for m in (4, 5, 7, 8):
        y = rng.normal(size=(m + 1, 50))
        y[1, :5] = y[2, :5]  # ties
        y[3, 5:9] = y[0, 5:9]
        w = _Witnesses(y, [m], enough=1.0)
        w.start_pass(list(range(m)))
        for a, b in permutations(range(m), 2):
            assert np.allclose(w._median_without([a, b], m - 2), np.median(np.delete(y[:m], [a, b], axis=0), axis=0))
        for a in range(m):
            assert np.allclose(w._median_without([a], m - 1), np.median(np.delete(y[:m], a, axis=0), axis=0))
