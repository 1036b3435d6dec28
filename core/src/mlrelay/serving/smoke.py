"""The smoke test: one real V2 inference request to a new server before it takes traffic.

Readiness only says the model loaded. A model can load and still fail on real rows (a column
renamed between training and serving, a dependency missing at predict time), so the rollout
sends rows through the whole protocol path and requires one prediction per row, from the
version it just started, before the previous server is stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx


class SmokeTestFailed(Exception):
    """The new server answered wrongly; ``info`` says how (status, body excerpt, counts)."""

    def __init__(self, message: str, info: dict[str, Any]) -> None:
        self.info = info
        super().__init__(message)


def rows_from_frame(frame: Any) -> list[dict[str, Any]]:
    """A pandas DataFrame (an MLflow input example) as JSON-ready records.

    ``DataFrame.to_json`` would round floats to 10 digits; numpy scalars are unwrapped
    instead, so the smoke rows are exactly the example's values.
    """
    records: list[dict[str, Any]] = frame.to_dict(orient="records")
    return [{str(k): _plain(v) for k, v in row.items()} for row in records]


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def v2_request(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A V2 inference request with one named tensor per column (``shape == [len(rows)]``)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    inputs = []
    for name in columns:
        values = [row.get(name) for row in rows]
        datatype = _datatype(values)
        if datatype == "BYTES":
            values = [None if v is None else str(v) for v in values]
        inputs.append({"name": name, "shape": [len(rows)], "datatype": datatype, "data": values})
    return {"inputs": inputs}


def _datatype(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"


def run(
    url: str,
    model_name: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    expect_version: str | None = None,
    source: str = "sample_rows",
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Send ``rows`` to ``{url}/v2/models/{model_name}/infer``; return a JSON-ready summary.

    Raises:
        SmokeTestFailed: no answer, a non-200 status, no outputs, a prediction count that
            differs from the row count, or an answer from another model version.
    """
    endpoint = f"{url}/v2/models/{model_name}/infer"
    info: dict[str, Any] = {"endpoint": endpoint, "rows": len(rows), "source": source}
    started = time.perf_counter()
    try:
        # trust_env=False: a proxy from HTTP_PROXY must not sit between us and 127.0.0.1.
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            response = http.post(endpoint, json=v2_request(rows))
    except httpx.HTTPError as exc:
        raise SmokeTestFailed(f"no answer from {endpoint}: {exc}", info) from exc
    info["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    info["status_code"] = response.status_code
    if response.status_code != 200:
        info["response"] = response.text[:500]
        raise SmokeTestFailed(f"HTTP {response.status_code}: {response.text[:300]}", info)
    body = response.json()
    outputs = body.get("outputs") or []
    if not outputs:
        raise SmokeTestFailed("the response has no outputs", info)
    shape = outputs[0].get("shape") or [len(outputs[0].get("data") or [])]
    info["predictions"] = shape[0]
    info["outputs"] = [o.get("name") for o in outputs]
    info["model_version"] = body.get("model_version")
    if shape[0] != len(rows):
        raise SmokeTestFailed(f"{shape[0]} predictions for {len(rows)} rows", info)
    if expect_version is not None and body.get("model_version") != expect_version:
        raise SmokeTestFailed(
            f"answered by model version {body.get('model_version')!r}, expected {expect_version!r}",
            info,
        )
    info["ok"] = True
    return info
