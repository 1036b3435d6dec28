"""The card-fraud pipeline of ``examples/`` as an Airflow DAG: data to a served, gated model.

    prepare -> validate -> build_training_set -> materialize_features
                                 \\-> train -> register -> promote -> deploy

``prepare`` stands in for the upstream extract: it copies the example Feast repository into a
work folder and generates the transactions into it. Each mlrelay task returns its result as
JSON (XCom), and the next one takes it as an argument: the validation report and the training
set become the training run's lineage, the training result becomes a model version, the version
is gated against ``@champion`` and, only if promoted, served. A rerun on the same data is not
better than the champion, so ``promote`` is skipped and ``deploy`` with it.

Backends: local by default — the trainer as a process on the worker, a SQLite MLflow under
``MLRELAY_HOME`` unless an ``mlflow_default`` connection or ``MLFLOW_TRACKING_URI`` says
otherwise, the KServe model server on 127.0.0.1. ``MLRELAY_BACKEND=kubernetes`` trains on the
cluster of the ``kubernetes_default`` connection instead, deferred to the triggerer: a
``python:3.11`` pod running the same script and reading the same training-set path (true on
the ``mlrelay emulator``, whose pods are local processes; on a real cluster, bake the script
into the image and put the data on shared storage). The deployment stays local until the
KServe backend lands.

Run it: ``airflow dags test fraud_detector`` (with ``MLRELAY_EXAMPLES`` pointing at the
repository's ``examples/`` folder if this file was copied elsewhere).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_mlrelay.operators import (
    BuildTrainingSetOperator,
    DeployModelOperator,
    MaterializeFeaturesOperator,
    PromoteModelOperator,
    RegisterModelOperator,
    TrainModelOperator,
    ValidateDataOperator,
)

EXAMPLES = Path(os.environ.get("MLRELAY_EXAMPLES") or Path(__file__).resolve().parents[2])
BACKEND = os.environ.get("MLRELAY_BACKEND", "local")


def prepared(key: str) -> str:
    """A path the ``prepare`` task returned, as a template."""
    return f"{{{{ ti.xcom_pull(task_ids='prepare')['{key}'] }}}}"


with DAG(
    dag_id="fraud_detector",
    description="Card-fraud model: validate, build features, train, register, gate, deploy.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlrelay", "example"],
    default_args={"retries": 1},
    params={"model_name": "fraud-detector"},  # the registered model and its endpoint
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
        shutil.copytree(
            EXAMPLES / "feature_repo",
            repo,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("data", "__pycache__", "*.md"),
        )
        generate = runpy.run_path(str(EXAMPLES / "data" / "generate.py"))
        paths = generate["write"](repo / "data", rows=rows)
        return {"work": str(work), "repo": str(repo), **{k: str(v) for k, v in paths.items()}}

    data = prepare()

    validate = ValidateDataOperator(
        task_id="validate",
        data=prepared("transactions"),
        suite=str(EXAMPLES / "expectations" / "transactions.json"),
        html_report=prepared("work") + "/validation.html",
    )

    training_set = BuildTrainingSetOperator(
        task_id="build_training_set",
        repo=prepared("repo"),
        entity_source=prepared("transactions"),
        feature_service="fraud_model_v1",
        output_path=prepared("work") + "/training_set.parquet",
    )

    materialize = MaterializeFeaturesOperator(
        task_id="materialize_features",
        repo=prepared("repo"),
        start="2026-01-01T00:00:00+00:00",  # the generated history: 60 days from 2026-01-01
        end="2026-03-02T00:00:00+00:00",
    )

    train = TrainModelOperator(
        task_id="train",
        name="fraud-detector-train",
        # Locally the worker's interpreter runs the script; on a cluster, the image's python.
        command=[
            sys.executable if BACKEND == "local" else "python",
            str(EXAMPLES / "training" / "train.py"),
        ],
        args=["--training-set", "{{ ti.xcom_pull(task_ids='build_training_set')['path'] }}"],
        image=None if BACKEND == "local" else "python:3.11",
        experiment="fraud-detector",
        validation=validate.output,
        training_set=training_set.output,
        backend=BACKEND,
    )

    register = RegisterModelOperator(
        task_id="register", source=train.output, name="{{ params.model_name }}"
    )

    promote = PromoteModelOperator(
        task_id="promote",
        version=register.output,
        gate={"metric": "roc_auc", "min_delta": 0.001},
        on_reject="skip",  # not better than the champion: skip the deploy, keep serving
    )

    deploy = DeployModelOperator(
        task_id="deploy", name="{{ params.model_name }}", model=register.output
    )

    data >> validate >> training_set >> [materialize, train]
    promote >> deploy
