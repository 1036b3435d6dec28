"""What the ``test_registry_*`` modules share besides fixtures: logged runs, read-backs, faults.

Faults the MLflow server cannot produce on its own are injected around it, never by replacing
it: ``Proxy`` is a real HTTP proxy that may lose a response or act at the worst moment (M1, M4),
and ``set_status`` writes the server's own SQLite store, where a registry backend with
asynchronous copies would record a pending or failed registration (M2, M3). The fixtures built
on these live in ``conftest.py``, so that the session logs its training runs once.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from mlrelay import lineage
from mlrelay.registry import ModelVersionRef, PromotionGate, promote, register_model
from mlrelay.settings import MLflowSettings
from mlrelay.training.spec import TrainingResult

RUN_LINEAGE = {
    lineage.JOB_NAME: "fraud-train-1",
    lineage.BACKEND: "local",
    lineage.DATASET_URI: "file:///data/transactions.parquet",
    lineage.DATASET_HASH: "sha256:abc123",
    lineage.VALIDATION_SUCCESS: "true",
    lineage.VALIDATION_SUITE: "transactions",
    lineage.VALIDATION_STATS: json.dumps({"evaluated_expectations": 8, "success_percent": 100.0}),
}
# run label -> (roc_auc, log_loss): "better" beats "base" on both, "worse" loses on both.
SCORES = {"base": (0.80, 0.40), "better": (0.85, 0.35), "worse": (0.75, 0.45)}


def log_run(experiment_id: str, roc_auc: float, log_loss: float) -> TrainingResult:
    """A finished run with a tiny logged sklearn model, the lineage tags and both metrics."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.4, 0.6], [0.7, 0.2]])
    y = np.array([0, 1, 0, 1, 0, 1])
    with mlflow.start_run(experiment_id=experiment_id, tags=RUN_LINEAGE) as run:
        model = LogisticRegression().fit(x, y)
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=x[:2], pip_requirements=["scikit-learn"]
        )
        mlflow.log_metrics({"roc_auc": roc_auc, "log_loss": log_loss})
    return TrainingResult(
        job_name="fraud-train-1",
        backend="local",
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        metrics={"roc_auc": roc_auc, "log_loss": log_loss},
        model_uri=info.model_uri,
        duration_seconds=1.0,
    )


@contextmanager
def fluent_tracking(uri: str) -> Iterator[None]:
    """Point MLflow's global (fluent) tracking URI at ``uri`` for logging, then unset it."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI, which it had exported


def versions(client, name: str) -> list[str]:
    """Every version number of ``name`` the server holds."""
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def holder(client, name: str, alias: str = "champion") -> str | None:
    """The version number holding ``alias``, read straight from the server."""
    return client.get_registered_model(name).aliases.get(alias)


def register_champion(
    runs, name: str, settings: MLflowSettings, label: str = "base"
) -> ModelVersionRef:
    """Register ``runs[label]`` as the first version of ``name`` and give it @champion."""
    mv = register_model(runs[label], name, settings=settings)
    promote(mv, PromotionGate(metric="roc_auc"), settings=settings)
    return mv


def set_status(db: Path, name: str, version: str, status: str, message: str | None = None) -> None:
    """Put a version in a state no REST call can, in the server's own store."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(
            "UPDATE model_versions SET status = ?, status_message = ? WHERE name = ? AND version = ?",
            (status, message, name, int(version)),
        )


class FakeClock:
    """A monotonic clock that moves only when slept on, recording every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Forward = Callable[[], tuple[int, bytes]]


class Proxy:
    """A real HTTP proxy in front of the MLflow server; ``hook`` may replace a response."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.hook: Callable[[str, str, bytes, Forward], tuple[int, bytes]]
        self.hook = lambda method, path, body, forward: forward()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))

                def forward() -> tuple[int, bytes]:
                    return proxy.send(self.command, self.path, body, dict(self.headers))

                status, payload = proxy.hook(self.command, self.path, body, forward)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def send(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
