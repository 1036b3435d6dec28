"""The example DAG end to end on local backends, then the promotion gate's three outcomes.

One full run for the module (it deploys a real KServe model server, undeployed at teardown):
MLflow is the session's server, reached through an ``mlflow`` connection with a token, the
model gets a name of its own so that other tests' champions do not interfere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
from airflow_support import DagResult, mlflow_connection, run_dag, unique

from mlrelay import lineage
from mlrelay.settings import LocalSettings, MLflowSettings

pytestmark = pytest.mark.slow

TOKEN = "tok-pipeline-" + "7" * 20
STEPS = (
    "prepare", "validate", "build_training_set", "materialize_features", "train", "register",
    "promote", "deploy",
)  # fmt: skip


@pytest.fixture(scope="module")
def fraud_run(dagbag, mlflow_server, tmp_path_factory) -> Iterator[DagResult]:
    from mlrelay.serving import undeploy
    from mlrelay.serving.local import LocalServingBackend

    home = tmp_path_factory.mktemp("fraud-home")
    model = unique("fraud-detector")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLRELAY_HOME", str(home))
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(mlflow_server, TOKEN))
        try:
            yield run_dag(dagbag, "fraud_detector", {"model_name": model})
        finally:
            backend = LocalServingBackend(
                MLflowSettings(tracking_uri=mlflow_server), LocalSettings(home=home)
            )
            undeploy(model, backend)
            assert backend.list() == []
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)  # exported for the MLflow client


def test_example_dag_runs_every_step_green_on_local_backends(fraud_run):
    assert fraud_run.states == dict.fromkeys(STEPS, "success"), fraud_run.states
    print(f"dag.test() of the example DAG: {fraud_run.seconds:.1f}s")


def test_example_dag_xcoms_chain_each_step_result_into_the_next(fraud_run):
    report, tset = fraud_run.result("validate"), fraud_run.result("build_training_set")
    result, version = fraud_run.result("train"), fraud_run.result("register")
    decision, deployment = fraud_run.result("promote"), fraud_run.result("deploy")

    assert report["success"] is True
    assert report["statistics"]["unsuccessful_expectations"] == 0
    assert tset["rows_out"] == tset["rows_in"] - tset["dropped_count"] > 0
    assert result["dataset_hash"] == tset["data_hash"]
    assert 0.5 < result["metrics"]["roc_auc"] <= 1.0
    assert result["model_uri"].startswith("models:/")
    assert version["run_id"] == result["run_id"]
    assert version["tags"][lineage.DATASET_HASH] == tset["data_hash"]
    assert version["tags"][lineage.VALIDATION_SUCCESS] == "true"
    assert decision["promoted"] is True
    assert decision["candidate_version"] == version["version"]
    assert deployment["model_version"] == version["version"]
    assert deployment["smoke_test"]["predictions"] > 0


def test_example_dag_links_lead_to_the_run_the_version_and_a_serving_endpoint(
    fraud_run, mlflow_server
):
    result, version = fraud_run.result("train"), fraud_run.result("register")
    run_link = fraud_run.xcom[("train", "mlrelay_mlflow_run")]
    assert (
        run_link
        == f"{mlflow_server}/#/experiments/{result['experiment_id']}/runs/{result['run_id']}"
    )
    assert fraud_run.xcom[("register", "mlrelay_mlflow_model_version")] == (
        f"{mlflow_server}/#/models/{version['name']}/versions/{version['version']}"
    )
    endpoint = fraud_run.xcom[("deploy", "mlrelay_endpoint")]
    answer = httpx.get(endpoint, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["name"] == version["name"]


def test_s2_airflow_pipeline_token_reaches_no_xcom(fraud_run):
    everything = json.dumps({f"{t}/{k}": v for (t, k), v in fraud_run.xcom.items()})
    assert TOKEN not in everything


def test_airflow_rejected_promotion_fails_skips_or_returns_as_on_reject_says(
    fraud_run, dagbag, mlflow_settings
):
    version, alias = fraud_run.result("register"), "production"
    gate = {"metric": "roc_auc", "min_value": 1.5}  # no model reaches it
    run = run_dag(dagbag, "mlrelay_promote", {"version": version, "gate": gate, "alias": alias})
    assert run.states == {
        "promote_fail": "failed",
        "deploy_after_fail": "upstream_failed",
        "promote_skip": "skipped",
        "deploy_after_skip": "skipped",
        "promote_return": "success",
        "deploy_after_return": "success",
    }
    for mode in ("fail", "skip", "return"):
        decision = run.result(f"promote_{mode}")  # the numbers, whatever the outcome
        assert decision["promoted"] is False
        assert decision["alias"] == alias
        assert decision["candidate_value"] == fraud_run.result("train")["metrics"]["roc_auc"]
