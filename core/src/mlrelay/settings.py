"""Connection settings, read from the environment so the same pipeline runs anywhere.

Every backend takes one of these objects explicitly; ``from_env()`` is a convenience that
reads the variables users of MLflow and Kubernetes already set. Secrets are ``SecretStr``:
their value never appears in ``repr``, logs, ``model_dump(mode="json")`` or error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlrelay._model import DNS1123Name, config_error_from
from mlrelay.errors import ConfigError


class _Settings(BaseSettings):
    """Settings whose bad values raise ``ConfigError`` without echoing the value (maybe a secret)."""

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise config_error_from(exc, spec=type(self).__name__) from None


class LocalSettings(_Settings):
    """Where local backends keep their state (the SQLite MLflow, artifacts, served endpoints).

    Environment: ``MLRELAY_HOME`` (default ``.mlrelay`` in the working directory, like ``mlruns``).
    """

    model_config = SettingsConfigDict(env_prefix="MLRELAY_", frozen=True, extra="ignore")

    home: Path = Path(".mlrelay")

    @property
    def state_dir(self) -> Path:
        """Records of running local deployments, one JSON file each."""
        return self.home.resolve() / "deployments"

    @property
    def mlflow_db(self) -> Path:
        return self.home.resolve() / "mlflow.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.home.resolve() / "artifacts"


class MLflowSettings(_Settings):
    """How to reach the MLflow tracking server and model registry.

    Environment: ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_REGISTRY_URI``,
    ``MLRELAY_ARTIFACT_DESTINATIONS`` (JSON object). When no tracking URI is set, a SQLite store
    under ``MLRELAY_HOME`` is used and the log says so.

    Attributes:
        tracking_uri: where runs and the registry live.
        token: bearer token for a remote server (``MLFLOW_TRACKING_TOKEN``).
        registry_uri: a separate registry, if the registry is not the tracking server.
        training_tracking_uri: the URI a training job should use when it cannot reach
            ``tracking_uri`` (a pod sees the in-cluster service name); defaults to ``tracking_uri``.
        artifact_destinations: maps the prefix of an ``mlflow-artifacts:`` URI onto the store the
            server really writes to (``{"mlflow-artifacts:/": "s3://bucket/mlflow/"}``), because a
            model server cannot read ``mlflow-artifacts:`` URIs and the REST API does not reveal
            the destination.
    """

    # populate_by_name: MLflowSettings(token=...) works as well as the MLFLOW_TRACKING_TOKEN alias
    model_config = SettingsConfigDict(
        env_prefix="MLFLOW_", frozen=True, extra="ignore", populate_by_name=True
    )

    tracking_uri: str | None = None
    token: SecretStr | None = Field(default=None, validation_alias="MLFLOW_TRACKING_TOKEN")
    registry_uri: str | None = None
    training_tracking_uri: str | None = Field(
        default=None, validation_alias="MLRELAY_TRAINING_TRACKING_URI"
    )
    artifact_destinations: dict[str, str] = Field(
        default_factory=dict, validation_alias="MLRELAY_ARTIFACT_DESTINATIONS"
    )

    @field_validator("tracking_uri", "registry_uri", "training_tracking_uri")
    @classmethod
    def _no_inline_password(cls, value: str | None) -> str | None:
        if value and urlsplit(value).password:
            raise ConfigError(
                "put credentials in MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_PASSWORD, "
                "not in the URI (a URI ends up in logs and task metadata)",
                field="tracking_uri",
            )
        return value

    def resolved(self, local: LocalSettings | None = None) -> Self:
        """These settings with ``tracking_uri`` filled in (the local SQLite store if unset)."""
        if self.tracking_uri:
            return self
        local = local or LocalSettings()
        local.home.mkdir(parents=True, exist_ok=True)
        return self.model_copy(update={"tracking_uri": f"sqlite:///{local.mlflow_db}"})

    @property
    def display_uri(self) -> str:
        """The tracking URI with any user name removed: safe for logs and messages."""
        return redact_uri(self.tracking_uri or "")


def redact_uri(uri: str) -> str:
    """Drop user info (``user:password@``) and query strings from a URI before it is shown."""
    parts = urlsplit(uri)
    if not parts.netloc or ("@" not in parts.netloc and not parts.query):
        return uri
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class KubernetesSettings(_Settings):
    """How to reach a Kubernetes API server (used by the cluster backends).

    Environment: ``MLRELAY_K8S_KUBECONFIG`` (else ``KUBECONFIG``), ``MLRELAY_K8S_CONTEXT``,
    ``MLRELAY_K8S_NAMESPACE``, ``MLRELAY_K8S_IN_CLUSTER``, ``MLRELAY_K8S_HOST``,
    ``MLRELAY_K8S_TOKEN``, ``MLRELAY_K8S_CA_FILE``, ``MLRELAY_K8S_REQUEST_TIMEOUT``.

    One of three ways to connect, in this order: ``host`` (+ ``token``, ``ca_file``), then
    ``in_cluster`` (the pod's service account), then ``kubeconfig`` (+ ``context``; the default
    kubeconfig when unset).
    """

    model_config = SettingsConfigDict(env_prefix="MLRELAY_K8S_", frozen=True, extra="ignore")

    kubeconfig: Path | None = None
    context: str | None = None
    namespace: DNS1123Name = "default"
    in_cluster: bool = False
    host: str | None = None
    token: SecretStr | None = None
    ca_file: Path | None = None
    verify_ssl: bool = True
    # The generated client has no timeout by default: a half-open connection would hang forever.
    request_timeout: float = Field(default=30.0, gt=0)


class KServeSettings(_Settings):
    """Where and how InferenceServices are deployed (used by the KServe backend).

    Environment: ``MLRELAY_KSERVE_NAMESPACE``, ``MLRELAY_KSERVE_DEPLOYMENT_MODE``,
    ``MLRELAY_KSERVE_SERVICE_ACCOUNT``, ``MLRELAY_KSERVE_READY_TIMEOUT``.
    """

    model_config = SettingsConfigDict(env_prefix="MLRELAY_KSERVE_", frozen=True, extra="ignore")

    namespace: DNS1123Name = "default"
    deployment_mode: Literal["Serverless", "RawDeployment"] = "Serverless"
    service_account: str | None = None
    ready_timeout: float = Field(default=600.0, gt=0)
