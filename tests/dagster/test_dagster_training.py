"""The model asset's training under Dagster: termination, re-execution and failure (O1-O3).

Dagster stops a step the same way whatever asked it to: a UI termination reaches the step's
process as SIGINT (``dagster_shared.ipc.send_interrupt``), a Kubernetes run launcher's pod
deletion as SIGTERM, which Dagster maps to SIGINT while a step runs; either way Dagster raises
``DagsterExecutionInterruptedError`` inside the step. The tests send those signals to this
process while the model asset trains in-process. A Dagster re-execution is a new run whose
``root_run_id`` names the first: it must adopt the first run's training instead of training
again.
"""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_support import TRAIN_PY, materializations, training_set_asset

from dagster_mlrelay import MLflowResource, build_model_asset
from mlrelay import _proc
from mlrelay.training.spec import TrainingJob

pytestmark = pytest.mark.slow

# Writes its pid where the test looks, says so, then trains "forever".
SLEEPER = (
    "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
    "print('training', flush=True); time.sleep(120)"
)


def _model(model_name: str, job: TrainingJob, **options) -> dg.AssetsDefinition:
    return build_model_asset(
        "model", training_set="training_set", job=job, model_name=model_name, **options
    )


def _interrupt_when_started(pidfile: Path, signum: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (pidfile.exists() and pidfile.read_text()):
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    os.kill(os.getpid(), signum)


@pytest.fixture
def client(mlflow_settings):
    import mlflow

    return mlflow.MlflowClient(mlflow_settings.tracking_uri)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["terminate", "sigterm"])
def test_o1_dagster_terminating_the_run_stops_the_training_job(
    signum, mlflow_settings, mlrelay_home, fraud_data, tmp_path, model_name, client
) -> None:
    pidfile = tmp_path / "trainer.pid"
    job = TrainingJob(
        name="sleeper",
        command=[sys.executable, "-c", SLEEPER],
        args=[str(pidfile)],
        experiment=model_name,
    )
    assets = [training_set_asset(fraud_data["transactions"]), _model(model_name, job)]
    terminator = threading.Thread(target=_interrupt_when_started, args=(pidfile, signum))
    terminator.start()
    started = time.monotonic()
    result = dg.materialize(assets, resources={"mlflow": MLflowResource()}, raise_on_error=False)
    elapsed = time.monotonic() - started
    terminator.join()

    assert not result.success
    assert not materializations(result, "model")
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "DagsterExecutionInterruptedError" in failure.step_failure_data.error.cls_name
    assert not _proc.alive(int(pidfile.read_text()))  # the trainer was stopped, not orphaned
    [run] = client.search_runs([client.get_experiment_by_name(model_name).experiment_id])
    assert run.info.status == "KILLED"
    assert elapsed < 60  # the sleeper would have run for 120 s


def reexecutable_job() -> dg.JobDefinition:
    """The model asset's job, rebuilt from the environment as Dagster rebuilds a job to run it."""
    job = TrainingJob(
        name="fraud-train",
        command=[sys.executable, str(TRAIN_PY)],
        experiment=os.environ["TEST_MODEL_NAME"],
    )
    defs = dg.Definitions(
        assets=[
            training_set_asset(Path(os.environ["TEST_TRAINING_SET"])),
            _model(os.environ["TEST_MODEL_NAME"], job),
        ],
        jobs=[dg.define_asset_job("train_model", executor_def=dg.in_process_executor)],
        resources={"mlflow": MLflowResource()},
    )
    return defs.resolve_job_def("train_model")


def test_o2_o3_dagster_reexecuted_run_adopts_the_first_runs_training(
    mlflow_settings, mlrelay_home, fraud_data, model_name, client, monkeypatch
) -> None:
    monkeypatch.setenv("TEST_MODEL_NAME", model_name)
    monkeypatch.setenv("TEST_TRAINING_SET", str(fraud_data["transactions"]))
    recon = dg.reconstructable(reexecutable_job)
    with dg.instance_for_test() as instance:
        with dg.execute_job(recon, instance) as first:
            assert first.success
            [trained] = materializations(first, "model")
        # What Dagster's run retries and "re-execute from failure" do: a new run, same root.
        again = dg.ReexecutionOptions(parent_run_id=first.run_id, step_selection=["model"])
        with dg.execute_job(recon, instance, reexecution_options=again) as second:
            assert second.success
            assert second.dagster_run.root_run_id == first.run_id
            [adopted] = materializations(second, "model")

    assert adopted.metadata["run_id"] == trained.metadata["run_id"]
    assert adopted.metadata["version"] == trained.metadata["version"]
    experiment = client.get_experiment_by_name(model_name).experiment_id
    assert len(client.search_runs([experiment])) == 1  # one trainer, one MLflow run
    assert len(client.search_model_versions(f"name='{model_name}'")) == 1


def test_a_failed_training_fails_the_asset_with_the_reason_and_the_log_tail(
    mlflow_settings, mlrelay_home, fraud_data, model_name
) -> None:
    job = TrainingJob(
        name="crasher",
        command=[sys.executable, "-c", "import sys; print('out of ideas'); sys.exit(3)"],
        experiment=model_name,
    )
    assets = [training_set_asset(fraud_data["transactions"]), _model(model_name, job)]
    result = dg.materialize(assets, resources={"mlflow": MLflowResource()}, raise_on_error=False)

    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data.user_failure_data
    assert data.metadata["reason"] == dg.MetadataValue.text("NonZeroExit")
    assert data.metadata["exit_code"] == dg.MetadataValue.int(3)
    assert "out of ideas" in data.metadata["logs"].value
    assert "crasher" in data.description
