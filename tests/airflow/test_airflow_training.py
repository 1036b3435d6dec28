"""TrainModelOperator under Airflow: retries adopt, kills stop the job, deferral and its deadline.

The trainer is ``trainer.py``, a real process that records each start in a marker file. DAGs
run with ``dag.test()`` against the session's MLflow server; the kill test runs ``dag.test()``
in a child process and sends it SIGTERM, as a worker's supervisor would.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow_support import (
    TRAINER,
    child_states,
    dag_test_in_child,
    mlflow_connection,
    run_dag,
    trainer_starts,
    unique,
    wait_for,
)

from airflow_mlrelay.operators import TrainModelOperator
from airflow_mlrelay.triggers.training import TrainingJobTrigger
from mlrelay import _mlflow, _proc, lineage
from mlrelay.training import LocalBackend, start_training
from mlrelay.training.spec import JobState, RunIdentity, TrainingJob

pytestmark = pytest.mark.slow


def runs_of(settings, experiment: str) -> list:
    client = _mlflow.client(settings)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_airflow_train_task_returns_the_result_and_links_the_run(
    dagbag, mlflow_settings, mlrelay_home, tmp_path
):
    marker, experiment = tmp_path / "marker", unique("airflow-train")
    run = run_dag(
        dagbag, "mlrelay_train", {"name": "t", "experiment": experiment, "marker": str(marker)}
    )
    assert run.states == {"train": "success"}
    result = run.result("train")
    ((_, run_id),) = trainer_starts(marker)
    assert result["run_id"] == run_id
    assert result["backend"] == "local"
    link = run.xcom[("train", "mlrelay_mlflow_run")]
    assert (
        link
        == f"{mlflow_settings.tracking_uri}/#/experiments/{result['experiment_id']}/runs/{run_id}"
    )
    (mlflow_run,) = runs_of(mlflow_settings, experiment)
    identity = RunIdentity(orchestrator="airflow", run_id=run.run_id, task_id="mlrelay_train.train")
    assert mlflow_run.data.tags[lineage.IDENTITY] == identity.key


def test_o2_airflow_task_run_again_adopts_the_job_that_succeeded(
    dagbag, mlflow_settings, mlrelay_home, tmp_path
):
    """The same task instance run again (the worker died before reporting) does not retrain."""
    marker, experiment = tmp_path / "marker", unique("airflow-adopt")
    conf = {"name": "adopt", "experiment": experiment, "marker": str(marker)}
    when = datetime.now(UTC)
    first = run_dag(dagbag, "mlrelay_train", conf, logical_date=when)
    second = run_dag(dagbag, "mlrelay_train", conf, logical_date=when)
    assert first.run_id == second.run_id
    assert first.states == second.states == {"train": "success"}
    assert len(trainer_starts(marker)) == 1
    assert len(runs_of(mlflow_settings, experiment)) == 1
    assert second.result("train")["run_id"] == first.result("train")["run_id"]


def test_o2_o3_airflow_retry_after_worker_sigkill_adopts_the_running_job(
    dagbag, mlflow_settings, mlrelay_home, tmp_path
):
    """The worker is SIGKILLed mid-training; the retry finds the trainer still running."""
    marker, experiment = tmp_path / "marker", unique("airflow-sigkill")
    conf = {"name": "orphan", "experiment": experiment, "marker": str(marker), "sleep": 5}
    when = datetime.now(UTC)
    child = dag_test_in_child("mlrelay_train_detached", conf, when)
    try:
        wait_for(lambda: trainer_starts(marker), 120, "the trainer to start")
        child.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    finally:
        child.communicate(timeout=60)
    ((trainer, run_id),) = trainer_starts(marker)
    assert _proc.alive(trainer)
    retry = run_dag(dagbag, "mlrelay_train_detached", conf, logical_date=when)
    assert retry.states == {"train": "success"}
    assert trainer_starts(marker) == [(trainer, run_id)]  # never a second trainer
    assert retry.result("train")["run_id"] == run_id
    (mlflow_run,) = runs_of(mlflow_settings, experiment)
    assert mlflow_run.info.status == "FINISHED"


def test_o1_airflow_sigterm_stops_the_job_and_fails_the_task(
    mlflow_settings, mlrelay_home, tmp_path
):
    marker, experiment = tmp_path / "marker", unique("airflow-kill")
    conf = {"name": "killed", "experiment": experiment, "marker": str(marker), "sleep": 300}
    child = dag_test_in_child("mlrelay_train", conf)
    try:
        wait_for(lambda: trainer_starts(marker), 120, "the trainer to start")
        ((trainer, _),) = trainer_starts(marker)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child_states(out) == {"train": "failed"}, out[-3000:]
    assert "task killed: stopping job 'killed'" in out
    assert not _proc.alive(trainer)
    (mlflow_run,) = runs_of(mlflow_settings, experiment)
    assert mlflow_run.info.status == "KILLED"


def test_airflow_deferred_train_waits_in_the_trigger_and_streams_the_output(
    dagbag, mlflow_settings, mlrelay_home, tmp_path, capfd, caplog
):
    marker, experiment = tmp_path / "marker", unique("airflow-defer")
    run = run_dag(
        dagbag,
        "mlrelay_train_deferred",
        {"name": "deferred", "experiment": experiment, "marker": str(marker), "sleep": 1},
    )
    assert run.states == {"train": "success"}
    ((_, run_id),) = trainer_starts(marker)
    assert run.result("train")["run_id"] == run_id
    out = capfd.readouterr().out + caplog.text  # Airflow's structlog, or stdlib logging
    streamed = [line for line in out.splitlines() if "TrainingJobTrigger" in line]
    assert any("[deferred] epoch 1: loss 0.42" in line for line in streamed)  # by the trigger
    (mlflow_run,) = runs_of(mlflow_settings, experiment)
    assert mlflow_run.info.status == "FINISHED"


def test_o6_airflow_trigger_stops_the_job_at_the_task_deadline(
    dagbag, mlflow_settings, mlrelay_home, tmp_path
):
    """The job's 3 s timeout is an absolute deadline the trigger enforces while deferred."""
    marker, experiment = tmp_path / "marker", unique("airflow-deadline")
    run = run_dag(
        dagbag,
        "mlrelay_train_deadline",
        {"name": "late", "experiment": experiment, "marker": str(marker), "sleep": 300},
    )
    assert run.states == {"train": "failed"}
    assert run.seconds < 120
    ((trainer, _),) = trainer_starts(marker)
    assert not _proc.alive(trainer)
    (mlflow_run,) = runs_of(mlflow_settings, experiment)
    assert mlflow_run.info.status == "FAILED"


