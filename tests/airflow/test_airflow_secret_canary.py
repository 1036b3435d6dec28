"""FAULTS S2 under Airflow: the run's canary secret as the password of the ``mlflow``
connection (the MLflow token), through the training operator in a real ``dag.test()`` run.
Nothing Airflow keeps holds it: XComs, the rendered template fields, the task logs in
AIRFLOW_HOME, captured logs and output, the MLflow run."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from airflow_support import mlflow_connection, run_dag, unique
from canary_support import CANARY, assert_clean, files_text, mlflow_run_text

pytestmark = pytest.mark.slow


def rendered_fields(dag_id: str, run_id: str) -> list[Any]:
    """What the UI's "Rendered Template" tab shows for the run's task instances."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter(
            RenderedTaskInstanceFields.dag_id == dag_id,
            RenderedTaskInstanceFields.run_id == run_id,
        )
        return [[row.rendered_fields, row.k8s_pod_yaml] for row in rows]


def test_s2_airflow_connection_password_reaches_no_xcom_rendered_field_or_task_log(
    dagbag: Any,
    mlflow_server: str,
    mlrelay_home: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the core exports the token for the MLflow client: put the environment back afterwards
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(mlflow_server, CANARY))
    conf = {"name": "canary", "experiment": unique("airflow-canary"), "marker": str(tmp_path / "m")}
    run = run_dag(dagbag, "mlrelay_train", conf)
    assert run.states == {"train": "success"}
    out, err = capfd.readouterr()
    assert_clean(
        {
            "XCom": json.dumps({f"{t}/{k}": v for (t, k), v in run.xcom.items()}, default=str),
            "the rendered template fields": rendered_fields("mlrelay_train", run.run_id),
            "the task logs": files_text(Path(os.environ["AIRFLOW_HOME"]) / "logs")
            if (Path(os.environ["AIRFLOW_HOME"]) / "logs").exists()
            else "",
            "the log records": caplog.text,
            "stdout/stderr": out + err,
            "the MLflow run": mlflow_run_text(mlflow_server, run.result("train")["run_id"]),
        }
    )
