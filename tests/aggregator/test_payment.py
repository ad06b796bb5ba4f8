"""The payment rule (aggregator.payment): pure numpy, no torch."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.payment import difference_error, pay_by_confidence, standard_errors


def _terms(means, samples=500, noise=0.05, seed=0, shared=None):
    """Per-sample terms with the given means: independent noise per player, plus an optional term
    shared by every player (as the same validation sample moves every model alike)."""
    rng = np.random.default_rng(seed)
    terms = np.asarray(means, dtype=float)[:, None] + rng.normal(0, noise, (len(means), samples))
    if shared is not None:
        terms += rng.normal(0, shared, samples)[None, :]
    # exact means, so the test states what each player is worth
    return terms - terms.mean(axis=1, keepdims=True) + np.asarray(means, dtype=float)[:, None]


def test_standard_errors_are_the_spread_over_root_n():
    terms = _terms([0.0, 0.0], samples=400, noise=1.0)
    se = standard_errors(terms)
    assert se == pytest.approx(terms.std(axis=1, ddof=1) / 20)


def test_paired_difference_cancels_noise_the_players_share():
    terms = _terms([0.01, 0.0], noise=0.001, shared=1.0)
    assert difference_error(terms, 0, 1) < standard_errors(terms).min() / 50


def test_indistinguishable_scores_are_paid_alike():
    # five identical trainers: scores differ by noise far inside one standard error (0.05/sqrt(500))
    values = [0.0030, 0.0021, 0.0012, 0.0029, 0.0025]
    payment = pay_by_confidence(values, _terms(values))
    assert len(set(payment.pay)) == 1 and payment.pay[0] == pytest.approx(np.mean(values))
    assert payment.groups == [0] * 5 and not payment.harmful


def test_clear_differences_keep_their_order():
    values = [0.10, 0.05, 0.20, 0.0]
    payment = pay_by_confidence(values, _terms(values, noise=0.01))
    assert payment.pay[2] > payment.pay[0] > payment.pay[1] > payment.pay[3] == 0
    assert payment.pay[:3] == pytest.approx([0.10, 0.05, 0.20])


def test_a_gentle_slope_splits_into_steps_rather_than_one_group():
    # consecutive gaps of one standard error each: chaining would merge all eight
    se = 0.05 / np.sqrt(500)
    values = [k * se * 1.5 for k in range(8)]
    payment = pay_by_confidence(values, _terms(values))
    assert len(set(payment.groups)) >= 3
    assert all(a <= b for a, b in zip(payment.pay, payment.pay[1:]))  # never inverted


def test_harm_beyond_noise_is_paid_nothing_and_noise_below_zero_is_not_harm():
    se = 0.05 / np.sqrt(500)
    values = [0.01, -5 * se, -0.5 * se]
    payment = pay_by_confidence(values, _terms(values))
    assert payment.harmful == [1]
    assert payment.pay[1] == 0 and payment.groups[1] == -1
    assert payment.groups[2] != -1


def test_a_round_that_bought_nothing_measurable_splits_evenly_among_the_harmless():
    # the round 4: one +0.008 and four small negatives, all inside the noise of 500 samples
    values = [0.008, -0.008, -0.0003, -0.004, -0.002]
    payment = pay_by_confidence(values, _terms(values, noise=0.15))
    assert payment.pay == [payment.pay[0]] * 5 and payment.pay[0] > 0


def test_floor_when_every_mean_is_at_most_zero():
    values = [0.0, -0.0001, 0.0]
    payment = pay_by_confidence(values, _terms(values))
    assert payment.floor and payment.pay == [1.0, 1.0, 1.0]


def test_z_zero_pays_each_score_as_it_is():
    values = [0.3, 0.1, -0.2]
    payment = pay_by_confidence(values, _terms(values), z=0)
    assert payment.pay == pytest.approx([0.3, 0.1, 0.0])


@pytest.mark.parametrize(
    "values, terms, z, needle",
    [
        ([0.1], np.zeros((2, 10)), 2.0, "per-sample terms for 2"),
        ([float("nan")], np.zeros((1, 10)), 2.0, "finite"),
        ([0.1], np.zeros((1, 10)), -1.0, "z must be"),
        ([0.1], np.zeros(10), 2.0, "players × samples"),
    ],
)
def test_bad_input_is_a_clear_error(values, terms, z, needle):
    with pytest.raises(ValueError, match=needle):
        pay_by_confidence(values, terms, z)


def test_no_players():
    payment = pay_by_confidence([], np.zeros((0, 5)))
    assert payment.pay == [] and not payment.floor


# -- over rounds ------------------------------------------------------------------------------------

from aggregator.payment import pay_over_rounds, round_value  # noqa: E402
from aggregator.report import ReportError, RoundReport  # noqa: E402

ADDR = ["0xa", "0xb", "0xc", "0xd"]


def test_first_round_pays_the_within_round_shares():
    pay, info = pay_over_rounds([0.4, 0.3, 0.3, 0.0], ADDR, [True, True, True, False], [])
    assert pay == [0.4, 0.3, 0.3, 0.0] and info["rounds"] == [1, 1, 1, 1]


def test_luck_that_changes_from_round_to_round_is_paid_alike():
    # four trainers with the same data: who leads changes every round
    prior = [{"0xa": 0.4, "0xb": 0.2, "0xc": 0.25, "0xd": 0.15}, {"0xa": 0.15, "0xb": 0.4, "0xc": 0.2, "0xd": 0.25}]
    pay, info = pay_over_rounds([0.25, 0.15, 0.2, 0.4], ADDR, [True] * 4, prior)
    assert pay == pytest.approx([0.25] * 4) and info["tau"] == 0


def test_a_difference_that_persists_is_kept():
    prior = [{"0xa": 0.4, "0xb": 0.3, "0xc": 0.2, "0xd": 0.1}, {"0xa": 0.41, "0xb": 0.29, "0xc": 0.21, "0xd": 0.09}]
    pay, _ = pay_over_rounds([0.39, 0.31, 0.19, 0.11], ADDR, [True] * 4, prior)
    assert pay[0] > pay[1] > pay[2] > pay[3] > 0
    assert pay == pytest.approx([0.4, 0.3, 0.2, 0.1], abs=0.01)


def test_a_small_real_difference_keeps_its_order_where_grouping_would_tie_it():
    # a steady gradient of shares with some round-to-round noise: shrunk, never reordered or tied
    rng = np.random.default_rng(0)
    truth = np.linspace(0.05, 0.2, 8)
    truth /= truth.sum()
    addresses = [f"0x{i}" for i in range(8)]
    rounds = [truth + rng.normal(0, 0.01, 8) for _ in range(5)]
    prior = [dict(zip(addresses, r)) for r in rounds[:-1]]
    pay, info = pay_over_rounds(list(rounds[-1]), addresses, [True] * 8, prior)
    means = np.array(info["mean_share"])
    assert list(np.argsort(pay)) == list(np.argsort(means)) and len(set(pay)) == 8
    assert 0 < info["tau"] and np.ptp(pay) < np.ptp(means)  # shrunk toward the average, not flattened


def test_rounds_that_bought_more_count_more():
    # round 0 bought 100x what the later ones did: a led it; b led the late, noisy rounds
    prior = [{"0xa": 0.6, "0xb": 0.4}, {"0xa": 0.004, "0xb": 0.006}]
    pay, info = pay_over_rounds([0.4, 0.6], ADDR[:2], [True, True], prior, value=0.01)
    assert pay[0] > pay[1]
    assert info["mean_share"][0] == pytest.approx((0.6 + 0.004 + 0.004) / 1.02, abs=1e-6)
    # the same shares with every round worth the same: b's two rounds outweigh a's one
    flat = [{"0xa": 0.6, "0xb": 0.4}, {"0xa": 0.4, "0xb": 0.6}]
    pay_flat, _ = pay_over_rounds([0.4, 0.6], ADDR[:2], [True, True], flat, value=1.0)
    assert pay_flat[1] >= pay_flat[0]


def test_round_value_is_zero_under_the_floor():
    assert round_value([0.2, None, 0.1], floor=False) == pytest.approx(0.3)
    assert round_value([1.0, 1.0], floor=True) == 0.0


def test_only_eligible_trainers_are_paid_and_new_trainers_count_their_rounds():
    prior = [{"0xa": 0.5, "0xb": 0.5}]
    pay, info = pay_over_rounds([0.3, 0.3, 0.4, 0.0], ADDR, [True, True, True, False], prior)
    assert pay[3] == 0 and info["rounds"] == [2, 2, 1, 1]
    assert all(p > 0 for p in pay[:3])


def test_nothing_to_pay_carries_the_round():
    pay, _ = pay_over_rounds([0.0, 0.0], ADDR[:2], [False, False], [{"0xa": 1.0}])
    assert pay == [0.0, 0.0]


def test_pay_shares_read_a_report():
    report = {
        "schema_version": "merit.round-report/1",
        "round": 1,
        "weights": [7, 0, 3],
        "flags": 2,
        "trainers": [
            {"index": 0, "address": "0xa", "cid": "c0", "flagged": False, "pay_share": 0.7},
            {"index": 1, "address": "0xb", "cid": "c1", "flagged": True, "pay_share": None},
            {"index": 2, "address": "0xc", "cid": "c2", "flagged": False, "pay_share": 0.3},
        ],
    }
    assert RoundReport.model_validate(report).pay_shares() == {"0xa": 0.7, "0xb": 0.0, "0xc": 0.3}
    report["payment"] = {"round_value": 0.5}  # what the round bought, in utility units
    shares = RoundReport.model_validate(report).pay_shares()
    assert shares == pytest.approx({"0xa": 0.35, "0xb": 0.0, "0xc": 0.15})
    for bad in ("0.5", True, -1.0, float("inf")):  # a report from elsewhere cannot inflate or break pay
        report["payment"] = {"round_value": bad}
        with pytest.raises(ReportError, match="round_value"):
            RoundReport.model_validate(report).pay_shares()


def test_over_rounds_refuses_bad_input():
    with pytest.raises(ValueError, match="one entry per trainer"):
        pay_over_rounds([0.5], ADDR, [True], [])
    with pytest.raises(ValueError, match="value must be"):
        pay_over_rounds([1.0], ADDR[:1], [True], [], value=float("nan"))
    with pytest.raises(ValueError, match="earlier rounds"):
        pay_over_rounds([1.0], ADDR[:1], [True], [{"0xa": -1.0}])
