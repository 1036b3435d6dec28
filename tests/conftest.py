"""Fixtures shared by every test: telemetry off, a real MLflow server, the example data.

The MLflow server is the real ``mlflow server`` (SQLite store, artifact proxy), started once
per test session in its own process group on 127.0.0.1 and stopped by that group.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["FEAST_USAGE"] = "False"
# The MLflow client retries a refused connection for minutes by default; tests want an answer.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")

from mlrelay import _proc
from mlrelay.settings import LocalSettings, MLflowSettings

# The Kubernetes emulator's fixtures (kube_emulator, kube_cluster, kubeconfig_path), enabled the
# way the README tells users to.
pytest_plugins = ["mlrelay.testing.pytest_plugin"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load_generator():  # the example's generator is a script, not an installed module
    spec = importlib.util.spec_from_file_location(
        "fraud_generate", EXAMPLES / "data" / "generate.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def mlflow_server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session MLflow server keeps its SQLite store, artifacts and log."""
    return tmp_path_factory.mktemp("mlflow-server")


@pytest.fixture(scope="session")
def mlflow_server_db(mlflow_server: str, mlflow_server_dir: Path) -> Path:
    """The session server's SQLite store, for tests that must put the registry in a state no
    REST call can (a version stuck in PENDING_REGISTRATION or FAILED_REGISTRATION)."""
    return mlflow_server_dir / "mlflow.db"


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_dir: Path) -> Iterator[str]:
    """URI of a real MLflow tracking server for the whole session."""
    root = mlflow_server_dir
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = _proc.spawn(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "mlflow server did not become healthy:\n"
                    + (root / "server.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.5)
        yield uri
    finally:
        _proc.stop_group(proc.pid, grace=10, proc=proc)
        log.close()


@pytest.fixture
def mlrelay_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalSettings:
    """A private MLRELAY_HOME (local state, SQLite store, local deployments) for one test."""
    home = tmp_path / "mlrelay-home"
    monkeypatch.setenv("MLRELAY_HOME", str(home))
    return LocalSettings(home=home)


@pytest.fixture
def mlflow_settings(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> MLflowSettings:
    """Settings pointing at the session's MLflow server, also exported as MLFLOW_TRACKING_URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return MLflowSettings(tracking_uri=mlflow_server)


@pytest.fixture(scope="session")
def fraud_generator():
    return _load_generator()


@pytest.fixture(scope="session")
def fraud_data(tmp_path_factory: pytest.TempPathFactory, fraud_generator) -> dict[str, Path]:
    """The example's transactions and customer statistics (2,000 rows), written once."""
    return fraud_generator.write(tmp_path_factory.mktemp("fraud-data"), rows=2000)


@pytest.fixture(scope="session")
def broken_fraud_data(tmp_path_factory: pytest.TempPathFactory, fraud_generator) -> dict[str, Path]:
    """The same data with negative amounts and missing customer ids injected."""
    return fraud_generator.write(tmp_path_factory.mktemp("fraud-broken"), rows=2000, broken=True)
