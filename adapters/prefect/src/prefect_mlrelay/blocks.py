"""Blocks: the MLflow server, the Kubernetes cluster and the KServe target, stored in Prefect.

A block is how a Prefect user keeps a connection out of the flow's code and its secrets out of
its parameters: ``MLflowCredentials.load("prod")`` in a flow, or a block-typed flow parameter
that the UI offers as a drop-down. Each block turns into the core's settings object
(``.settings()``) at the moment a step runs; the token stays a ``SecretStr`` all the way, so it
is masked in the UI, in ``repr`` and in every result, log line and artifact.

Clusters described with prefect-kubernetes' ``KubernetesClusterConfig`` block are reused rather
than described twice: name it in ``KubernetesCluster.cluster_config_block``, or hand the block
itself (or a ``KubernetesCredentials``) to any task. prefect-kubernetes imports the Kubernetes
clients (1.5 s), so it is imported only when such a block is actually used.

Register the block types with ``prefect block register -m prefect_mlrelay`` (a Prefect server
also registers them by itself, through the package's ``prefect.collections`` entry point).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from mlrelay.errors import ConfigError
from mlrelay.settings import KServeSettings, KubernetesSettings, MLflowSettings


class MLflowCredentials(Block):
    """The MLflow tracking server and model registry that the steps log to and read from.

    Leave ``tracking_uri`` empty to use ``MLFLOW_TRACKING_URI`` from the environment, or the
    local SQLite store under ``MLRELAY_HOME`` when that is unset too.
    """

    _block_type_name = "mlrelay MLflow Credentials"
    _block_type_slug = "mlrelay-mlflow-credentials"
    _code_example = """
```python
from prefect_mlrelay import MLflowCredentials

MLflowCredentials(tracking_uri="https://mlflow.example.com", token="...").save("prod")
mlflow = MLflowCredentials.load("prod")
```"""

    tracking_uri: str | None = Field(
        default=None, description="The tracking server, e.g. https://mlflow.example.com."
    )
    token: SecretStr | None = Field(
        default=None, description="Bearer token for the server (sent as MLFLOW_TRACKING_TOKEN)."
    )
    registry_uri: str | None = Field(
        default=None, description="A separate model registry, if it is not the tracking server."
    )
    training_tracking_uri: str | None = Field(
        default=None,
        description="The URI a training pod uses when it cannot reach tracking_uri "
        "(an in-cluster service name).",
    )
    artifact_destinations: dict[str, str] = Field(
        default_factory=dict,
        description="Where the server really stores artifacts, per mlflow-artifacts: prefix "
        '(e.g. {"mlflow-artifacts:/": "s3://bucket/mlflow/"}): model servers need it.',
    )

    @model_validator(mode="after")
    def _valid_settings(self) -> MLflowCredentials:
        self.settings()  # a password inside a URI is refused here, before the block is saved
        return self

    def settings(self) -> MLflowSettings:
        """The core's settings; empty fields fall back to the environment."""
        # MLflowSettings reads these three under their environment names only (validation
        # aliases): given as token=..., the value would be silently dropped.
        given: dict[str, Any] = {
            "tracking_uri": self.tracking_uri,
            "MLFLOW_TRACKING_TOKEN": self.token,
            "registry_uri": self.registry_uri,
            "MLRELAY_TRAINING_TRACKING_URI": self.training_tracking_uri,
            "MLRELAY_ARTIFACT_DESTINATIONS": self.artifact_destinations or None,
        }
        return MLflowSettings(**{k: v for k, v in given.items() if v is not None})


class KubernetesCluster(Block):
    """A Kubernetes API server and namespace for training jobs (and InferenceServices).

    Describe the cluster in one of three ways: name a prefect-kubernetes
    ``KubernetesClusterConfig`` block (``cluster_config_block``), point at a kubeconfig file
    (``kubeconfig``, ``context``), or use the pod's service account (``in_cluster``). With none
    of them, the ``MLRELAY_K8S_*`` and ``KUBECONFIG`` environment variables decide.
    """

    _block_type_name = "mlrelay Kubernetes Cluster"
    _block_type_slug = "mlrelay-kubernetes-cluster"
    _code_example = """
```python
from prefect_mlrelay import KubernetesCluster

KubernetesCluster(cluster_config_block="prod-cluster", namespace="ml").save("prod")
```"""

    namespace: str | None = Field(
        default=None, description="Where training jobs are created (default: 'default')."
    )
    cluster_config_block: str | None = Field(
        default=None,
        description="Name of a prefect-kubernetes KubernetesClusterConfig block to connect with.",
    )
    kubeconfig: str | None = Field(default=None, description="Path of a kubeconfig file.")
    context: str | None = Field(default=None, description="The kubeconfig context to use.")
    in_cluster: bool = Field(default=False, description="Use the pod's service account.")
    host: str | None = Field(default=None, description="API server URL (with token).")
    token: SecretStr | None = Field(default=None, description="Bearer token for host.")
    verify_ssl: bool = True
    request_timeout: float = Field(default=30.0, gt=0, description="Seconds per API request.")

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesCluster:
        sources = [self.cluster_config_block, self.kubeconfig, self.in_cluster or None]
        if sum(s is not None for s in sources) > 1:
            raise ValueError("give at most one of cluster_config_block, kubeconfig, in_cluster")
        return self

    def settings(self) -> KubernetesSettings:
        """The core's settings (loading the prefect-kubernetes block, if one is named)."""
        kubeconfig, context = self.kubeconfig, self.context
        if self.cluster_config_block is not None:
            config = _prefect_kubernetes().KubernetesClusterConfig.load(self.cluster_config_block)
            kubeconfig, context = (
                str(_kubeconfig_file(config.config)),
                context or config.context_name,
            )
        given: dict[str, Any] = {
            "namespace": self.namespace,
            "kubeconfig": kubeconfig,
            "context": context,
            "in_cluster": self.in_cluster or None,
            "host": self.host,
            "token": self.token,
            "verify_ssl": self.verify_ssl,
            "request_timeout": self.request_timeout,
        }
        return KubernetesSettings(**{k: v for k, v in given.items() if v is not None})


