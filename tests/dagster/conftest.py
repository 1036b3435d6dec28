"""Fixtures of the Dagster tests: a private DAGSTER_HOME, signal handlers put back, small assets.

Dagster installs its own SIGINT/SIGTERM handlers while it executes a run in-process and, when
it restores them, leaves SIGTERM mapped to Python's SIGINT handler. The autouse fixture puts
the session's handlers back after every test, so tests elsewhere that rely on SIGTERM's default
(the core's ``train`` turns it into a cancellation only when nobody else handles it) are not
affected by the order tests run in.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DAGSTER_HOME with telemetry off."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def model_name() -> str:
    """A registered model of the test's own on the shared MLflow server."""
    return f"dagster-{uuid.uuid4().hex[:10]}"
