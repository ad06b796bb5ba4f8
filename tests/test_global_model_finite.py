"""A trainer refuses to train on a posted global model with NaN or infinite values (every update
made from it would be garbage, and its honest trainer look like a poisoner), with a clear error."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backend.errors import IntegrityError
from backend.models.serialization import save_weights
from backend.trainer.client import load_round


class OneModelStore:
    def __init__(self, data: bytes):
        self.data = data

    def get_bytes(self, cid, max_size=None):
        return self.data


class Market:
    def config(self, pid):
        return SimpleNamespace(initialModelCid="bafyinitial", specCid="bafyspec")

    def global_model_cid(self, pid):
        return "bafyposted"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_global_model_with_non_finite_values_is_refused_by_name(bad):
    weights = {"fc.bias": torch.zeros(3), "fc.weight": torch.tensor([[0.0, bad, 1.0]])}
    with pytest.raises(IntegrityError) as err:
        load_round(Market(), 7, 2, store=OneModelStore(save_weights(weights, {})))
    message = str(err.value)
    assert "bafyposted" in message and "project 7" in message and "fc.weight" in message and "fc.bias" not in message
    assert "disputed" in message


def test_a_finite_global_model_passes_the_check():
    weights = {"fc.weight": torch.tensor([[0.0, 2.0, 1.0]])}
    try:
        load_round(Market(), 7, 2, store=OneModelStore(save_weights(weights, {})))
    except IntegrityError as exc:  # the fake store hands out weights as the spec too: only the spec may fail
        pytest.fail(f"a finite model was refused: {exc}")
    except Exception as exc:  # noqa: BLE001 -- the spec read from the fake store fails; that is not under test
        assert "NaN" not in str(exc)
