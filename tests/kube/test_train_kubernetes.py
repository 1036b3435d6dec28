"""``train()`` on ``KubernetesJobBackend`` against the emulator, with the example trainer as the
pod's real command and the session's real MLflow server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from train_support import IMAGE, TRAIN_PY, backend_for, py_job, unique

from mlrelay.errors import TrainingFailed
from mlrelay.settings import MLflowSettings
from mlrelay.testing import KubeEmulator
from mlrelay.training import TrainingJob, train


def test_example_model_trains_on_a_job_and_lands_in_mlflow(
    kube_cluster: KubeEmulator, mlflow_server: str, fraud_data: dict[str, Path]
) -> None:
    lines: list[str] = []
    job = TrainingJob(
        name="fraud-train",
        image=IMAGE,
        command=["python", str(TRAIN_PY)],
        args=["--training-set", str(fraud_data["transactions"]), "--target", "is_fraud"],
        experiment=unique("kube-train"),
        dataset_hash="sha256:feed",
    )
    started = time.monotonic()
    result = train(
        job,
        backend_for(kube_cluster),
        settings=MLflowSettings(tracking_uri=mlflow_server),
        log=lines.append,
    )
    wall = time.monotonic() - started
    assert result.backend == "kubernetes"
    assert result.model_uri
    assert result.model_uri.startswith("models:/")
    assert 0.5 < result.metrics["roc_auc"] <= 1.0
    run = MlflowClient(mlflow_server).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlrelay.backend"] == "kubernetes"
    assert any(line.startswith("[fraud-train-") for line in lines), lines[:5]
    assert wall < 120, wall


def test_job_that_exits_non_zero_fails_with_backoff_limit_and_its_logs(
    kube_cluster: KubeEmulator, mlflow_server: str
) -> None:
    job = py_job("print('about to fail', flush=True); raise SystemExit(3)")
    with pytest.raises(TrainingFailed) as info:
        train(job, backend_for(kube_cluster), settings=MLflowSettings(tracking_uri=mlflow_server))
    exc = info.value
    assert getattr(exc, "reason", None) == "BackoffLimitExceeded", exc
    assert exc.exit_code == 3
    assert any("about to fail" in line for line in exc.logs), exc.logs
    assert exc.attempts
    assert exc.attempts[0]["logs"] == ["about to fail"]
