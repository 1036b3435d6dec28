"""What the train-step tests share: tiny trainer programs, a tracked local backend, an MLflow client.

Plain helpers and fixtures, imported explicitly by each ``test_training_*`` module: a fixture
imported into a module is a fixture of that module. The fixture functions are named
``fixture_<name>`` so that a test's ``<name>`` argument does not shadow an import.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlrelay.training import JobHandle, LocalBackend, RunContext, RunIdentity, TrainingJob


def py(code: str) -> list[str]:
    """A trainer command: this interpreter running ``code`` (dedented)."""
    return [sys.executable, "-c", textwrap.dedent(code)]


def unique(prefix: str) -> str:
    """A fresh name, so tests sharing the session MLflow server never see each other's runs."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fake_run() -> RunContext:
    """A run context for backend-only tests (the backend never talks to MLflow itself)."""
    return RunContext(
        run_id=uuid.uuid4().hex,
        experiment_id="0",
        experiment_name="t",
        tracking_uri="http://127.0.0.1:9",
    )


@pytest.fixture(name="local")
def fixture_local(tmp_path: Path) -> Iterator[LocalBackend]:
    """A LocalBackend with a private state dir; whatever it started is stopped afterwards."""

    class Tracked(LocalBackend):
        handles: list[JobHandle] = []

        def submit(
            self, job: TrainingJob, run: RunContext, identity: RunIdentity | None = None
        ) -> JobHandle:
            handle = super().submit(job, run, identity)
            self.handles.append(handle)
            return handle

    backend = Tracked(state_dir=tmp_path / "jobs", grace_period=2.0)
    yield backend
    for handle in backend.handles:
        backend.cancel(handle)
