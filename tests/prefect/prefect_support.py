"""What the Prefect tests share: tiny trainers, and reading back what a flow run left in Prefect.

Task runs, logs and artifacts reach the Prefect API through events and a batching log worker,
so they appear a moment after the flow returns: the readers poll until what they wait for is
there (or the deadline passes, and the test fails on what was found).
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import LogSort

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
T = TypeVar("T")


def py(code: str) -> list[str]:
    """A trainer command: this interpreter running ``code`` (dedented)."""
    return [sys.executable, "-c", textwrap.dedent(code)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(read: Callable[[], T], ok: Callable[[T], bool], timeout: float = 30.0) -> T:
    """``read()`` until ``ok`` says yes; the last value read when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def task_runs(flow_run_id: UUID) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def settled_task_runs(flow_run_id: UUID, count: int) -> list[Any]:
    """The flow run's task runs, once ``count`` of them reached a final state, oldest first."""

    def done(runs: list[Any]) -> bool:
        return sum(bool(r.state and r.state.is_final()) for r in runs) >= count

    runs = eventually(lambda: task_runs(flow_run_id), done)
    return sorted(runs, key=lambda r: r.created)


def task_name(run: Any) -> str:
    """The task a task run ran (``train_model``), from its key (``train_model-1a2b3c``)."""
    return str(run.task_key).rsplit("-", 1)[0]


def artifacts(flow_run_id: UUID, count: int) -> dict[str, Any]:
    """The flow run's artifacts by key, once at least ``count`` arrived."""

    def read() -> list[Any]:
        with get_client(sync_client=True) as client:
            return client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    found = eventually(read, lambda a: len(a) >= count)
    return {a.key: a for a in found}


def log_lines(flow_run_id: UUID, expect: str, timeout: float = 30.0) -> list[Any]:
    """The flow run's log records, once one contains ``expect``."""

    def read() -> list[Any]:
        with get_client(sync_client=True) as client:
            return client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                sort=LogSort.TIMESTAMP_ASC,
            )

    return eventually(read, lambda logs: any(expect in r.message for r in logs), timeout)


def feature_repo(target: Path, customer_stats: Path) -> Path:
    """A private copy of the example Feast repo with the statistics in its data/ folder."""
    shutil.copytree(
        EXAMPLES / "feature_repo",
        target,
        ignore=shutil.ignore_patterns("data", "__pycache__", "*.md", ".gitignore"),
    )
    (target / "data").mkdir()
    shutil.copy(customer_stats, target / "data" / "customer_stats.parquet")
    return target
