"""``train_and_deploy`` end to end on local backends: Great Expectations, Feast, a real training
subprocess, the session's MLflow server and the KServe model server on 127.0.0.1.

The flow runs once for the module (about a minute here); the tests then read back what it left
in Prefect (artifacts, task run names, logs, the stored parameters) and in the endpoint. The
endpoint is undeployed at teardown.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect_support import (
    EXAMPLES,
    artifacts,
    feature_repo,
    log_lines,
    settled_task_runs,
    task_name,
    unique,
)

from mlrelay import _proc
from mlrelay.errors import ModelRejected
from mlrelay.registry.spec import PromotionGate
from mlrelay.serving.local import LocalServingBackend
from mlrelay.settings import LocalSettings
from prefect_mlrelay import (
    MLflowCredentials,
    TrainAndDeployResult,
    promote_model,
    train_and_deploy,
)

pytestmark = pytest.mark.slow
FEATURES = (
    "amount", "merchant_category", "hour", "is_online",
    "avg_amount_30d", "tx_count_7d", "chargeback_rate", "account_age_days",
)  # fmt: skip
TOKEN = "tok-never-shown-5f1e"  # the session server ignores it; it must still never be shown


@dataclass
class Ran:
    state: Any
    result: TrainAndDeployResult
    flow_run_id: Any
    model: str
    wall: float
    tracking_uri: str


@pytest.fixture(scope="module")
def ran(
    mlflow_server: str, fraud_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    root = tmp_path_factory.mktemp("prefect-pipeline")
    home = LocalSettings(home=root / "home")
    repo = feature_repo(root / "feature_repo", fraud_data["customer_stats"])
    stamps = pd.read_parquet(fraud_data["customer_stats"], columns=["event_timestamp"])
    model = unique("fraud-prefect")
    mlflow = MLflowCredentials(tracking_uri=mlflow_server, token=TOKEN)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLRELAY_HOME", str(home.home))
        # The core exports the token for MLflow's client (which reads only the environment):
        # set here too, so that the module's end restores the environment of the session.
        env.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
        started = time.monotonic()
        state = train_and_deploy(
            data=str(fraud_data["transactions"]),
            suite=str(EXAMPLES / "expectations" / "transactions.json"),
            feature_repo=str(repo),
            feature_service="fraud_model_v1",
            training_command=["python", str(EXAMPLES / "training" / "train.py")],
            model_name=model,
            canary_percent=10,
            materialize_start=stamps.event_timestamp.min().to_pydatetime(),
            materialize_end=stamps.event_timestamp.max().to_pydatetime(),
            mlflow=mlflow,
            return_state=True,
        )
        wall = time.monotonic() - started
        print(f"\ntrain_and_deploy wall time: {wall:.1f}s")
        try:
            flow_run_id = state.state_details.flow_run_id
            yield Ran(state, state.result(), flow_run_id, model, wall, mlflow_server)
        finally:
            backend = LocalServingBackend(settings=mlflow.settings(), local=home)
            for deployment in backend.list():
                backend.undeploy(deployment.name)
            assert not backend.list()


def test_train_and_deploy_serves_the_promoted_model(ran: Ran) -> None:
    assert ran.state.is_completed(), ran.state
    result = ran.result
    assert result.validation.success
    assert result.training_set.rows_out + result.training_set.dropped_count == 2000
    assert result.materialization is not None
    assert result.training.metrics["roc_auc"] > 0.5
    assert result.model_version.name == ran.model
    assert result.promotion.promoted
    deployment = result.deployment
    assert deployment is not None
    assert deployment.model_version == result.model_version.version
    sample = pd.read_parquet(result.training_set.path).iloc[0]
    row = {k: sample[k].item() if hasattr(sample[k], "item") else sample[k] for k in FEATURES}
    inputs = [
        {"name": k, "shape": [1], "datatype": _v2_type(v), "data": [v]} for k, v in row.items()
    ]
    reply = httpx.post(
        f"{deployment.url}/v2/models/{deployment.model_name}/infer",
        json={"inputs": inputs},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"]
    assert _proc.alive(deployment.pid)
    assert ran.wall < 300, f"train_and_deploy took {ran.wall:.0f}s"


def _v2_type(value: object) -> str:
    if isinstance(value, str):
        return "BYTES"
    return "FP64" if isinstance(value, float) else "INT64"


def _url(link_artifact: Any) -> str:
    """The target of a link artifact, stored as markdown: ``[text](url)``."""
    found = re.fullmatch(r"\[.*\]\((.+)\)", link_artifact.data)
    assert found, link_artifact.data
    return found.group(1)


def test_artifacts_hold_the_report_links_decision_and_lineage(ran: Ran) -> None:
    result = ran.result
    found = artifacts(ran.flow_run_id, 7)
    suite = result.validation.suite_name
    table = json.loads(found[f"{suite}-validation"].data)
    assert table == [
        {
            "expectation": f"all {result.validation.statistics.evaluated_expectations} expectations",
            "column": None,
            "result": "met",
            "unexpected": 0,
            "unexpected %": 0.0,
            "sample values": None,
            "detail": None,
        }
    ]
    summary = found[f"{suite}-validation-summary"].data
    assert "Validation passed" in summary
    assert result.validation.data_hash in summary
    run_link = _url(found[f"{ran.model}-train-mlflow-run"])
    assert run_link.endswith(
        f"/#/experiments/{result.training.experiment_id}/runs/{result.training.run_id}"
    )
    version = result.model_version
    assert _url(found[f"{ran.model}-model-version"]).endswith(
        f"/#/models/{ran.model}/versions/{version.version}"
    )
    assert "promoted for @champion" in found[f"{ran.model}-champion-promotion"].data
    assert _url(found[f"{ran.model}-endpoint"]) == result.deployment.url
    lineage = found[f"{ran.model}-lineage"].data
    for expected in (
        f"endpoint    {ran.model}  {result.deployment.url}",
        f"model       {ran.model} v{version.version}  @champion",
        f"run         {result.training.run_id}",
        f"dataset     {result.training_set.path}  {result.training_set.data_hash}",
        f"validation  {suite}: passed",
    ):
        assert expected in lineage, lineage


def test_task_runs_are_named_after_what_they_did(ran: Ran) -> None:
    runs = {task_name(r): r.name for r in settled_task_runs(ran.flow_run_id, 7)}
    version = ran.result.model_version.version
    assert runs["validate_data"].startswith("validated transactions.parquet: ")
    assert " expectations met on 2000 rows" in runs["validate_data"]
    assert runs["build_training_set"].startswith("built training set ")
    assert runs["materialize_features"] == "materialized customer_stats"
    assert runs["train_model"].startswith(f"trained {ran.model}-train on local: ")
    assert "roc_auc=" in runs["train_model"]
    assert runs["register_model"].startswith(f"registered {ran.model} v{version} (run ")
    assert runs["promote_model"] == f"promoted {ran.model} v{version} to @champion"
    assert runs["deploy_model"].startswith(
        f"deployed {ran.model} v{version} to {ran.model} (all traffic) at http://127.0.0.1:"
    )


def test_the_mlflow_token_is_never_shown(ran: Ran) -> None:
    logs = log_lines(ran.flow_run_id, "trained ")
    assert logs
    assert not [r.message for r in logs if TOKEN in r.message]
    found = artifacts(ran.flow_run_id, 7)
    assert not [k for k, a in found.items() if TOKEN in json.dumps(a.data)]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(ran.flow_run_id)
    assert TOKEN not in json.dumps(flow_run.parameters, default=str)
    assert TOKEN not in repr(ran.result)
    assert TOKEN not in ran.result.model_dump_json()


def test_a_rejected_model_is_not_retried_and_the_decision_is_recorded(ran: Ran) -> None:
    gate = PromotionGate(metric="roc_auc", min_value=0.999)  # a floor no model here reaches

    @flow
    def promote_to_prod() -> None:
        promote_model(
            ran.result.model_version,
            gate,
            alias="prod",
            mlflow=MLflowCredentials(tracking_uri=ran.tracking_uri),
        )

    state = promote_to_prod(return_state=True)
    with pytest.raises(ModelRejected) as info:
        state.result()
    assert not info.value.decision.promoted
    flow_run_id = state.state_details.flow_run_id
    (task_run,) = settled_task_runs(flow_run_id, 1)
    assert task_run.run_count == 1, "a gate's verdict is never retried"
    decision = artifacts(flow_run_id, 1)[f"{ran.model}-prod-promotion"].data
    assert "rejected for @prod" in decision
    assert "below the floor" in decision
