"""The model server's batcher: concurrent requests share predictions, and each gets its own answer.

The batcher is plain asyncio around a predict function, so these tests give it a function of
their own (numpy arithmetic) and need no model server; the HTTP path through KServe and a real
MLflow model is covered by test_serving.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from mlrelay.serving.predictor import _Batcher


class Doubler:
    """Doubles column ``x``, slowly enough for requests to queue; refuses negative values."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, columns: dict[str, Any]) -> np.ndarray:
        with self.lock:
            self.calls.append(len(columns["x"]))
        time.sleep(0.05)
        if (columns["x"] < 0).any():
            raise ValueError("negative input")
        return columns["x"] * 2


async def _send(batcher: _Batcher, values: list[int]) -> list[Any]:
    requests = [batcher.predict({"x": np.array([v])}) for v in values]
    return await asyncio.gather(*requests, return_exceptions=True)


def test_concurrent_requests_share_predictions_and_each_gets_its_own_answer() -> None:
    model = Doubler()
    answers = asyncio.run(_send(_Batcher(model), list(range(10))))
    assert [a.tolist() for a in answers] == [[2 * v] for v in range(10)]
    assert len(model.calls) < 10, "queued requests were not batched"
    assert sum(model.calls) == 10


def test_a_bad_request_in_a_batch_fails_alone() -> None:
    model = Doubler()
    answers = asyncio.run(_send(_Batcher(model), [1, 2, -3, 4, 5]))
    assert isinstance(answers[2], ValueError)
    assert [a.tolist() for i, a in enumerate(answers) if i != 2] == [[2], [4], [8], [10]]


@pytest.mark.parametrize("max_rows", [1, 3])
def test_batches_stay_within_max_rows(max_rows: int) -> None:
    model = Doubler()
    asyncio.run(_send(_Batcher(model, max_rows=max_rows), list(range(7))))
    assert max(model.calls) <= max_rows
    assert sum(model.calls) == 7