def test_s2_airflow_mlflow_token_reaches_no_xcom_and_no_log(
    dagbag, mlflow_server, mlrelay_home, tmp_path, monkeypatch, capfd
):
    token = "tok-" + "9" * 24
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(mlflow_server, token))
    marker = tmp_path / "marker"
    run = run_dag(
        dagbag,
        "mlrelay_train",
        {"name": "secret", "experiment": unique("airflow-s2"), "marker": str(marker)},
    )
    assert run.states == {"train": "success"}
    assert run.result("train")["run_id"] == trainer_starts(marker)[0][1]
    assert token not in json.dumps({f"{t}/{k}": v for (t, k), v in run.xcom.items()})
    assert token not in capfd.readouterr().out
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)  # the core exported it for the MLflow client


def test_o4_airflow_trigger_on_kill_stops_the_job_and_cleanup_does_not(
    mlflow_settings, mlrelay_home, tmp_path
):
    """A user's kill cancels the job; a triggerer restart (cleanup only) leaves it running."""
    backend = LocalBackend(stop_with_caller=False)
    marker = tmp_path / "marker"
    job = TrainingJob(
        name="deferred-kill",
        command=[sys.executable, str(TRAINER), str(marker), "300", "0"],
        experiment=unique("airflow-o4"),
    )
    handle = start_training(job, backend, settings=mlflow_settings)
    try:
        classpath, kwargs = TrainingJobTrigger(
            handle=handle.model_dump(mode="json"), backend="local"
        ).serialize()
        assert classpath == "airflow_mlrelay.triggers.training.TrainingJobTrigger"
        trigger = TrainingJobTrigger(**json.loads(json.dumps(kwargs)))

        async def restart_then_kill() -> None:
            waiting = asyncio.ensure_future(anext(trigger.run()))
            await asyncio.sleep(1.0)
            waiting.cancel()  # the triggerer stops: cleanup runs, on_kill does not
            await asyncio.gather(waiting, return_exceptions=True)
            await trigger.cleanup()
            assert backend.status(handle).state is JobState.RUNNING
            await trigger.on_kill()

        asyncio.run(restart_then_kill())
        assert backend.status(handle).state is JobState.CANCELLED
        ((trainer, _),) = trainer_starts(marker)
        assert not _proc.alive(trainer)
    finally:
        backend.cancel(handle)


class RecordingTI:
    """The one thing ``execute_complete`` needs from its task instance: somewhere to push links."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_o7_airflow_resume_uses_the_event_status_when_the_job_is_gone(
    mlflow_settings, mlrelay_home, tmp_path
):
    """Between the event and the resume the job's records vanish; the task still succeeds."""
    backend = LocalBackend(stop_with_caller=False)
    job = TrainingJob(
        name="collected",
        command=[sys.executable, str(TRAINER), str(tmp_path / "marker"), "0", "0"],
        experiment=unique("airflow-o7"),
    )
    handle = start_training(job, backend, settings=mlflow_settings)
    trigger = TrainingJobTrigger(handle=handle.model_dump(mode="json"), backend="local")
    event = asyncio.run(anext(trigger.run()))
    assert event.payload["status"]["state"] == "Succeeded"
    wait_for(lambda: not _proc.alive(handle.pid), 30, "the job's supervisor to exit")
    shutil.rmtree(Path(handle.log_path).parent)  # garbage-collected, like a finished pod
    assert backend.status(handle).state is JobState.FAILED  # re-reading it would be wrong

    operator = TrainModelOperator(task_id="train", name="collected", command=["unused"])
    ti = RecordingTI()
    result = operator.execute_complete({"ti": ti}, event.payload)  # type: ignore[arg-type]
    assert result["run_id"] == handle.run_id
    assert result["job_name"] == "collected"
    assert handle.run_id in str(ti.pushed["mlrelay_mlflow_run"])
