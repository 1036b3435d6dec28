"""``deploy`` on ``KServeBackend`` against the emulator's KServe controller, which serves each
revision with the real KServe model server: canary, promote, rollback and D1-D5, with real V2
predictions, and the shipped serving Role enforced throughout.

One emulator and one backend for the module (a model server start costs 6-15 s); the steps run
in order in one test, each asserting what the endpoint serves afterwards.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from kube_support import serving_role_rules
from models_support import FEATURES, pipeline, register

from mlrelay import _mlflow
from mlrelay.errors import ConfigError, DeploymentFailed
from mlrelay.serving.isvc import INFERENCE_SERVICES, storage_uri
from mlrelay.serving.kserve import KServeBackend
from mlrelay.serving.spec import Canary, DeploymentSpec, Replace
from mlrelay.settings import KServeSettings, KubernetesSettings, LocalSettings, MLflowSettings
from mlrelay.testing.server import default_emulator

pytestmark = pytest.mark.slow
MODEL = "kserve-fraud"


@pytest.fixture(scope="module")
def env(mlflow_server: str, mlflow_server_dir: Path, fraud_data, tmp_path_factory) -> Any:
    artifacts = mlflow_server_dir / "artifacts"
    mlflow = MLflowSettings(
        tracking_uri=mlflow_server,
        artifact_destinations={"mlflow-artifacts:/": f"file://{artifacts}/"},
    )
    frame = pd.read_parquet(fraud_data["transactions"])
    x, y = frame[FEATURES], frame["is_fraud"]
    client = _mlflow.client(mlflow)
    work = tmp_path_factory.mktemp("kserve-models")
    versions = {
        "v1": register(client, pipeline(1.0).fit(x, y), x.head(3), work, MODEL),
        "v2": register(client, pipeline(0.01).fit(x, y), x.head(3), work, MODEL),
        "broken": register(client, pipeline(1.0).fit(x, y), x.head(3), work, MODEL, broken=True),
    }
    tmp = tmp_path_factory.mktemp("kserve-emulator")
    with default_emulator(bookmark_interval=0.5, cluster={"kserve": {"status_delay": 0.5}}) as emu:
        token = emu.add_token("system:serviceaccount:default:mlrelay", serving_role_rules())
        config = emu.write_kubeconfig(tmp / "kubeconfig", token=token)
        messages: list[str] = []
        backend = KServeBackend(
            KServeSettings(),
            kubernetes=KubernetesSettings(kubeconfig=config),
            mlflow=mlflow,
            local=LocalSettings(home=tmp / "home"),
            log=messages.append,
        )
        yield {
            "emu": emu,
            "backend": backend,
            "x": x,
            "messages": messages,
            "config": config,
            "home": tmp / "home",
            **versions,
        }


def served_by(url: str, rows: pd.DataFrame, n: int = 20) -> Counter[str]:
    """Which revision answered each of ``n`` real V2 requests."""
    inputs = [
        {"name": c, "shape": [len(rows)], "datatype": {"f": "FP64", "i": "INT64"}.get(rows[c].dtype.kind, "BYTES"), "data": rows[c].tolist()}
        for c in rows.columns
    ]  # fmt: skip
    seen: Counter[str] = Counter()
    for _ in range(n):
        r = httpx.post(f"{url}/v2/models/fraud/infer", json={"inputs": inputs}, timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()["outputs"][0]["data"]) == len(rows)
        seen[r.headers["X-Mlrelay-Revision"]] += 1
    return seen


# The rollout tests below run in file order on one endpoint, "fraud" (each model-server start
# costs 6-15 s): each starts from the state the one before left and asserts what serves after it.


def test_d5_first_deploy_asked_to_canary_gets_all_traffic_and_says_so(env: Any) -> None:
    backend, x = env["backend"], env["x"].head(2)
    spec = DeploymentSpec(name="fraud", model=env["v1"], strategy=Canary(10), ready_timeout=120)
    # D5: a first deploy asked to canary gets 100 % on its only revision, and says so
    first = backend.deploy(spec)
    assert first.traffic == {env["v1"].version: 100}
    assert any("100 % to its only revision" in m for m in env["messages"])
    assert first.smoke_test
    assert first.smoke_test["ok"]
    assert set(served_by(first.url, x)) == {"fraud-predictor-00001"}
    # The smoke rows came from MLmodel and the input example alone: no weights on this machine.
    home = env["home"]
    assert not (home / "models").exists()
    fetched = {p.name for p in (home / "model-metadata" / MODEL / env["v1"].version).iterdir()}
    assert fetched == {"MLmodel", "input_example.json", ".mlrelay-source"}


def test_reapplying_the_same_spec_changes_nothing(env: Any) -> None:
    backend, emu = env["backend"], env["emu"]
    spec = DeploymentSpec(name="fraud", model=env["v1"], strategy=Canary(10), ready_timeout=120)
    # the same spec again changes nothing (no new revision)
    again = backend.deploy(spec)
    assert again.promoted is False
    obj = emu.store.get(INFERENCE_SERVICES.plural, "default", "fraud")
    assert (
        obj["status"]["components"]["predictor"]["latestCreatedRevision"] == "fraud-predictor-00001"
    )


def test_d2_held_canary_splits_real_requests_and_the_wait_saw_the_new_revision(env: Any) -> None:
    backend, x = env["backend"], env["x"].head(2)
    spec = DeploymentSpec(name="fraud", model=env["v1"], strategy=Canary(10), ready_timeout=120)
    # a 10 % canary of v2 that stays: both revisions answer real requests, 2 in 20 from v2;
    # D2: the controller sits on the patch for a moment with a stale Ready=True, and the wait
    # still returns the new revision, never the old one
    held = backend.deploy(
        spec.model_copy(update={"model": env["v2"], "strategy": Canary(10, promote=False)})
    )
    assert held.promoted is False
    assert held.traffic == {env["v1"].version: 90, env["v2"].version: 10}
    assert served_by(held.url, x) == Counter(
        {"fraud-predictor-00001": 18, "fraud-predictor-00002": 2}
    )


def test_canary_promotion_moves_all_traffic_to_the_new_version(env: Any) -> None:
    backend, x = env["backend"], env["x"].head(2)
    spec = DeploymentSpec(name="fraud", model=env["v1"], strategy=Canary(10), ready_timeout=120)
    # promote: the same spec with promote=True finishes the rollout
    done = backend.deploy(spec.model_copy(update={"model": env["v2"]}))
    assert done.promoted is True
    assert done.traffic == {env["v2"].version: 100}
    assert set(served_by(done.url, x)) == {"fraud-predictor-00002"}


def test_rollback_as_its_own_call_restores_the_previous_spec(env: Any) -> None:
    backend, x = env["backend"], env["x"].head(2)
    # rollback, as its own call: the spec v2 replaced comes back (as a new revision)
    back = backend.rollback("fraud")
    assert back.model_version == env["v1"].version
    assert back.traffic == {env["v1"].version: 100}
    assert set(served_by(back.url, x)) == {"fraud-predictor-00003"}


def test_d1_canary_that_fails_to_load_is_rolled_back_with_the_failure_info(env: Any) -> None:
    backend, emu, x = env["backend"], env["emu"], env["x"].head(2)
    spec = DeploymentSpec(name="fraud", model=env["v1"], strategy=Canary(10), ready_timeout=120)
    # D1: a canary that fails to load is detected from modelStatus and rolled back
    with pytest.raises(DeploymentFailed) as info:
        backend.deploy(spec.model_copy(update={"model": env["broken"]}))
    assert info.value.rolled_back is True
    assert info.value.reason == "ModelLoadFailed"
    assert info.value.failure_info["status"]["latestCreatedRevision"] == "fraud-predictor-00004"
    restored = emu.store.get(INFERENCE_SERVICES.plural, "default", "fraud")
    assert "canaryTrafficPercent" not in restored["spec"]["predictor"]
    assert restored["metadata"]["annotations"]["mlrelay.io/model-version"] == env["v1"].version
    assert len(served_by(restored["status"]["url"], x, n=5)) == 1


def test_d4_failed_smoke_test_rolls_back_and_the_previous_version_serves(env: Any) -> None:
    backend, emu = env["backend"], env["emu"]
    # D4: a smoke test that fails on the new revision rolls back; the previous keeps serving
    bad_rows = [{"amount": "lots", "hour": 1, "merchant_category": "x", "is_online": 1}]
    with pytest.raises(DeploymentFailed) as smoke:
        backend.deploy(
            DeploymentSpec(
                name="fraud",
                model=env["v2"],
                strategy=Replace(),
                sample_rows=bad_rows,
                ready_timeout=120,
            )
        )
    assert smoke.value.reason == "SmokeTestFailed"
    assert smoke.value.rolled_back is True
    after = emu.store.get(INFERENCE_SERVICES.plural, "default", "fraud")
    assert after["metadata"]["annotations"]["mlrelay.io/model-version"] == env["v1"].version


def test_undeploy_leaves_no_inference_service_and_no_model_server(env: Any) -> None:
    backend, emu = env["backend"], env["emu"]
    # undeploy leaves nothing: no InferenceService, no model server
    backend.undeploy("fraud")
    assert emu.store.list(INFERENCE_SERVICES.plural, "default")[0] == []
    assert emu.cluster.kserve.processes("default", "fraud") == {}


def test_d3_deadline_raises_with_the_status_and_removes_a_first_deploy(env: Any) -> None:
    spec = DeploymentSpec(name="slowpoke", model=env["v1"], ready_timeout=1.0)
    with pytest.raises(DeploymentFailed) as info:
        env["backend"].deploy(spec)
    assert info.value.reason == "Timeout"
    assert info.value.rolled_back is False
    assert "latestCreatedRevision" in info.value.failure_info["status"]
    time.sleep(0.5)
    names = [
        o["metadata"]["name"]
        for o in env["emu"].store.list(INFERENCE_SERVICES.plural, "default")[0]
    ]
    assert "slowpoke" not in names


def test_without_create_permission_a_first_deploy_is_a_clear_403_and_creates_nothing(
    env: Any, tmp_path
) -> None:
    emu = env["emu"]
    token = emu.add_token(
        "system:serviceaccount:default:no-create",
        serving_role_rules(drop=("serving.kserve.io", "inferenceservices", "create")),
    )
    config = emu.write_kubeconfig(tmp_path / "kubeconfig", token=token)
    backend = KServeBackend(
        kubernetes=KubernetesSettings(kubeconfig=config),
        mlflow=env["backend"].mlflow,
        local=env["backend"].local,
    )
    with pytest.raises(ConfigError, match='cannot create resource "inferenceservices"'):
        backend.deploy(DeploymentSpec(name="forbidden", model=env["v1"], smoke_test=False))
    names = [o["metadata"]["name"] for o in emu.store.list(INFERENCE_SERVICES.plural, "default")[0]]
    assert "forbidden" not in names


def test_canary_in_raw_deployment_mode_is_a_config_error_before_any_call(env: Any) -> None:
    backend = KServeBackend(
        KServeSettings(deployment_mode="RawDeployment"),
        kubernetes=KubernetesSettings(kubeconfig=env["config"]),
    )
    with pytest.raises(ConfigError) as info:
        backend.deploy(DeploymentSpec(name="raw", model=env["v1"], strategy=Canary(10)))
    assert info.value.field == "strategy"


def test_storage_uri_mapping_and_its_errors() -> None:
    mapped = storage_uri(
        "mlflow-artifacts:/1/models/m-1/artifacts", {"mlflow-artifacts:/": "s3://bucket/mlflow/"}
    )
    assert mapped == "s3://bucket/mlflow/1/models/m-1/artifacts"
    assert storage_uri("gs://b/m", {}) == "gs://b/m"
    with pytest.raises(ConfigError) as info:
        storage_uri("mlflow-artifacts:/1/models/m-1/artifacts", {})
    assert info.value.field == "artifact_destinations"
    assert "MLRELAY_ARTIFACT_DESTINATIONS" in str(info.value)
    with pytest.raises(ConfigError, match="ftp"):
        storage_uri("mlflow-artifacts:/1/m", {"mlflow-artifacts:/": "ftp://host/x/"})
