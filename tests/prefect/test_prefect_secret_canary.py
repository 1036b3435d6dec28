"""FAULTS S2 under Prefect: the run's canary secret as the ``MLflowCredentials`` block's token
(saved to and loaded from the Prefect API) and as the training job's env secret, through
``train_model`` in a real flow run. Nothing Prefect keeps holds it: the flow run's logs, its
artifacts, the task's result, the stored block document (read without secrets), captured logs
and output, the MLflow run."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
from canary_support import CANARY, assert_clean, mlflow_run_text
from prefect import flow
from prefect.client.orchestration import get_client
from prefect_support import artifacts, log_lines, unique

from mlrelay.training import EnvVar, TrainingJob
from prefect_mlrelay import MLflowCredentials, train_model

pytestmark = pytest.mark.slow

TRAINER = "import os; print('key length', len(os.environ['API_KEY']), flush=True)"


def test_s2_prefect_secret_block_and_env_secret_reach_no_log_artifact_or_result(
    prefect_api: str,
    mlflow_server: str,
    mlrelay_home: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    block = f"canary-{unique('mlflow')}"
    MLflowCredentials(tracking_uri=mlflow_server, token=CANARY).save(block, overwrite=True)
    job = TrainingJob(
        name="canary-train",
        command=[sys.executable, "-c", TRAINER],
        env=[EnvVar(name="API_KEY", secret_value=CANARY)],
        experiment=unique("prefect-canary"),
    )

    @flow
    def pipeline() -> Any:
        return train_model(job, mlflow=MLflowCredentials.load(block))

    state = pipeline(return_state=True)
    assert state.is_completed()
    result = state.result()
    flow_run = state.state_details.flow_run_id
    logs = log_lines(flow_run, f"key length {len(CANARY)}")
    found = artifacts(flow_run, 1)
    with get_client(sync_client=True) as client:
        stored = client.read_block_document_by_name(
            block, "mlrelay-mlflow-credentials", include_secrets=False
        )
    out, err = capfd.readouterr()
    assert_clean(
        {
            "the flow run's logs": [r.message for r in logs],
            "the artifacts": {k: str(a.data) + str(a.description) for k, a in found.items()},
            "the task's result": result.model_dump_json(),
            "the stored block (without secrets)": json.dumps(stored.data, default=str),
            "the log records": caplog.text,
            "stdout/stderr": out + err,
            "the MLflow run": mlflow_run_text(mlflow_server, result.run_id),
        }
    )
