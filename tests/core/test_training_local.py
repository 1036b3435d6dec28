"""The train step's success path on the local backend: real MLflow server, real subprocesses.

One real run of ``examples/training/train.py`` (built once for this module) shows the result,
the lineage tags and a model that loads; tiny ``python -c`` trainers show that logs stream live
and that a job can be looked at from another process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_support import fake_run, fixture_local, py, unique  # noqa: F401 - fixture

from mlrelay import lineage
from mlrelay.settings import MLflowSettings
from mlrelay.training import LocalBackend, TrainingBackend, TrainingJob, TrainingResult, train

TRAIN_PY = Path(__file__).resolve().parents[2] / "examples" / "training" / "train.py"


def test_local_backend_keeps_the_backend_protocol() -> None:
    assert isinstance(LocalBackend(), TrainingBackend)


# -- the example trainer, end to end ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(mlflow_server: str, fraud_data: dict[str, Path], tmp_path_factory) -> dict:
    """One real training run of examples/training/train.py, shared by the tests below."""
    settings = MLflowSettings(tracking_uri=mlflow_server)
    lines: list[str] = []
    job = TrainingJob(
        name="fraud-train",
        command=[sys.executable, str(TRAIN_PY)],
        args=["--training-set", str(fraud_data["transactions"]), "--target", "is_fraud"],
        experiment=unique("training"),
        dataset_uri=str(fraud_data["transactions"]),
        dataset_hash="sha256:0123abcd",
        validation={
            "suite_name": "transactions",
            "success": True,
            "statistics": {"evaluated_expectations": 8, "successful_expectations": 8},
        },
        tags={"team": "fraud"},
    )
    backend = LocalBackend(state_dir=tmp_path_factory.mktemp("jobs"))
    started = time.monotonic()
    result = train(job, backend, settings=settings, log=lines.append)
    wall = time.monotonic() - started
    return {"job": job, "result": result, "lines": lines, "wall": wall, "settings": settings}


@pytest.mark.slow
def test_example_trainer_logs_metrics_and_a_model_into_the_prepared_run(trained: dict) -> None:
    result: TrainingResult = trained["result"]
    assert result.backend == "local"
    assert result.job_name == "fraud-train"
    assert len(result.run_id) == 32
    assert 0.5 < result.metrics["roc_auc"] <= 1.0
    assert {"average_precision", "precision", "recall", "f1", "log_loss"} <= set(result.metrics)
    assert result.params["model"] == "logreg"
    assert result.model_uri is not None
    assert result.model_uri.startswith("models:/m-")
    assert result.dataset_hash == "sha256:0123abcd"
    # The JSON an adapter puts into XCom / metadata round-trips.
    dumped = json.loads(json.dumps(result.model_dump(mode="json")))
    assert TrainingResult.model_validate(dumped) == result
    # The trainer logged into the run it was given, and its lines were streamed to us.
    assert any(f"logging to MLflow run {result.run_id}" in line for line in trained["lines"])
    assert any(line.startswith("metrics: roc_auc=") for line in trained["lines"])
    script = next(line for line in trained["lines"] if line.startswith("done in "))
    print(
        f"\ntrain() wall {trained['wall']:.2f}s, job {result.duration_seconds:.2f}s, "
        f"script body {script}"
    )


@pytest.mark.slow
def test_training_run_is_finished_and_carries_the_lineage(trained: dict) -> None:
    import mlflow

    run = mlflow.MlflowClient(trained["settings"].tracking_uri).get_run(trained["result"].run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fraud-train"
    tags = run.data.tags
    assert tags[lineage.JOB_NAME] == "fraud-train"
    assert tags[lineage.BACKEND] == "local"
    assert tags[lineage.DATASET_HASH] == "sha256:0123abcd"
    assert tags[lineage.DATASET_URI].endswith("transactions.parquet")
    assert tags[lineage.VALIDATION_SUCCESS] == "true"
    assert tags[lineage.VALIDATION_SUITE] == "transactions"
    assert json.loads(tags[lineage.VALIDATION_STATS])["evaluated_expectations"] == 8
    assert tags["team"] == "fraud"


@pytest.mark.slow
def test_logged_model_loads_with_pyfunc_and_predicts_raw_rows(
    trained: dict, fraud_data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["settings"].tracking_uri)
    model = mlflow.pyfunc.load_model(trained["result"].model_uri)
    rows = pd.read_parquet(fraud_data["transactions"])[
        ["amount", "hour", "is_online", "merchant_category"]
    ].head(5)  # raw columns, integers and text as in the table
    predictions = model.predict(rows)
    assert len(predictions) == 5
    assert set(map(int, predictions)) <= {0, 1}


# -- logs -------------------------------------------------------------------------------------


def test_logs_reach_the_callback_while_the_trainer_is_still_running(
    tmp_path: Path, local: LocalBackend, mlflow_settings: MLflowSettings
) -> None:
    go = tmp_path / "go"
    job = TrainingJob(
        name="live-logs",
        experiment=unique("training"),
        command=py(f"""
            import os, sys, time
            print("waiting for go", flush=True)
            deadline = time.monotonic() + 60
            while not os.path.exists({str(go)!r}):
                if time.monotonic() > deadline:
                    sys.exit("nobody saw my first line")
                time.sleep(0.01)
            print("got go")
        """),
    )
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "waiting for go":
            go.touch()  # only a live stream can release the trainer

    train(job, local, settings=mlflow_settings, log=on_line)
    assert seen == ["waiting for go", "got go"]


def test_status_and_logs_work_from_another_process(local: LocalBackend) -> None:
    job = TrainingJob(name="elsewhere", command=py("print('one'); print('two', end='')"))
    handle = local.submit(job, fake_run())
    local.wait(handle)
    program = py("""
        import sys
        from mlrelay.training import JobHandle, LocalBackend
        handle = JobHandle.model_validate_json(sys.argv[1])
        backend = LocalBackend()
        print(backend.status(handle).state.value, list(backend.logs(handle, follow=False)))
    """)
    probe = subprocess.run(
        [*program, handle.model_dump_json()], capture_output=True, text=True, check=True
    )
    assert probe.stdout.strip() == "Succeeded ['one', 'two']"
