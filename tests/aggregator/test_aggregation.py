"""Aggregation rules over stacks of flattened updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aggregator.aggregation import AGGREGATORS, get_aggregator, mean, median, trimmed_mean, weighted_mean
from backend.errors import ConfigError

STACK = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [100.0, -1000.0]], dtype=np.float32)


def test_rules_by_name():
    assert set(AGGREGATORS) == {"mean", "contribution", "median", "trimmed_mean"}
    assert get_aggregator("median") is median
    with pytest.raises(ConfigError):
        get_aggregator("fedsomething")


def test_mean_and_weighted_mean():
    np.testing.assert_allclose(mean(STACK), [26.5, -235.0])
    np.testing.assert_allclose(weighted_mean(STACK, [1, 1, 2, 0]), [2.25, 22.5])
    np.testing.assert_allclose(weighted_mean(STACK, [-5, 0, 1, 0]), [3.0, 30.0])  # negatives count as 0
    np.testing.assert_allclose(weighted_mean(STACK, [0, 0, 0, 0]), mean(STACK))
    with pytest.raises(ValueError):
        weighted_mean(STACK, [1, 2])


def test_robust_rules_ignore_the_outlier():
    np.testing.assert_allclose(median(STACK), [2.5, 15.0])
    np.testing.assert_allclose(trimmed_mean(STACK, beta=0.25), [2.5, 15.0])
    np.testing.assert_allclose(trimmed_mean(STACK[:3], beta=0.0), [2.0, 20.0])
    with pytest.raises(ValueError):
        trimmed_mean(STACK, beta=0.5)


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_torch_in_torch_out_and_numpy_in_numpy_out(name):
    rule = get_aggregator(name)
    out_np = rule(STACK, [1, 1, 1, 1])
    out_t = rule(torch.from_numpy(STACK), [1, 1, 1, 1])
    assert isinstance(out_np, np.ndarray) and isinstance(out_t, torch.Tensor)
    assert out_np.dtype == np.float32 and out_np.shape == (2,)
    np.testing.assert_array_equal(out_np, out_t.numpy())


def test_empty_stack_is_refused():
    with pytest.raises(ValueError):
        mean(np.zeros((0, 3)))
