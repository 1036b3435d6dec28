"""The tasks under Prefect's real engine: retries that adopt, verdicts that are never retried,
training output streamed into the task run's log as it is printed.

Flows run in-process against the session's Prefect API and the session's MLflow server; the
trainers are tiny programs of this interpreter, so each test takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.states import Failed
from prefect_support import artifacts, log_lines, py, settled_task_runs, task_name, unique

from mlrelay.errors import (
    ConfigError,
    DataValidationError,
    ModelRejected,
    OperationTimeout,
    ServiceUnavailable,
    TrainingFailed,
)
from mlrelay.lineage import IDENTITY
from mlrelay.settings import LocalSettings, MLflowSettings
from mlrelay.training import LocalBackend, RunIdentity, TrainingJob, start_training
from prefect_mlrelay import retry_unless_final, train_model, validate_data

pytestmark = pytest.mark.slow
SUITE = Path(__file__).resolve().parents[2] / "examples" / "expectations" / "transactions.json"


def identity_runs(settings: MLflowSettings, experiment: str) -> list:
    client = MlflowClient(settings.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{IDENTITY}` != ''")


def test_o2_prefect_flow_retry_adopts_the_training_run_of_its_first_try(
    mlflow_settings: MLflowSettings, mlrelay_home: LocalSettings, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    experiment = unique("prefect-adopt")
    job = TrainingJob(
        name="adopt",
        command=py(f"open({str(starts)!r}, 'a').write('x'); print('trained', flush=True)"),
        experiment=experiment,
    )
    results = []

    @flow(retries=1, retry_delay_seconds=0)
    def pipeline() -> None:
        results.append(train_model(job, mlflow=mlflow_settings))
        if len(results) == 1:
            raise RuntimeError("the process went away before registering the model")

    pipeline()
    assert len(results) == 2
    assert results[0].run_id == results[1].run_id
    assert starts.read_text() == "x", "the retry must adopt the finished job, not train again"
    (run,) = identity_runs(mlflow_settings, experiment)
    assert run.info.status == "FINISHED"


def test_o3_prefect_flow_run_adopts_the_job_an_earlier_try_left_running(
    mlflow_settings: MLflowSettings, mlrelay_home: LocalSettings, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    experiment = unique("prefect-o3")
    job = TrainingJob(
        name="still-running",
        command=py(
            f"""
            import time
            open({str(starts)!r}, 'a').write('x')
            time.sleep(2)
            print('done', flush=True)
            """
        ),
        experiment=experiment,
    )

    @flow
    def pipeline() -> str:
        return train_model(job, mlflow=mlflow_settings).run_id

    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(pipeline)
    # The first try's process died; its trainer (not stopped with it) still runs.
    first = start_training(
        job,
        LocalBackend(stop_with_caller=False),
        identity=RunIdentity(
            orchestrator="prefect",
            run_id=str(flow_run.id),
            task_id="train_model",
            map_index="still-running",
        ),
        settings=mlflow_settings,
    )
    run_id = run_flow(pipeline, flow_run=flow_run)
    assert run_id == first.run_id
    assert starts.read_text() == "x", "one trainer, never two"
    (run,) = identity_runs(mlflow_settings, experiment)
    assert run.info.status == "FINISHED"


def test_failed_training_is_retried_and_trains_again(
    mlflow_settings: MLflowSettings, mlrelay_home: LocalSettings
) -> None:
    experiment = unique("prefect-retry")
    job = TrainingJob(
        name="flaky",
        command=py("print('out of luck', flush=True); raise SystemExit(3)"),
        experiment=experiment,
    )
    retrying = train_model.with_options(retry_delay_seconds=0)

    @flow
    def pipeline() -> None:
        retrying(job, mlflow=mlflow_settings)

    state = pipeline(return_state=True)
    assert state.is_failed()
    with pytest.raises(TrainingFailed, match="NonZeroExit") as info:
        state.result()
    assert info.value.exit_code == 3
    assert "out of luck" in info.value.logs
    (task_run,) = settled_task_runs(state.state_details.flow_run_id, 1)
    assert task_run.run_count == 2, "a failed job is retried (the default: retries=1)"
    runs = identity_runs(mlflow_settings, experiment)
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED"]


def test_broken_dataset_fails_once_with_the_numbers(
    broken_fraud_data: dict[str, Path], mlrelay_home: LocalSettings
) -> None:
    @flow
    def check() -> None:
        validate_data(str(broken_fraud_data["transactions"]), str(SUITE))

    state = check(return_state=True)
    with pytest.raises(DataValidationError) as info:
        state.result()
    report = info.value.report
    assert not report.success
    assert report.row_count == 2000
    assert str(report.statistics.unsuccessful_expectations) in str(info.value)
    unmet = {f.column: f.unexpected_count for f in report.failed}
    assert unmet.get("amount", 0) > 0, unmet
    assert unmet.get("customer_id", 0) > 0, unmet
    flow_run_id = state.state_details.flow_run_id
    (task_run,) = settled_task_runs(flow_run_id, 1)
    assert task_name(task_run) == "validate_data"
    assert task_run.run_count == 1, "a failed suite is a verdict: never retried"
    assert task_run.state.is_failed()
    found = artifacts(flow_run_id, 2)
    table = json.loads(found[f"{report.suite_name}-validation"].data)
    assert {row["column"]: row["unexpected"] for row in table} == unmet
    assert {row["result"] for row in table} == {"unmet"}
    assert "Validation FAILED" in found[f"{report.suite_name}-validation-summary"].data


def test_training_output_reaches_the_task_log_as_it_is_printed(
    mlflow_settings: MLflowSettings, mlrelay_home: LocalSettings
) -> None:
    job = TrainingJob(
        name="chatty",
        command=py(
            """
            import time
            print('epoch 1 loss=0.50', flush=True)
            time.sleep(1.5)
            print('epoch 2 loss=0.25', flush=True)
            """
        ),
        experiment=unique("prefect-logs"),
    )

    @flow
    def pipeline() -> None:
        train_model(job, mlflow=mlflow_settings)

    state = pipeline(return_state=True)
    assert state.is_completed()
    logs = log_lines(state.state_details.flow_run_id, "epoch 2")
    first = next(r for r in logs if "epoch 1" in r.message)
    second = next(r for r in logs if "epoch 2" in r.message)
    assert first.task_run_id is not None, "trainer lines belong to the train_model task run"
    assert (second.timestamp - first.timestamp).total_seconds() >= 1.0, "streamed, not batched"


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ConfigError("bad", field="job.name"), False),
        (DataValidationError.__new__(DataValidationError), False),
        (ModelRejected.__new__(ModelRejected), False),
        (TrainingFailed("stopped", reason="Cancelled", job_name="j"), False),
        (TrainingFailed("exit 3", reason="NonZeroExit", job_name="j"), True),
        (ServiceUnavailable("down", uri="http://mlflow"), True),
        (OperationTimeout("slow", operation="wait", timeout=1), True),
    ],
)
def test_retry_condition_retries_accidents_not_verdicts(error: Exception, retried: bool) -> None:
    assert retry_unless_final(None, None, Failed(data=error)) is retried
    assert retry_unless_final(None, None, Failed(data=Failed(data=error))) is retried
