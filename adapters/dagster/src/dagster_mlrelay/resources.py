"""Connections as Dagster resources: each one turns its config into the core's settings.

Resources are configured per deployment (``dagster dev`` on a laptop, a cluster in production)
while the asset graph stays the same, so this is where "local or cluster" is decided. Secrets
are plain ``str`` fields because Dagster config has no secret type: pass them as
``dg.EnvVar("NAME")``, which Dagster resolves when the run starts and never shows in the UI.
They become ``SecretStr`` in the core's settings at once and go nowhere else (no logs, no
metadata, no exception text).

Every field left unset falls back to the core's environment variables (``MLFLOW_TRACKING_URI``,
``MLRELAY_K8S_*``, ...), so an empty resource works wherever the environment is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import dagster as dg
from pydantic import Field

from mlrelay.settings import KServeSettings, KubernetesSettings, MLflowSettings, redact_uri

if TYPE_CHECKING:
    from mlrelay.serving.base import ServingBackend
    from mlrelay.training.backend import TrainingBackend

__all__ = ["FeastResource", "KServeResource", "KubernetesResource", "MLflowResource"]


def _given(**values: Any) -> dict[str, Any]:
    """The fields that were set, so unset ones fall back to the settings' environment variables."""
    return {k: v for k, v in values.items() if v is not None}


class MLflowResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The MLflow tracking server and model registry every training and registry asset uses.

    Attributes:
        tracking_uri: the tracking server; unset means ``MLFLOW_TRACKING_URI``, else a local
            SQLite store under ``MLRELAY_HOME``.
        token: bearer token; pass ``dg.EnvVar("MLFLOW_TRACKING_TOKEN")``.
        registry_uri: a registry separate from the tracking server, if any.
        training_tracking_uri: the URI a training pod uses when it cannot reach ``tracking_uri``
            (inside the cluster the server has another name).
        artifact_destinations: where the server really stores ``mlflow-artifacts:`` URIs
            (``{"mlflow-artifacts:/": "s3://bucket/mlflow/"}``), for model servers.
        ui_url: where people open the MLflow UI, for the links in asset metadata; defaults to
            the tracking URI when that is an http(s) URL.
    """

    tracking_uri: str | None = None
    token: str | None = None
    registry_uri: str | None = None
    training_tracking_uri: str | None = None
    artifact_destinations: dict[str, str] | None = None
    ui_url: str | None = None

    def settings(self) -> MLflowSettings:
        """The core's settings; the token becomes a ``SecretStr`` here."""
        return MLflowSettings(
            **_given(
                tracking_uri=self.tracking_uri,
                MLFLOW_TRACKING_TOKEN=self.token,
                registry_uri=self.registry_uri,
                MLRELAY_TRAINING_TRACKING_URI=self.training_tracking_uri,
                MLRELAY_ARTIFACT_DESTINATIONS=self.artifact_destinations,
            )
        )

    def _ui(self, settings: MLflowSettings | None = None) -> str | None:
        base = self.ui_url or (settings or self.settings()).tracking_uri or ""
        return redact_uri(base).rstrip("/") if base.startswith(("http://", "https://")) else None

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page in the MLflow UI, or None when there is no UI (a SQLite store)."""
        ui = self._ui()
        return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}" if ui else None

    def model_version_url(self, name: str, version: str) -> str | None:
        """The model version's page in the MLflow UI, or None when there is no UI."""
        ui = self._ui()
        return f"{ui}/#/models/{quote(name, safe='')}/versions/{version}" if ui else None


class KubernetesResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A Kubernetes API server: where cluster training jobs (and KServe endpoints) run.

    Give a kubeconfig (and context), ``in_cluster=True`` inside a pod, or ``host`` and
    ``token`` (``dg.EnvVar(...)``). Unset fields fall back to ``MLRELAY_K8S_*`` and ``KUBECONFIG``.
    """

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    in_cluster: bool | None = None
    host: str | None = None
    token: str | None = None
    verify_ssl: bool | None = None
    request_timeout: float | None = Field(default=None, gt=0)

    def settings(self) -> KubernetesSettings:
        """The core's settings; the token becomes a ``SecretStr`` here."""
        return KubernetesSettings(
            **_given(
                kubeconfig=self.kubeconfig,
                context=self.context,
                namespace=self.namespace,
                in_cluster=self.in_cluster,
                host=self.host,
                token=self.token,
                verify_ssl=self.verify_ssl,
                request_timeout=self.request_timeout,
            )
        )

    def training_backend(self) -> TrainingBackend:
        """A ``KubernetesJobBackend`` (a ``batch/v1`` Job per training run) on this cluster.

        Imported here, when a run needs it: the Kubernetes client costs seconds to import and
        a code location that trains locally should not pay for it.
        """
        from mlrelay.training.kubernetes import KubernetesJobBackend

        backend: TrainingBackend = KubernetesJobBackend(settings=self.settings())
        return backend


class KServeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """KServe on a cluster: where ``backend="kserve"`` deployment assets put InferenceServices.

    The cluster itself is the ``kubernetes`` resource; this one holds what KServe needs on top.
    Unset fields fall back to ``MLRELAY_KSERVE_*``. Values are checked by the core's settings
    (Dagster config has no ``Literal``), so a wrong ``deployment_mode`` is a ``ConfigError``.
    """

    namespace: str | None = None
    deployment_mode: str | None = None  # "Serverless" or "RawDeployment"
    service_account: str | None = None
    ready_timeout: float | None = Field(default=None, gt=0)

    def settings(self) -> KServeSettings:
        return KServeSettings(
            **_given(
                namespace=self.namespace,
                deployment_mode=self.deployment_mode,
                service_account=self.service_account,
                ready_timeout=self.ready_timeout,
            )
        )

    def serving_backend(
        self, kubernetes: KubernetesSettings, mlflow: MLflowSettings
    ) -> ServingBackend:
        """A ``KServeBackend`` rolling InferenceServices out on the ``kubernetes`` cluster."""
        from mlrelay.serving.kserve import KServeBackend

        backend: ServingBackend = KServeBackend(
            settings=self.settings(), kubernetes=kubernetes, mlflow=mlflow
        )
        return backend


class FeastResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A Feast feature repository (the folder holding ``feature_store.yaml``).

    Attributes:
        repo: path of the repository.
        apply_definitions: when assets apply the repo's definitions to its registry, as
            ``feast apply`` would: ``"if_empty"`` (a fresh local repo just works, a governed
            registry is never overwritten), ``"always"`` or ``"never"``.
    """

    repo: str
    apply_definitions: str = "if_empty"

    def request_fields(self) -> dict[str, Any]:
        """What every Feast request takes from this resource; the core's spec checks the values."""
        return {"repo": self.repo, "apply_definitions": self.apply_definitions}
