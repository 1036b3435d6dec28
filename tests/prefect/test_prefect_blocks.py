"""The blocks on the session's Prefect API: registered by the CLI, saved, loaded, never showing
the secret; prefect-kubernetes' cluster blocks reused; the integration's import stays light."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect_kubernetes.credentials import KubernetesClusterConfig, KubernetesCredentials
from pydantic import ValidationError

from prefect_mlrelay import (
    KServeTarget,
    KubernetesCluster,
    MLflowCredentials,
    kubernetes_settings,
    mlflow_settings,
    train_and_deploy,
)

SLUGS = ("mlrelay-mlflow-credentials", "mlrelay-kubernetes-cluster", "mlrelay-kserve-target")
SECRET = "s3cr3t-tok-9a7c"
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "emu", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "admin", "user": {"token": SECRET}}],
    "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "admin"}}],
    "current-context": "emu",
}


def test_block_types_register_with_the_prefect_cli(prefect_api: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("prefect")),
            "block",
            "register",
            "-m",
            "prefect_mlrelay",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Successfully registered 3 blocks" in done.stdout, done.stdout
    with get_client(sync_client=True) as client:
        for slug in SLUGS:
            assert client.read_block_type_by_slug(slug).name.startswith("mlrelay ")
        schema = client.get_most_recent_block_schema_for_block_type(
            client.read_block_type_by_slug(SLUGS[0]).id
        )
    assert schema is not None
    assert "token" in schema.fields["secret_fields"]


def test_mlflow_credentials_round_trip_and_never_show_the_token(prefect_api: str) -> None:
    MLflowCredentials(tracking_uri="https://mlflow.example.com", token=SECRET).save(
        "prod", overwrite=True
    )
    loaded = MLflowCredentials.load("prod")
    settings = loaded.settings()
    assert settings.tracking_uri == "https://mlflow.example.com"
    assert settings.token is not None
    assert settings.token.get_secret_value() == SECRET
    assert mlflow_settings(loaded) == settings
    for shown in (repr(loaded), str(loaded), loaded.model_dump_json(), repr(settings)):
        assert SECRET not in shown
    with get_client(sync_client=True) as client:
        stored = client.read_block_document_by_name("prod", SLUGS[0], include_secrets=False)
    assert SECRET not in json.dumps(stored.data, default=str)
    assert stored.data["tracking_uri"] == "https://mlflow.example.com"


def test_a_password_in_the_tracking_uri_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        MLflowCredentials(tracking_uri=f"https://user:{SECRET}@mlflow.example.com")
    assert "MLFLOW_TRACKING_TOKEN" in str(info.value)
    assert SECRET not in str(info.value)


def test_kserve_target_keeps_its_cluster_as_a_nested_block(
    prefect_api: str, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(KUBECONFIG))
    KServeTarget(
        cluster=KubernetesCluster(kubeconfig=str(kubeconfig), context="emu", namespace="ml"),
        namespace="models",
        deployment_mode="RawDeployment",
    ).save("models", overwrite=True)
    target = KServeTarget.load("models")
    assert target.settings().namespace == "models"
    assert target.settings().deployment_mode == "RawDeployment"
    cluster = target.kubernetes_settings()
    assert (cluster.kubeconfig, cluster.context, cluster.namespace) == (kubeconfig, "emu", "ml")


def test_kubernetes_cluster_reuses_a_prefect_kubernetes_cluster_config_block(
    prefect_api: str,
) -> None:
    KubernetesClusterConfig(config=KUBECONFIG, context_name="emu").save("emu", overwrite=True)
    settings = KubernetesCluster(cluster_config_block="emu", namespace="ml").settings()
    assert settings.namespace == "ml"
    assert settings.context == "emu"
    path = settings.kubeconfig
    assert path is not None
    assert json.loads(path.read_text()) == KUBECONFIG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a kubeconfig holds credentials"
    assert SECRET not in repr(settings)
    via_credentials = kubernetes_settings(
        KubernetesCredentials(cluster_config=KubernetesClusterConfig.load("emu"))
    )
    assert via_credentials.kubeconfig == path, "one private file per distinct kubeconfig"


def test_a_cluster_block_described_two_ways_is_refused() -> None:
    with pytest.raises(ValidationError, match="at most one"):
        KubernetesCluster(cluster_config_block="emu", kubeconfig="/etc/kube/config")


def test_importing_the_integration_imports_no_heavy_library() -> None:
    heavy = [
        "mlflow", "great_expectations", "feast", "kserve", "kubernetes",
        "kubernetes_asyncio", "sklearn", "prefect_kubernetes", "pandas",
    ]  # fmt: skip
    code = (
        "import sys\n"
        "from prefect import flow, task\n"  # Prefect's own imports are the baseline
        "before = set(sys.modules)\n"
        "import prefect_mlrelay\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules and m not in before))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_train_and_deploy_deploys_as_it_is_with_blocks_as_parameters(prefect_api: str) -> None:
    deployment_id = train_and_deploy.to_deployment(name="as-is").apply()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
    schema = deployment.parameter_openapi_schema
    assert set(schema["required"]) == {"data", "suite", "feature_repo", "training_command"}
    assert deployment.parameters == {}, "every default is in the schema, none is a secret"
    dumped = json.dumps(schema)
    for slug in SLUGS:  # the UI offers a drop-down of saved blocks for each connection
        assert f'"block_type_slug": "{slug}"' in dumped
    assert "PromotionGate" in schema["definitions"]
