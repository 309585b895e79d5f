"""The batcher on its own: stacking, splitting, isolation of bad requests, no idle wait."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from securetf.errors import UsageError
from securetf.serve.batching import Batcher
from securetf.serve.signature import Arrays, Signature, TensorInfo

F32 = np.dtype(np.float32)


class Doubler:
    """A model that doubles its rows and records the batch sizes it was called with."""

    format = "test"
    signature = Signature(
        inputs=(TensorInfo("x", F32, (None, 2)),), outputs=(TensorInfo("y", F32, (None, 2)),)
    )

    def __init__(self) -> None:
        self.calls: list[int] = []

    @property
    def signatures(self) -> Mapping[str, Signature]:
        return {"serving_default": self.signature}

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], signature: str = "serving_default"
    ) -> Arrays:
        x = inputs["x"]
        if np.isnan(x).any():
            raise ValueError("NaN input")
        self.calls.append(x.shape[0])
        time.sleep(0.01)
        return {"y": x * 2}


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    model = Doubler()
    batcher = Batcher(model, max_batch_size=8, timeout=1.0)
    admitted = [batcher.admit() for _ in range(8)]
    for a in admitted:
        a.__enter__()
    try:
        futures = [batcher.submit({"x": np.full((1, 2), i, np.float32)}) for i in range(8)]
        results = [f.result(5) for f in futures]
    finally:
        for a in admitted:
            a.__exit__(None, None, None)
        batcher.close()
    assert model.calls == [1, 7] or model.calls == [8]
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r["y"], np.full((1, 2), 2 * i, np.float32))


def test_a_lone_request_does_not_wait_for_the_timeout() -> None:
    batcher = Batcher(Doubler(), max_batch_size=8, timeout=5.0)
    try:
        with batcher.admit():
            start = time.monotonic()
            batcher.submit({"x": np.ones((1, 2), np.float32)}).result(10)
        assert time.monotonic() - start < 1.0
    finally:
        batcher.close()


def test_max_batch_size_is_respected() -> None:
    model = Doubler()
    batcher = Batcher(model, max_batch_size=3, timeout=0.5)
    try:
        with batcher.admit():
            futures = [batcher.submit({"x": np.ones((1, 2), np.float32)}) for _ in range(7)]
            for f in futures:
                f.result(5)
    finally:
        batcher.close()
    assert max(model.calls) <= 3
    assert sum(model.calls) == 7


def test_a_bad_request_fails_alone() -> None:
    model = Doubler()
    batcher = Batcher(model, max_batch_size=8, timeout=0.5)
    try:
        good = batcher.submit({"x": np.ones((1, 2), np.float32)})
        bad = batcher.submit({"x": np.full((1, 2), np.nan, np.float32)})
        also_good = batcher.submit({"x": np.ones((2, 2), np.float32)})
        assert good.result(5)["y"].shape == (1, 2)
        assert also_good.result(5)["y"].shape == (2, 2)
        with pytest.raises(UsageError, match="refused the input"):
            bad.result(5)
    finally:
        batcher.close()


def test_inputs_of_different_row_counts_are_refused() -> None:
    two = Signature(
        inputs=(TensorInfo("a", F32, (None, 1)), TensorInfo("b", F32, (None, 1))),
        outputs=(TensorInfo("y", F32, (None, 1)),),
    )

    class Two(Doubler):
        signature = two

    batcher = Batcher(Two(), max_batch_size=4, timeout=0)
    try:
        with pytest.raises(UsageError, match="same size"):
            batcher.submit({"a": np.ones((1, 1), np.float32), "b": np.ones((2, 1), np.float32)})
    finally:
        batcher.close()


@pytest.mark.parametrize(("size", "timeout"), [(0, 0.0), (1, -1.0)])
def test_bad_settings_are_refused(size: int, timeout: float) -> None:
    with pytest.raises(UsageError):
        Batcher(Doubler(), max_batch_size=size, timeout=timeout)


def test_a_scalar_input_to_a_batched_model_is_a_usage_error_not_an_index_error() -> None:
    batcher = Batcher(Doubler(), max_batch_size=8, timeout=0)
    try:
        with pytest.raises(UsageError, match="batch dimension"):
            batcher.submit({"x": np.asarray(np.float32(1.0))})
    finally:
        batcher.close()
