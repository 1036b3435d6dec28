"""The chaos run's smoke version (``make chaos`` at its smallest): one run per adapter.

``python -m chaos.run --runs 1 --only both`` on its own world (the emulator with the Job,
kubelet and KServe controllers, a real MLflow server, a Prefect API, an Airflow home): per
adapter, one run of train -> register -> gate -> KServe deploy with injected API faults that is
also killed mid-way (SIGKILL of the worker's process group, or SIGTERM) and retried with the
same run identity, which must adopt what the first attempt left and finish. The runner's four
checks (and the listener check) must report zero, and nothing it started may outlive it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlrelay import _proc

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ("airflow", "prefect", "dagster")
# Seed 10 draws: Airflow SIGKILL at 37 s with a 503 on the InferenceService; Prefect SIGKILL at
# 18 s with a lost Job-create response, 500s on the create and cut log streams; Dagster SIGTERM
# at 32 s with a 409 Conflict and a 503 on the InferenceService.
SEED = "10"


def test_chaos_smoke_killed_faulted_runs_retry_to_success_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    summary_file = tmp_path / "chaos.json"
    argv = [
        sys.executable, "-m", "chaos.run", "--runs", "1", "--only", "both", "--seed", SEED,
        "--adapters", ",".join(ADAPTERS), "--parallel", "3", "--json", str(summary_file),
        "--workdir", str(tmp_path / "world"),
    ]  # fmt: skip
    with (tmp_path / "chaos.log").open("wb") as log:
        runner = _proc.spawn(argv, cwd=ROOT, stdout=log, stderr=log)
    try:
        code = runner.wait(timeout=540)  # under the suite's 600 s per-test timeout
    except subprocess.TimeoutExpired:
        code = None
    finally:
        _proc.stop_group(runner.pid, grace=30, proc=runner)
    output = (tmp_path / "chaos.log").read_text(errors="replace")
    assert code == 0, output[-5000:]
    summary = json.loads(summary_file.read_text())

    assert summary["checks"] == {
        "orphans": 0, "duplicates": 0, "unexplained": 0, "bad_aliases": 0, "listeners": 0,
    }, summary["findings"]  # fmt: skip
    for adapter in ADAPTERS:
        row = summary["adapters"][adapter]
        assert row["runs"] == row["kills"] == row["fault_runs"] == 1, row
        assert row["succeeded"] == 1, summary["runs"]  # the retry finished what the kill cut
    assert summary["kills"]["SIGKILL"] + summary["kills"]["SIGTERM"] >= 2, summary["kills"]
    assert sum(summary["adapters"][a]["retries"] for a in ADAPTERS) >= 2
    assert sum(summary["faults_fired"].values()) >= 1, summary["faults_fired"]
    assert not _proc.members(runner.pid)


def _processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line names ``text`` (a test's own tmp path), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry} {cmdline[:160]}")
    return found


def test_chaos_runner_stopped_by_sigterm_starts_no_further_run_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    world = tmp_path / "world"
    argv = [
        sys.executable, "-m", "chaos.run", "--runs", "2", "--only", "clean", "--seed", "1",
        "--adapters", "dagster", "--parallel", "1", "--workdir", str(world),
    ]  # fmt: skip
    with (tmp_path / "chaos.log").open("wb") as log:
        runner = _proc.spawn(argv, cwd=ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 240
        while not list(world.glob("runs/*/attempt-1.log")):  # the first run's child has started
            assert runner.poll() is None, (tmp_path / "chaos.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.2)
        time.sleep(3)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=120) == 143
    finally:
        _proc.stop_group(runner.pid, grace=30, proc=runner)
    # The worker thread would otherwise go on to the second run while the world shuts down.
    assert [p.parent.name for p in world.glob("runs/*/attempt-*.log")] == ["dagster-1-0"]
    assert _processes_mentioning(str(tmp_path)) == []
