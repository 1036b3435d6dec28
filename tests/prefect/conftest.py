"""The Prefect tests' world: one real Prefect API for the session, isolated from the machine's.

``prefect_test_harness`` starts Prefect's own server (SQLite, a subprocess) once per session,
under a private ``PREFECT_HOME`` with analytics off. Every test in this folder runs its flows
against it, and reads back what the flows left there (task runs, logs, artifacts) through the
Prefect client, as the UI would.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before Prefect reads its settings (the import below): a private home, no analytics, and room
# for the server to start on a busy two-core machine (~15 s measured).
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.3"

from prefect.client.orchestration import get_client
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_HOME,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness
from prefect_support import eventually

from mlrelay import _proc

SERVED = Path(__file__).with_name("served_flows.py")


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's Prefect API URL (every test here runs under it)."""
    home = tmp_path_factory.mktemp("prefect-home")
    with (
        temporary_settings({PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False}),
        prefect_test_harness(server_startup_timeout=90),
    ):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def prefect_env(prefect_api: str, mlflow_settings, mlrelay_home) -> dict[str, str]:
    """Environment for a process that must talk to this session's Prefect API and MLflow."""
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": str(mlflow_settings.tracking_uri),
        "MLRELAY_HOME": str(mlrelay_home.home),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep),
    }


@pytest.fixture
def runner(prefect_env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    """``flow.serve()`` in its own process group, stopped (with its flow runs) afterwards."""
    log = open(tmp_path / "runner.log", "wb")  # noqa: SIM115 - closed below
    env = {**prefect_env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    proc = _proc.spawn([sys.executable, str(SERVED)], env=env, stdout=log, stderr=log)
    try:
        with get_client(sync_client=True) as client:

            def served() -> bool:
                try:
                    client.read_deployment_by_name("long-training/o1")
                except Exception:
                    return proc.poll() is not None  # stop waiting if it died
                return True

            assert eventually(served, bool, timeout=90), "the runner did not serve the flow"
        assert proc.poll() is None, (tmp_path / "runner.log").read_text()[-3000:]
        yield
    finally:
        _proc.stop_group(proc.pid, grace=10, proc=proc)
        log.close()
