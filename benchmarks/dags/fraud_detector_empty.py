"""P1's floor: the example DAG (examples/airflow/dags/fraud_detector.py) with every mlrelay
operator replaced by an ``EmptyOperator``: same DAG arguments, same ``prepare`` task, same
dependencies. What parsing this costs is what Airflow itself costs for this pipeline's shape.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, task

EXAMPLES = Path(os.environ.get("MLRELAY_EXAMPLES") or Path(__file__).resolve().parents[2])
BACKEND = os.environ.get("MLRELAY_BACKEND", "local")
PYTHON = sys.executable if BACKEND == "local" else "python"

with DAG(
    dag_id="fraud_detector_empty",
    description="Card-fraud model: validate, build features, train, register, gate, deploy.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlrelay", "example"],
    default_args={"retries": 1},
    params={"model_name": "fraud-detector"},
) as dag:

    @task
    def prepare(rows: int = 2000, run_id: str | None = None) -> dict[str, str]:
        """Copy the Feast repo into a work folder and generate the example data into it."""
        import re
        import runpy
        import shutil

        home = Path(os.environ.get("MLRELAY_HOME", ".mlrelay")).resolve()
        work = home / "airflow" / "fraud_detector" / re.sub(r"[^\w.-]", "_", run_id or "")
        repo = work / "feature_repo"
        shutil.copytree(EXAMPLES / "feature_repo", repo, dirs_exist_ok=True)
        generate = runpy.run_path(str(EXAMPLES / "data" / "generate.py"))
        paths = generate["write"](repo / "data", rows=rows)
        return {"work": str(work), "repo": str(repo), **{k: str(v) for k, v in paths.items()}}

    data = prepare()
    validate = EmptyOperator(task_id="validate")
    training_set = EmptyOperator(task_id="build_training_set")
    materialize = EmptyOperator(task_id="materialize_features")
    train = EmptyOperator(task_id="train")
    register = EmptyOperator(task_id="register")
    promote = EmptyOperator(task_id="promote")
    deploy = EmptyOperator(task_id="deploy")

    data >> validate >> training_set >> [materialize, train]
    validate >> train >> register >> promote >> deploy
    register >> deploy