class KServeTarget(Block):
    """Where models are served with KServe: the cluster, namespace and rollout settings."""

    _block_type_name = "mlrelay KServe Target"
    _block_type_slug = "mlrelay-kserve-target"

    cluster: KubernetesCluster | None = Field(
        default=None, description="The cluster; the environment's when empty."
    )
    namespace: str | None = Field(
        default=None, description="Where InferenceServices live (default: 'default')."
    )
    deployment_mode: Literal["Serverless", "RawDeployment"] = "Serverless"
    service_account: str | None = Field(
        default=None, description="Service account of the predictor (to read model storage)."
    )
    ready_timeout: float = Field(default=600.0, gt=0, description="Seconds to become ready.")

    def settings(self) -> KServeSettings:
        given: dict[str, Any] = {
            "namespace": self.namespace,
            "deployment_mode": self.deployment_mode,
            "service_account": self.service_account,
            "ready_timeout": self.ready_timeout,
        }
        return KServeSettings(**{k: v for k, v in given.items() if v is not None})

    def kubernetes_settings(self) -> KubernetesSettings:
        return kubernetes_settings(self.cluster)


def mlflow_settings(mlflow: MLflowCredentials | MLflowSettings | None) -> MLflowSettings | None:
    """Settings for the core from a block, settings, or nothing (the core reads the environment)."""
    if mlflow is None or isinstance(mlflow, MLflowSettings):
        return mlflow
    if isinstance(mlflow, MLflowCredentials):
        return mlflow.settings()
    raise ConfigError(
        f"expected an MLflowCredentials block, got {type(mlflow).__name__}", field="mlflow"
    )


def kubernetes_settings(cluster: Any) -> KubernetesSettings:
    """Settings for the core from any way a Prefect user may describe a cluster.

    Accepts a ``KubernetesCluster`` block, the core's ``KubernetesSettings``, prefect-kubernetes'
    ``KubernetesClusterConfig`` or ``KubernetesCredentials`` block, or ``None`` (the environment).
    The prefect-kubernetes blocks are recognised by their fields, so prefect-kubernetes is not
    imported to check.
    """
    if cluster is None:
        return KubernetesSettings()
    if isinstance(cluster, KubernetesSettings):
        return cluster
    if isinstance(cluster, KubernetesCluster):
        return cluster.settings()
    if isinstance(cluster, Block) and hasattr(cluster, "cluster_config"):  # KubernetesCredentials
        if cluster.cluster_config is None:
            return KubernetesSettings()  # prefect-kubernetes itself then falls back the same way
        cluster = cluster.cluster_config
    config = getattr(cluster, "config", None)
    if isinstance(cluster, Block) and isinstance(config, dict):  # KubernetesClusterConfig
        context = getattr(cluster, "context_name", None)
        return KubernetesSettings(kubeconfig=_kubeconfig_file(config), context=context)
    raise ConfigError(
        f"expected a KubernetesCluster block or a prefect-kubernetes cluster block, got "
        f"{type(cluster).__name__}",
        field="kubernetes",
    )


def _prefect_kubernetes() -> Any:
    try:
        import prefect_kubernetes.credentials as credentials
    except ImportError as exc:
        raise ConfigError(
            "cluster_config_block names a prefect-kubernetes block, but prefect-kubernetes is "
            "not installed; install it with: pip install 'prefect-mlrelay[kubernetes]'",
            field="cluster_config_block",
        ) from exc
    return credentials


_written: dict[str, Path] = {}


def _kubeconfig_file(config: dict[str, Any]) -> Path:
    """The kubeconfig held by a block, as a private file (the core's clients read files).

    A kubeconfig may hold tokens and keys: the file is the user's alone (0600) and removed when
    the process exits. One file per distinct config, so repeated steps do not pile files up.
    """
    text = json.dumps(config, sort_keys=True)  # JSON is YAML: no YAML library needed
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if (path := _written.get(digest)) is not None and path.exists():
        return path
    fd, name = tempfile.mkstemp(prefix=f"mlrelay-kubeconfig-{digest}-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:  # mkstemp creates it 0600
        f.write(text)
    path = _written[digest] = Path(name)
    atexit.register(path.unlink, missing_ok=True)
    return path
