"""How a training job ends when it does not succeed: exit code, timeout, cancel, Ctrl-C, SIGTERM.

Trainers are tiny ``python -c`` programs; the one that matters most starts a grandchild and waits,
so every stop is checked against the whole process group, not only the trainer. Waits on the test
side are bounded polls of files the trainer writes; the timeout test runs on an injected clock,
so "an hour" takes milliseconds.
"""

from __future__ import annotations

import _thread
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from training_support import (  # noqa: F401 - fixtures
    fake_run,
    fixture_local,
    py,
    unique,
)

from mlrelay import _proc
from mlrelay.errors import ServiceUnavailable, TrainingFailed
from mlrelay.settings import MLflowSettings
from mlrelay.training import JobHandle, JobState, LocalBackend, TrainingJob, train

TRAINER_WITH_GRANDCHILD = """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(sys.argv[1], "w") as f:
        f.write(f"{os.getpid()} {child.pid} {os.getpgrp()}")
    print("started", flush=True)
    time.sleep(300)
"""


def grandchild_job(name: str, pids: Path, **fields: Any) -> TrainingJob:
    """A job whose trainer starts a grandchild, writes the pids to ``pids``, says "started"."""
    return TrainingJob(name=name, command=py(TRAINER_WITH_GRANDCHILD), args=[str(pids)], **fields)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gone(*pids: int) -> bool:
    return not any(_proc.alive(p) for p in pids)


def read_pids(path: Path) -> tuple[int, int, int]:
    wait_for(path.exists, "the trainer's pid file")
    trainer, grandchild, pgid = map(int, path.read_text().split())
    return trainer, grandchild, pgid


def assert_stopped(trainer: int, grandchild: int, pgid: int) -> None:
    """The trainer, its grandchild and every other member of its process group are gone."""
    assert gone(trainer, grandchild)
    assert _proc.members(pgid) == []


def run_statuses(client, experiment: str) -> list[str]:
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return [r.info.status for r in runs]


