"""The provider as Airflow sees it: discovery, connections, links, and what a DAG parse costs."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_support import mlflow_connection

# The parse-cost measurement is benchmark P1's (benchmarks/p1_parse.py): one implementation.
_P1 = Path(__file__).resolve().parents[2] / "benchmarks" / "p1_parse.py"
sys.path.insert(0, str(_P1.parent))  # its own import of benchmarks/common.py
_spec = importlib.util.spec_from_file_location("p1_parse", _P1)
p1 = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(p1)  # type: ignore[union-attr]
HEAVY = p1.HEAVY


def test_importing_the_operators_and_parsing_the_example_dag_imports_no_heavy_library():
    samples = p1.measure(1, names=("mlrelay", "empty"), warm_up=False)
    (ours,), (empty,) = samples["mlrelay"], samples["empty"]
    assert [m for m in ours["imported"] if m in HEAVY] == []
    assert "mlrelay" not in ours["imported"]  # nor the core: its steps load when a task runs
    assert (ours["tasks"], empty["tasks"]) == (8, 8)
    # Generous: a heavy import (mlflow alone takes ~4.5 s here) would blow far past this.
    assert ours["parse_cpu_s"] < empty["parse_cpu_s"] + 1.0, (ours, empty)


def test_importing_the_provider_package_imports_neither_core_steps_nor_airflow_models():
    code = (
        "import sys, airflow_mlrelay, airflow_mlrelay.get_provider_info as g; g.get_provider_info()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r} or m.startswith(('airflow_mlrelay.operators', 'mlrelay.training'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_airflow_providers_list_shows_the_provider():
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    listed = {p["package_name"]: p for p in json.loads(out[out.index("[") :])}
    assert listed["airflow-provider-mlrelay"]["version"] == "0.1.0"


def test_providers_manager_knows_the_connection_type_links_and_trigger():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert pm.hooks["mlflow"].hook_class_name == "airflow_mlrelay.hooks.mlflow.MLflowHook"
    behaviour = pm.field_behaviours["mlflow"]
    assert behaviour["relabeling"] == {"host": "Tracking URI", "password": "Token"}
    assert "login" in behaviour["hidden_fields"]
    widgets = pm.connection_form_widgets
    assert "extra__mlflow__training_tracking_uri" in widgets
    assert {
        "airflow_mlrelay.links.MLflowRunLink",
        "airflow_mlrelay.links.MLflowModelVersionLink",
        "airflow_mlrelay.links.EndpointLink",
    } <= set(pm.extra_links_class_names)
    ours = [
        t.trigger_class_name for t in pm.trigger if t.package_name == "airflow-provider-mlrelay"
    ]
    for module in ("airflow_mlrelay.triggers.training", "airflow_mlrelay.triggers.deploy"):
        assert any(module in name for name in ours), ours


def test_mlflow_connection_becomes_settings_with_the_token_kept_secret(monkeypatch):
    from airflow_mlrelay.hooks import MLflowHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_TEAM",
        mlflow_connection(
            "https://mlflow.example.com",
            "tok-123456",
            training_tracking_uri="http://mlflow.mlflow.svc:5000",
            artifact_destinations='{"mlflow-artifacts:/": "s3://bucket/mlflow/"}',
            ui_url="https://ui.example.com/",
        ),
    )
    hook = MLflowHook("mlflow_team")
    settings = hook.get_settings()
    assert settings.tracking_uri == "https://mlflow.example.com"
    assert settings.token is not None
    assert settings.token.get_secret_value() == "tok-123456"
    assert settings.training_tracking_uri == "http://mlflow.mlflow.svc:5000"
    assert settings.artifact_destinations == {"mlflow-artifacts:/": "s3://bucket/mlflow/"}
    assert "tok-123456" not in repr(settings) + json.dumps(settings.model_dump(mode="json"))
    assert hook.ui_url() == "https://ui.example.com"


def test_without_the_default_connection_mlflow_settings_come_from_the_environment(monkeypatch):
    from airflow_mlrelay.hooks import MLflowHook

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert MLflowHook().get_settings().tracking_uri == "http://127.0.0.1:5999"
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException):
        MLflowHook("no_such_connection").get_settings()


def test_mlflow_connection_test_asks_the_server(mlflow_server, monkeypatch):
    from airflow_mlrelay.hooks import MLflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_UP", mlflow_connection(mlflow_server))
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DOWN", mlflow_connection("http://127.0.0.1:9"))
    assert MLflowHook("mlflow_up").test_connection() == (True, f"{mlflow_server}: HTTP 200")
    ok, message = MLflowHook("mlflow_down").test_connection()
    assert not ok
    assert message.startswith("http://127.0.0.1:9: ")


def test_kubernetes_connection_becomes_kubernetes_settings(monkeypatch, tmp_path):
    from airflow_mlrelay.hooks import KubernetesSettingsHook

    by_path = {"kube_config_path": "/etc/kube/config", "namespace": "ml", "cluster_context": "prod"}
    inline = {"kube_config": json.dumps({"apiVersion": "v1", "kind": "Config"}), "namespace": "ml"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_K8S_PATH", json.dumps({"conn_type": "kubernetes", "extra": by_path})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_K8S_INLINE", json.dumps({"conn_type": "kubernetes", "extra": inline})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_K8S_POD",
        json.dumps(
            {"conn_type": "kubernetes", "extra": {"in_cluster": True, "disable_verify_ssl": "true"}}
        ),
    )

    settings = KubernetesSettingsHook("k8s_path").get_settings()
    assert (str(settings.kubeconfig), settings.namespace, settings.context) == (
        "/etc/kube/config", "ml", "prod",
    )  # fmt: skip
    assert KubernetesSettingsHook("k8s_path", namespace="other").get_settings().namespace == "other"

    written = KubernetesSettingsHook("k8s_inline").get_settings().kubeconfig
    assert written is not None
    assert json.loads(written.read_text())["kind"] == "Config"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700  # removed at process exit
    assert KubernetesSettingsHook("k8s_inline").get_settings().kubeconfig == written  # reused

    pod = KubernetesSettingsHook("k8s_pod").get_settings()
    assert (pod.in_cluster, pod.verify_ssl) == (True, False)

    monkeypatch.setenv("MLRELAY_K8S_NAMESPACE", "from-env")
    assert KubernetesSettingsHook(None).get_settings().namespace == "from-env"
    assert os.environ.get("AIRFLOW_CONN_KUBERNETES_DEFAULT") is None
    assert KubernetesSettingsHook().get_settings().namespace == "from-env"  # no connection: env
