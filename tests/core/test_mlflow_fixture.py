"""The session MLflow server is real and reachable (every registry test builds on it)."""

import urllib.request


def test_mlflow_server_answers_health_on_loopback(mlflow_server: str) -> None:
    assert mlflow_server.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{mlflow_server}/health", timeout=5) as r:
        assert r.read().strip() == b"OK"
