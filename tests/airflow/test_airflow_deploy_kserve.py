"""DeployModelOperator on KServe (the emulator's KServe controller, which serves each revision
with the real KServe model server), deferred: ``dag.test()`` runs the DeploymentTrigger in-line.

The ``kubernetes_default`` connection points at the emulator, ``mlflow_default`` at the session
MLflow server (with a token, to prove it never reaches a handle). The rollout tests run in file
order on one endpoint, ``fraud`` (a model-server start costs 6-15 s): each starts from the state
the one before left and asserts what serves after it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from airflow_support import mlflow_connection, run_dag, wait_for
from models_support import FEATURES, pipeline, register

from airflow_mlrelay.operators import DeployModelOperator
from airflow_mlrelay.triggers.deploy import DeploymentTrigger
from mlrelay import _mlflow
from mlrelay.errors import DeploymentFailed
from mlrelay.serving.isvc import INFERENCE_SERVICES
from mlrelay.serving.kserve import KServeBackend
from mlrelay.serving.rollout import RolloutHandle
from mlrelay.serving.spec import Deployment, DeploymentSpec
from mlrelay.settings import KServeSettings, KubernetesSettings, MLflowSettings
from mlrelay.testing.server import default_emulator

pytestmark = pytest.mark.slow
MODEL = "airflow-kserve-fraud"
TOKEN = "mlflow-token-never-in-a-handle"
DAG = "mlrelay_deploy_kserve"


@pytest.fixture(scope="module")
def env(mlflow_server: str, mlflow_server_dir: Path, fraud_data, tmp_path_factory) -> Iterator[Any]:
    destinations = {"mlflow-artifacts:/": f"file://{mlflow_server_dir / 'artifacts'}/"}
    mlflow = MLflowSettings(tracking_uri=mlflow_server, artifact_destinations=destinations)
    frame = pd.read_parquet(fraud_data["transactions"])
    x, y = frame[FEATURES], frame["is_fraud"]
    client, work = _mlflow.client(mlflow), tmp_path_factory.mktemp("airflow-kserve-models")
    versions = {
        "v1": register(client, pipeline(1.0).fit(x, y), x.head(3), work, MODEL),
        "v2": register(client, pipeline(0.01).fit(x, y), x.head(3), work, MODEL),
        "broken": register(client, pipeline(1.0).fit(x, y), x.head(3), work, MODEL, broken=True),
    }
    tmp = tmp_path_factory.mktemp("airflow-kserve")
    with (
        default_emulator(bookmark_interval=0.5, cluster={"kserve": {"status_delay": 0.5}}) as emu,
        pytest.MonkeyPatch.context() as patch,
    ):
        config = emu.write_kubeconfig(tmp / "kubeconfig")
        conn = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(config)}}
        patch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(conn))
        patch.setenv(
            "AIRFLOW_CONN_MLFLOW_DEFAULT",
            mlflow_connection(mlflow_server, TOKEN, artifact_destinations=destinations),
        )
        patch.setenv("MLRELAY_HOME", str(tmp / "home"))
        backend = KServeBackend(kubernetes=KubernetesSettings(kubeconfig=config), mlflow=mlflow)
        yield {"emu": emu, "backend": backend, "x": x.head(2), "config": config, **versions}
        for name in ("fraud", "late", "killed", "killed-inline"):
            backend.undeploy(name)


def deploy(dagbag, env: Any, version: str, strategy: Any = "replace", dag: str = DAG, **conf: Any):
    model = env[version].model_dump(mode="json")
    return run_dag(dagbag, dag, {"name": "fraud", "model": model, "strategy": strategy, **conf})


def isvc(env: Any, name: str = "fraud") -> dict[str, Any] | None:
    found = [o for o in env["emu"].store.list(INFERENCE_SERVICES.plural, "default")[0]]
    return next((o for o in found if o["metadata"]["name"] == name), None)


def revisions_answering(url: str, rows: pd.DataFrame, n: int = 10) -> set[str]:
    inputs = [
        {"name": c, "shape": [len(rows)], "datatype": {"f": "FP64", "i": "INT64"}.get(rows[c].dtype.kind, "BYTES"), "data": rows[c].tolist()}
        for c in rows.columns
    ]  # fmt: skip
    seen = set()
    for _ in range(n):
        r = httpx.post(f"{url}/v2/models/fraud/infer", json={"inputs": inputs}, timeout=30)
        assert r.status_code == 200, r.text
        seen.add(r.headers["X-Mlrelay-Revision"])
    return seen


def test_airflow_deferred_replace_deploys_and_pushes_the_deployment_json(
    env, dagbag, capfd, caplog
):
    run = deploy(dagbag, env, "v1")
    assert run.states == {"deploy": "success"}
    out = capfd.readouterr().out + caplog.text
    assert "[DAG TEST] running trigger in line" in out  # it deferred
    result = run.result("deploy")
    assert result["backend"] == "kserve"
    assert result["model_version"] == env["v1"].version
    assert result["traffic"] == {env["v1"].version: 100}
    assert result["promoted"] is True
    assert result["smoke_test"]["ok"]
    assert set(result) == set(Deployment.model_fields)  # the inline path's XCom
    assert revisions_answering(result["url"], env["x"]) == {"fraud-predictor-00001"}


def test_airflow_deferred_canary_takes_each_step_then_promotes(env, dagbag, capfd, caplog):
    canary = {"kind": "canary", "percent": 10, "steps": [50]}
    run = deploy(dagbag, env, "v2", canary)
    assert run.states == {"deploy": "success"}
    out = capfd.readouterr().out + caplog.text
    # one deferral for the new revision, one per traffic step: 10 % (applied), 50 %, 100 %
    assert out.count("[DAG TEST] running trigger in line") >= 3
    result = run.result("deploy")
    assert result["promoted"] is True
    assert result["traffic"] == {env["v2"].version: 100}
    assert result["smoke_test"]["ok"]
    assert revisions_answering(result["url"], env["x"]) == {"fraud-predictor-00002"}
    assert "canaryTrafficPercent" not in isvc(env)["spec"]["predictor"]


def test_d1_airflow_deferred_rollout_that_fails_to_load_restores_the_previous_spec(env, dagbag):
    run = deploy(dagbag, env, "broken", {"kind": "canary", "percent": 10})
    assert run.states == {"deploy": "failed"}
    restored = isvc(env)
    assert restored["metadata"]["annotations"]["mlrelay.io/model-version"] == env["v2"].version
    assert "canaryTrafficPercent" not in restored["spec"]["predictor"]
    assert len(revisions_answering(restored["status"]["url"], env["x"], n=5)) == 1


def test_o6_airflow_deadline_while_deferred_undoes_the_rollout(env, dagbag):
    controller = env["emu"].cluster.kserve
    controller.status_delay = 30.0  # the new revision cannot be ready before the task's deadline
    try:
        run = deploy(dagbag, env, "v1", dag="mlrelay_deploy_kserve_deadline", name="late")
    finally:
        controller.status_delay = 0.5
    assert run.states == {"deploy": "failed"}
    assert isvc(env, "late") is None  # a first deploy is removed: nothing half rolled out


def test_o1_airflow_inline_deploy_killed_undoes_the_rollout_and_fails(env):
    operator = DeployModelOperator(
        task_id="deploy", name="killed-inline", model=env["v1"].model_dump(mode="json"),
        backend="kserve", deferrable=False, smoke_test=False, ready_timeout=60,
    )  # fmt: skip
    controller = env["emu"].cluster.kserve
    controller.status_delay = 30.0  # still rolling out when the task is killed
    outcome: list[BaseException] = []

    def execute() -> None:
        try:
            operator.execute({"ti": None})  # type: ignore[arg-type]
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=execute)
    try:
        worker.start()
        wait_for(lambda: operator._rollout is not None, 60, "the rollout to begin")
        assert isvc(env, "killed-inline") is not None
        operator.on_kill()  # what Airflow's SIGTERM handler calls
        worker.join(60)
    finally:
        controller.status_delay = 0.5
    assert not worker.is_alive()
    (failure,) = outcome
    assert isinstance(failure, DeploymentFailed)
    assert failure.reason == "Stopped"
    assert isvc(env, "killed-inline") is None


def test_o4_airflow_trigger_on_kill_undoes_the_rollout_and_the_handle_is_plain_json(env):
    base = env["backend"].mlflow
    mlflow = MLflowSettings(
        tracking_uri=base.tracking_uri,
        token=TOKEN,
        artifact_destinations=base.artifact_destinations,
    )
    backend = KServeBackend(
        KServeSettings(), kubernetes=KubernetesSettings(kubeconfig=env["config"]), mlflow=mlflow
    )
    spec = DeploymentSpec(name="killed", model=env["v1"], ready_timeout=60)
    handle = backend.begin(spec)
    text = handle.model_dump_json()
    assert TOKEN not in text
    assert RolloutHandle.model_validate(json.loads(text)) == handle
    assert "rows" not in json.loads(text)  # data rows stay out of the triggerer's table
    trigger = DeploymentTrigger(
        handle=handle.model_dump(mode="json"), kubernetes_conn_id="kubernetes_default"
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_mlrelay.triggers.deploy.DeploymentTrigger"
    revived = DeploymentTrigger(**json.loads(json.dumps(kwargs)))
    assert isvc(env, "killed") is not None
    asyncio.run(revived.cleanup())  # a triggerer restart leaves the rollout alone
    assert isvc(env, "killed") is not None
    asyncio.run(revived.on_kill())  # the user marked the deferred task failed
    assert isvc(env, "killed") is None
