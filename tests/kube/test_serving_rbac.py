"""The shipped serving Role is exactly what the KServe backend needs: with it a model is
deployed, replaced, rolled back and undeployed (real model servers behind the emulator's KServe
controller); without any one of its rules, that path fails with a clear 403 naming the verb and
the resource, and leaves no InferenceService behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kube_support import every_serving_rule, serving_role_rules
from models_support import FEATURES, pipeline, register

from mlrelay import _mlflow
from mlrelay.errors import ConfigError
from mlrelay.serving.isvc import INFERENCE_SERVICES
from mlrelay.serving.kserve import KServeBackend
from mlrelay.serving.spec import DeploymentSpec
from mlrelay.settings import KServeSettings, KubernetesSettings, LocalSettings, MLflowSettings
from mlrelay.testing import KubeEmulator
from mlrelay.testing.auth import Rule
from mlrelay.testing.server import default_emulator

pytestmark = pytest.mark.slow
MODEL = "serving-rbac"


EVERY_RULE = every_serving_rule()


@pytest.fixture(scope="module")
def env(mlflow_server: str, mlflow_server_dir: Path, fraud_data, tmp_path_factory) -> Any:
    artifacts = mlflow_server_dir / "artifacts"
    mlflow = MLflowSettings(
        tracking_uri=mlflow_server,
        artifact_destinations={"mlflow-artifacts:/": f"file://{artifacts}/"},
    )
    frame = pd.read_parquet(fraud_data["transactions"])
    x, y = frame[FEATURES], frame["is_fraud"]
    client, work = _mlflow.client(mlflow), tmp_path_factory.mktemp("rbac-models")
    v1 = register(client, pipeline(1.0).fit(x, y), x.head(3), work, MODEL)
    v2 = register(client, pipeline(0.01).fit(x, y), x.head(3), work, MODEL)
    with default_emulator(bookmark_interval=0.5, cluster={"kserve": {}}) as emu:
        yield {"emu": emu, "mlflow": mlflow, "v1": v1, "v2": v2}


def backend_with(env: Any, rules: tuple[Rule, ...], tmp_path: Path) -> KServeBackend:
    emu: KubeEmulator = env["emu"]
    token = emu.add_token("system:serviceaccount:default:mlrelay", rules)
    config = emu.write_kubeconfig(tmp_path / "sa-kubeconfig", token=token)
    return KServeBackend(
        KServeSettings(),
        kubernetes=KubernetesSettings(kubeconfig=config),
        mlflow=env["mlflow"],
        local=LocalSettings(home=tmp_path / "home"),
    )


def exercise(backend: KServeBackend, env: Any, name: str) -> None:
    """Everything a serving pipeline does to one endpoint: clear a leftover (idempotent
    undeploy), deploy, replace with a new version, roll back, undeploy."""
    backend.undeploy(f"{name}-leftover")
    spec = DeploymentSpec(name=name, model=env["v1"], smoke_test=False, ready_timeout=180)
    assert backend.deploy(spec).model_version == env["v1"].version
    replaced = backend.deploy(spec.model_copy(update={"model": env["v2"]}))
    assert replaced.traffic == {env["v2"].version: 100}
    assert backend.rollback(name).model_version == env["v1"].version
    backend.undeploy(name)


def services(env: Any) -> list[str]:
    return [
        o["metadata"]["name"]
        for o in env["emu"].store.list(INFERENCE_SERVICES.plural, "default")[0]
    ]


@pytest.fixture
def cleanup(env: Any) -> Iterator[None]:
    yield
    for name in services(env):  # as the admin: a test that failed half-way leaves nothing
        env["emu"].store.delete(INFERENCE_SERVICES.plural, "default", name)


def test_the_shipped_serving_role_is_enough_to_deploy_replace_roll_back_and_undeploy(
    env: Any, tmp_path: Path, cleanup: None
) -> None:
    exercise(backend_with(env, serving_role_rules(), tmp_path), env, "rbac-full")
    assert "rbac-full" not in services(env)


@pytest.mark.parametrize("dropped", EVERY_RULE, ids=lambda d: f"{d[1]}-{d[2]}")
def test_removing_any_rule_of_the_serving_role_fails_with_a_clear_403(
    env: Any, tmp_path: Path, cleanup: None, dropped: tuple[str, str, str]
) -> None:
    _, resource, verb = dropped
    name = f"rbac-no-{verb}"
    with pytest.raises(ConfigError, match="forbidden") as info:
        exercise(backend_with(env, serving_role_rules(drop=dropped), tmp_path), env, name)
    assert f'cannot {verb} resource "{resource}"' in str(info.value)
    assert "mlrelay/kube/manifests" in str(info.value)  # where the Role to fix is
