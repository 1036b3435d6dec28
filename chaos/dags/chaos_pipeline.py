"""The chaos pipeline as an Airflow DAG: train on Kubernetes, register, gate, deploy on KServe.

The trainer is the example's ``train.py`` on the run's training set with the run's split seed
(so versions differ in ``roc_auc`` and the gate has something to decide). Connections come from
the environment the chaos runner sets: ``kubernetes_default`` (the emulator's kubeconfig) and
MLflow through ``MLFLOW_TRACKING_URI``/``MLRELAY_ARTIFACT_DESTINATIONS``. No Airflow retries:
the runner's retry (same logical date, so the same task instances) is the one under test.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_mlrelay.operators import (
    DeployModelOperator,
    PromoteModelOperator,
    RegisterModelOperator,
    TrainModelOperator,
)

TRAIN_PY = Path(__file__).resolve().parents[2] / "examples" / "training" / "train.py"
MODEL = os.environ.get("CHAOS_MODEL", "chaos-airflow")


def record_failure(context: dict) -> None:
    """Keep the exception that failed a task: the runner reports every failure's reason."""
    path = os.environ.get("CHAOS_FAILURES")
    exc = context.get("exception")
    if path and exc is not None:
        cls = type(exc)
        line = {"task": context["ti"].task_id, "type": cls.__name__, "module": cls.__module__,
                "message": str(exc)[:500]}  # fmt: skip
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


with DAG(
    dag_id="chaos_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0, "on_failure_callback": record_failure},
    params={"seed": 0, "training_set": ""},
) as dag:
    train = TrainModelOperator(
        task_id="train",
        name="chaos-train",
        command=["python", str(TRAIN_PY)],
        args=["--training-set", "{{ params.training_set }}", "--seed", "{{ params.seed }}"],
        image="python:3.11",
        experiment=MODEL,
        backend="kubernetes",
        backend_options={"relist_interval": 5.0, "grace_period": 2},
    )
    register = RegisterModelOperator(task_id="register", source=train.output, name=MODEL)
    promote = PromoteModelOperator(
        task_id="promote",
        version=register.output,
        gate={"metric": "roc_auc", "min_delta": 0.001},
        on_reject="skip",
    )
    deploy = DeployModelOperator(
        task_id="deploy", name=MODEL, model=register.output, backend="kserve"
    )
    train >> register >> promote >> deploy
