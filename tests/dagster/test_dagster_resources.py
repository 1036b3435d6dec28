"""Resources turn their config into the core's settings; secrets stay secret; imports stay light."""

import json
import subprocess
import sys

import dagster as dg
import pytest
from dagster_support import ROOT

from dagster_mlrelay import KServeResource, KubernetesResource, MLflowResource

HEAVY = ("mlflow", "great_expectations", "feast", "kserve", "kubernetes", "pandas", "sklearn")


def test_resources_resolve_env_var_secrets_at_run_time_and_never_record_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_MLFLOW_TOKEN", "mlflow-s3cret")
    monkeypatch.setenv("TEST_K8S_TOKEN", "k8s-s3cret")

    @dg.asset(required_resource_keys={"mlflow", "kubernetes"})
    def connected(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        mlflow = context.resources.mlflow.settings()
        kube = context.resources.kubernetes.settings()
        assert mlflow.token.get_secret_value() == "mlflow-s3cret"
        assert kube.token.get_secret_value() == "k8s-s3cret"
        context.log.info(f"settings: {mlflow!r} {kube!r}")
        return dg.MaterializeResult(
            metadata={
                "mlflow": mlflow.model_dump(mode="json"),
                "kube": kube.model_dump(mode="json"),
            }
        )

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [connected],
        instance=instance,
        resources={
            "mlflow": MLflowResource(
                tracking_uri="https://mlflow.example.com", token=dg.EnvVar("TEST_MLFLOW_TOKEN")
            ),
            "kubernetes": KubernetesResource(
                host="https://k8s.example.com", namespace="ml", token=dg.EnvVar("TEST_K8S_TOKEN")
            ),
        },
    )
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    recorded = [dg.serialize_value(e) for e in instance.all_logs(result.run_id)]
    recorded.append(json.dumps(run.run_config if run else None))
    assert recorded
    assert not [text for text in recorded if "s3cret" in text]


def test_mlflow_links_exist_only_where_there_is_a_ui() -> None:
    served = MLflowResource(tracking_uri="https://user@mlflow.example.com/")
    assert served.run_url("3", "abc") == "https://mlflow.example.com/#/experiments/3/runs/abc"
    assert served.model_version_url("fraud detector", "7") == (
        "https://mlflow.example.com/#/models/fraud%20detector/versions/7"
    )
    assert MLflowResource(tracking_uri="sqlite:///mlflow.db").run_url("1", "abc") is None
    behind_proxy = MLflowResource(tracking_uri="sqlite:///x.db", ui_url="https://ml.corp/mlflow")
    assert (
        behind_proxy.model_version_url("m", "1") == "https://ml.corp/mlflow/#/models/m/versions/1"
    )


def test_unset_fields_fall_back_to_the_core_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLRELAY_K8S_NAMESPACE", "training")
    monkeypatch.setenv("MLRELAY_KSERVE_DEPLOYMENT_MODE", "RawDeployment")
    assert KubernetesResource().settings().namespace == "training"
    assert KubernetesResource(namespace="ml").settings().namespace == "ml"
    assert KServeResource().settings().deployment_mode == "RawDeployment"


def test_importing_the_adapter_and_the_example_imports_no_heavy_library() -> None:
    code = (
        "import sys, dagster_mlrelay, examples.dagster.fraud_detector.definitions; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