class FakeTime:
    """A clock that stands still until the trainer has started, then jumps with every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ticking = threading.Event()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.ticking.is_set():
            self.now += seconds
        time.sleep(0.002)  # let the real processes move


def test_failing_command_raises_training_failed_with_exit_code_and_last_lines(
    local: LocalBackend, mlflow_settings: MLflowSettings, client
) -> None:
    job = TrainingJob(
        name="fails",
        experiment=unique("training"),
        command=py("""
            import sys
            for i in range(60):
                print(f"line {i}")
            print("boom: bad input", file=sys.stderr)
            sys.exit(3)
        """),
    )
    with pytest.raises(TrainingFailed) as err:
        train(job, local, settings=mlflow_settings)
    exc = err.value
    assert exc.reason == "NonZeroExit"
    assert exc.exit_code == 3
    assert len(exc.logs) == 50
    assert exc.logs[-1] == "boom: bad input"
    assert exc.logs[0] == "line 11"
    assert "boom: bad input" in str(exc)
    assert client.get_run(exc.run_id).info.status == "FAILED"


def test_timeout_stops_the_process_group_and_fails_the_run(
    tmp_path: Path, mlflow_settings: MLflowSettings, client
) -> None:
    fake = FakeTime()
    backend = LocalBackend(
        state_dir=tmp_path / "jobs", poll_interval=60, clock=fake.clock, sleep=fake.sleep
    )
    pids = tmp_path / "pids"
    job = grandchild_job("too-slow", pids, experiment=unique("training"), timeout=3600)

    def on_line(line: str) -> None:
        if line == "started":
            fake.ticking.set()

    real_start = time.monotonic()
    with pytest.raises(TrainingFailed) as err:
        train(job, backend, settings=mlflow_settings, log=on_line)
    assert time.monotonic() - real_start < 60  # an hour of job time, without the hour

    assert err.value.reason == "Timeout"
    assert err.value.logs == ["started"]
    trainer, grandchild, pgid = read_pids(pids)
    assert gone(trainer, grandchild, pgid)
    assert _proc.members(pgid) == []
    assert client.get_run(err.value.run_id).info.status == "FAILED"


def test_cancel_via_a_handle_stops_the_trainer_and_its_grandchild(
    local: LocalBackend, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    handle = local.submit(grandchild_job("cancel-me", pids), fake_run())
    assert next(local.logs(handle)) == "started"
    trainer, grandchild, pgid = read_pids(pids)
    assert pgid == handle.pid
    assert local.status(handle).state is JobState.RUNNING

    # A handle is all it takes: a fresh backend (as in another process) cancels the job.
    other = LocalBackend(grace_period=2.0)
    other.cancel(JobHandle.model_validate_json(handle.model_dump_json()))

    assert_stopped(trainer, grandchild, pgid)
    status = local.status(handle)
    assert status.state is JobState.CANCELLED
    assert status.reason == "Cancelled"


def test_cancel_kills_a_trainer_that_ignores_sigterm_after_the_grace_period(
    tmp_path: Path,
) -> None:
    backend = LocalBackend(state_dir=tmp_path / "jobs", grace_period=0.5)
    job = TrainingJob(
        name="stubborn",
        command=py("""
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ignoring SIGTERM", flush=True)
            time.sleep(300)
        """),
    )
    handle = backend.submit(job, fake_run())
    assert next(backend.logs(handle)) == "ignoring SIGTERM"
    backend.cancel(handle)
    assert _proc.members(handle.pid) == []
    assert backend.status(handle).state is JobState.CANCELLED


def test_ctrl_c_stops_the_trainer_and_marks_the_run_killed(
    tmp_path: Path, local: LocalBackend, mlflow_settings: MLflowSettings, client
) -> None:
    experiment, pids = unique("training"), tmp_path / "pids"
    job = grandchild_job("interrupted", pids, experiment=experiment)

    def on_line(line: str) -> None:
        if line == "started":
            _thread.interrupt_main()  # what Ctrl-C does to the waiting caller

    with pytest.raises(KeyboardInterrupt):
        train(job, local, settings=mlflow_settings, log=on_line)
    assert_stopped(*read_pids(pids))
    assert run_statuses(client, experiment) == ["KILLED"]


def test_job_cancelled_through_its_handle_fails_the_waiting_train_call(
    tmp_path: Path, local: LocalBackend, mlflow_settings: MLflowSettings, client
) -> None:
    pids = tmp_path / "pids"
    job = grandchild_job("cancelled", pids, experiment=unique("training"))

    def on_line(line: str) -> None:  # an orchestrator's on_kill, from another thread
        if line == "started":
            threading.Thread(target=local.cancel, args=(local.handles[-1],)).start()

    with pytest.raises(TrainingFailed) as err:
        train(job, local, settings=mlflow_settings, log=on_line)
    assert err.value.reason == "Cancelled"
    assert_stopped(*read_pids(pids))
    assert client.get_run(err.value.run_id).info.status == "KILLED"


def test_trainer_is_stopped_when_the_submitting_process_dies(tmp_path: Path) -> None:
    caller = subprocess.Popen(
        py(f"""
            import sys, time
            from mlrelay.training import LocalBackend, RunContext, TrainingJob
            job = TrainingJob(name="orphan", command=[sys.executable, "-c",
                              "print('up', flush=True); import time; time.sleep(300)"])
            run = RunContext(run_id="r1", experiment_id="0", experiment_name="t",
                             tracking_uri="http://127.0.0.1:9")
            handle = LocalBackend(state_dir={str(tmp_path / "jobs")!r}).submit(job, run)
            print(handle.model_dump_json(), flush=True)
            time.sleep(300)
        """),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        handle = JobHandle.model_validate_json(caller.stdout.readline())
        backend = LocalBackend()
        assert next(backend.logs(handle)) == "up"
    finally:
        caller.kill()  # SIGKILL: no cleanup code of the caller runs
        caller.wait()
    wait_for(lambda: not _proc.members(handle.pid), "the orphaned trainer to stop", timeout=15)
    status = backend.status(handle)
    assert status.state is JobState.CANCELLED
    assert status.reason == "OwnerDied"


@pytest.mark.slow
def test_o1_sigterm_of_the_caller_stops_the_trainer_and_marks_the_run_killed(
    tmp_path: Path, mlflow_settings: MLflowSettings, client
) -> None:
    experiment = unique("training")
    pids = tmp_path / "pids"
    caller = subprocess.Popen(
        py(f"""
            import sys, textwrap
            from mlrelay.settings import MLflowSettings
            from mlrelay.training import LocalBackend, TrainingJob, train
            trainer = textwrap.dedent({TRAINER_WITH_GRANDCHILD!r})
            job = TrainingJob(name="sigtermed", experiment={experiment!r},
                              command=[sys.executable, "-c", trainer], args=[{str(pids)!r}])
            train(job, LocalBackend(state_dir={str(tmp_path / "jobs")!r}),
                  settings=MLflowSettings(tracking_uri={mlflow_settings.tracking_uri!r}))
        """),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        trainer, grandchild, pgid = read_pids(pids)
        caller.send_signal(signal.SIGTERM)
        _, stderr = caller.communicate(timeout=60)
    finally:
        caller.kill()
    assert caller.returncode == 1  # a failed task, never a success
    assert "TrainingFailed" in stderr
    assert "Cancelled" in stderr
    assert "SIGTERM" in stderr
    assert_stopped(trainer, grandchild, pgid)
    assert run_statuses(client, experiment) == ["KILLED"]


def test_m5_tracking_server_down_is_service_unavailable_and_starts_nothing(
    tmp_path: Path,
) -> None:
    down = MLflowSettings(tracking_uri="http://127.0.0.1:9")  # nothing listens on port 9
    backend = LocalBackend(state_dir=tmp_path / "jobs")
    with pytest.raises(ServiceUnavailable) as err:
        train(
            TrainingJob(name="nowhere", command=py("print('never runs')")), backend, settings=down
        )
    assert err.value.uri == "http://127.0.0.1:9"
    assert "nowhere" in str(err.value)
    assert not (tmp_path / "jobs").exists()
