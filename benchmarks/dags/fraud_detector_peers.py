"""P1's peer: the example pipeline as an Airflow user writes it without mlrelay.

Validation with ``airflow-provider-great-expectations``' ``GXValidateDataFrameOperator``,
training on the cluster with cncf-kubernetes' ``KubernetesJobOperator`` (waiting, deferred),
and the steps no provider covers (Feast, the MLflow registry, the gate, the deployment) as
``@task`` functions that import their libraries when they run: the peer at its most careful.
Same DAG arguments, ``prepare`` task and dependencies as the example.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.sdk import DAG, task
from great_expectations_provider.operators.validate_dataframe import (
    GXValidateDataFrameOperator,
)

EXAMPLES = Path(os.environ.get("MLRELAY_EXAMPLES") or Path(__file__).resolve().parents[2])
WORK = Path(os.environ.get("MLRELAY_HOME", ".mlrelay")).resolve() / "airflow" / "fraud_detector"


def transactions():
    """The data ``GXValidateDataFrameOperator`` validates: it wants a DataFrame, not a path.

    The operator calls this in its constructor: the data is read on every parse of this file.
    """
    import pandas as pd

    return pd.read_parquet(WORK / "feature_repo" / "data" / "transactions.parquet")


def suite(context):
    """The example's suite JSON as a GX ``ExpectationSuite``."""
    import great_expectations as gx

    spec = json.loads((EXAMPLES / "expectations" / "transactions.json").read_text())
    return gx.ExpectationSuite(**spec)


with DAG(
    dag_id="fraud_detector_peers",
    description="Card-fraud model: validate, build features, train, register, gate, deploy.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlrelay", "example"],
    default_args={"retries": 1},
    params={"model_name": "fraud-detector"},
) as dag:

    @task
    def prepare(rows: int = 2000) -> dict[str, str]:
        """Copy the Feast repo into a work folder and generate the example data into it."""
        import runpy
        import shutil

        repo = WORK / "feature_repo"
        shutil.copytree(EXAMPLES / "feature_repo", repo, dirs_exist_ok=True)
        generate = runpy.run_path(str(EXAMPLES / "data" / "generate.py"))
        paths = generate["write"](repo / "data", rows=rows)
        return {"work": str(WORK), "repo": str(repo), **{k: str(v) for k, v in paths.items()}}

    @task
    def build_training_set(paths: dict[str, str]) -> str:
        import pandas as pd
        from feast import FeatureStore

        store = FeatureStore(repo_path=paths["repo"])
        entities = pd.read_parquet(paths["transactions"])
        job = store.get_historical_features(
            entity_df=entities, features=store.get_feature_service("fraud_model_v1")
        )
        out = f"{paths['work']}/training_set.parquet"
        job.to_df().to_parquet(out)
        return out

    @task
    def materialize_features(paths: dict[str, str]) -> None:
        from feast import FeatureStore

        FeatureStore(repo_path=paths["repo"]).materialize(
            datetime(2026, 1, 1), datetime(2026, 3, 2)
        )

    @task
    def register(model_name: str) -> str:
        import mlflow

        client = mlflow.MlflowClient()
        run = client.search_runs(["0"], order_by=["start_time DESC"], max_results=1)[0]
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", model_name)
        return str(version.version)

    @task.short_circuit
    def promote(version: str, model_name: str) -> bool:
        import mlflow

        client = mlflow.MlflowClient()
        candidate = client.get_model_version(model_name, version)
        try:
            champion = client.get_model_version_by_alias(model_name, "champion")
        except mlflow.exceptions.MlflowException:
            champion = None
        score = client.get_run(candidate.run_id).data.metrics["roc_auc"]
        best = client.get_run(champion.run_id).data.metrics["roc_auc"] if champion else 0.0
        if score < best + 0.001:
            return False
        client.set_registered_model_alias(model_name, "champion", version)
        return True

    @task
    def deploy(version: str, model_name: str) -> None:
        import subprocess

        subprocess.run(
            ["mlflow", "models", "serve", "-m", f"models:/{model_name}/{version}", "-p", "5001"],
            check=True,
        )

    data = prepare()
    validate = GXValidateDataFrameOperator(
        task_id="validate", configure_dataframe=transactions, configure_expectations=suite
    )
    training_set = build_training_set(data)
    materialize = materialize_features(data)
    train = KubernetesJobOperator(
        task_id="train",
        name="fraud-detector-train",
        image="python:3.11",
        cmds=["python", str(EXAMPLES / "training" / "train.py")],
        arguments=["--training-set", training_set],
        namespace="default",
        kubernetes_conn_id="kubernetes_default",
        wait_until_job_complete=True,
        deferrable=True,
    )
    version = register("{{ params.model_name }}")
    gate = promote(version, "{{ params.model_name }}")
    served = deploy(version, "{{ params.model_name }}")

    data >> validate >> training_set
    training_set >> materialize
    train >> version
    gate >> served
