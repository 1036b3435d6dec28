"""FAULTS S2 under Dagster: the run's canary secret as the MLflow token (an ``EnvVar`` in the
resource config) and as the training job's env secret, through a real model asset that trains
the example model. Nothing Dagster records holds it: the event log, the materialization
metadata, the run config, captured logs and output, the MLflow run."""

from __future__ import annotations

import logging
import sys
from typing import Any

import dagster as dg
import pytest
from canary_support import CANARY, assert_clean, mlflow_run_text
from dagster_support import TRAIN_PY, materializations, training_set_asset

from dagster_mlrelay import MLflowResource, build_model_asset
from mlrelay.training.spec import EnvVar, TrainingJob

pytestmark = pytest.mark.slow


def test_s2_dagster_env_var_token_and_env_secret_reach_no_event_metadata_or_log(
    mlflow_server: str,
    mlrelay_home: Any,
    fraud_data: Any,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CANARY_MLFLOW_TOKEN", CANARY)
    job = TrainingJob(
        name="canary-train",
        command=[sys.executable, str(TRAIN_PY)],
        env=[EnvVar(name="API_KEY", secret_value=CANARY)],
        experiment=model_name,
    )
    model = build_model_asset("model", training_set="training_set", job=job, model_name=model_name)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [training_set_asset(fraud_data["transactions"]), model],
        instance=instance,
        resources={
            "mlflow": MLflowResource(
                tracking_uri=mlflow_server, token=dg.EnvVar("CANARY_MLFLOW_TOKEN")
            )
        },
    )
    assert result.success
    [materialized] = materializations(result, "model")
    run = instance.get_run_by_id(result.run_id)
    out, err = capfd.readouterr()
    run_id = materialized.metadata["run_id"].value
    assert_clean(
        {
            "the event log": [dg.serialize_value(e) for e in instance.all_logs(result.run_id)],
            "the materialization metadata": {k: str(v) for k, v in materialized.metadata.items()},
            "the run config": run.run_config if run else None,
            "the asset's value": str(result.output_for_node("model")),
            "the log records": caplog.text,
            "stdout/stderr": out + err,
            "the MLflow run": mlflow_run_text(mlflow_server, str(run_id)),
        }
    )
