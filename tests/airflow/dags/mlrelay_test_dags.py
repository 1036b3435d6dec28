"""Small DAGs for the Airflow tests, each configured per run through ``dag.test(run_conf=...)``.

They render templates as native objects, so a param may carry a dict (a model version's JSON)
as it would arrive from XCom.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_mlrelay.operators import PromoteModelOperator, TrainModelOperator, ValidateDataOperator

TRAINER = str(Path(__file__).resolve().parents[1] / "trainer.py")
COMMON = {
    "schedule": None,
    "start_date": datetime(2026, 1, 1),
    "catchup": False,
    "render_template_as_native_obj": True,
    "tags": ["mlrelay-test"],
}
TRAIN_PARAMS = {
    "name": "t",
    "experiment": "airflow-tests",
    "marker": "",
    "sleep": 0.0,
    "exit_code": 0,
}


def _train(task_id: str, **kwargs: object) -> TrainModelOperator:
    return TrainModelOperator(
        task_id=task_id,
        name="{{ params.name }}",
        command=[sys.executable, TRAINER],
        args=["{{ params.marker }}", "{{ params.sleep }}", "{{ params.exit_code }}"],
        experiment="{{ params.experiment }}",
        **kwargs,
    )


with DAG("mlrelay_validate", params={"data": "", "suite": ""}, **COMMON):
    ValidateDataOperator(task_id="validate", data="{{ params.data }}", suite="{{ params.suite }}")

with DAG("mlrelay_train", params=TRAIN_PARAMS, **COMMON):
    _train("train")

with DAG("mlrelay_train_detached", params=TRAIN_PARAMS, **COMMON):
    # A trainer that outlives its worker, as a cluster job does: the retry can adopt it.
    _train("train", backend_options={"stop_with_caller": False})

with DAG("mlrelay_train_deferred", params=TRAIN_PARAMS, **COMMON):
    _train("train", deferrable=True)

with DAG("mlrelay_train_deadline", params=TRAIN_PARAMS, **COMMON):
    _train("train", deferrable=True, timeout=3)

# On a cluster (tests/airflow/test_airflow_cluster.py): the emulator runs python:* images with
# this interpreter, so the pod runs the same trainer script.
CLUSTER = {
    "image": "python:3.11",
    "backend": "kubernetes",
    "backend_options": {"relist_interval": 5.0, "grace_period": 2, "log_linger": 1.0},
}


def _train_on_cluster(task_id: str, **kwargs: object) -> TrainModelOperator:
    return TrainModelOperator(
        task_id=task_id,
        name="{{ params.name }}",
        command=["python", TRAINER],
        args=["{{ params.marker }}", "{{ params.sleep }}", "{{ params.exit_code }}"],
        experiment="{{ params.experiment }}",
        **CLUSTER,
        **kwargs,
    )


with DAG("mlrelay_train_cluster", params=TRAIN_PARAMS, **COMMON):
    _train_on_cluster("train")

with DAG("mlrelay_train_cluster_inline", params=TRAIN_PARAMS, **COMMON):
    _train_on_cluster("train", deferrable=False)

with DAG("mlrelay_train_cluster_deadline", params=TRAIN_PARAMS, **COMMON):
    _train_on_cluster("train", timeout=3)

with DAG("mlrelay_promote", params={"version": {}, "gate": {}, "alias": "champion"}, **COMMON):
    for mode in ("fail", "skip", "return"):
        promote = PromoteModelOperator(
            task_id=f"promote_{mode}",
            version="{{ params.version }}",
            gate="{{ params.gate }}",
            alias="{{ params.alias }}",
            on_reject=mode,
        )
        promote >> EmptyOperator(task_id=f"deploy_after_{mode}")
