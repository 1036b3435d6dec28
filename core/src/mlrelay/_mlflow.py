"""One way to reach MLflow for every step: a client built from ``MLflowSettings``.

MLflow reads credentials from process environment variables only (``MLFLOW_TRACKING_TOKEN``),
so a token given in settings is exported into this process's environment when a client is
made. Tracking URIs are shown in logs and errors only through ``redact_uri``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from mlrelay._deps import require
from mlrelay.settings import LocalSettings, MLflowSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("mlrelay.mlflow")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def resolve(settings: MLflowSettings | None, local: LocalSettings | None = None) -> MLflowSettings:
    """Settings from the caller or the environment, with a tracking URI always filled in."""
    settings = settings or MLflowSettings()
    if not settings.tracking_uri:
        settings = settings.resolved(local)
        log.info("MLFLOW_TRACKING_URI is not set: using the local store %s", settings.tracking_uri)
    return settings


def client(settings: MLflowSettings) -> MlflowClient:
    """An ``MlflowClient`` for these settings (``tracking_uri`` must be resolved)."""
    mlflow = require("mlflow", "local")
    if settings.token is not None:
        os.environ["MLFLOW_TRACKING_TOKEN"] = settings.token.get_secret_value()
    return mlflow.MlflowClient(  # type: ignore[no-any-return]
        tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri
    )


def ensure_experiment(
    mlflow_client: MlflowClient, name: str, local: LocalSettings | None = None
) -> str:
    """The id of experiment ``name``, created if missing.

    For a local store (``sqlite:`` or a file path) the artifact location is put under
    ``MLRELAY_HOME`` instead of MLflow's default ``./mlruns`` relative to whatever the working
    directory happens to be, so a model server started elsewhere still finds the artifacts.
    """
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    uri = str(mlflow_client.tracking_uri)
    if "://" not in uri or uri.startswith(("sqlite:", "file:")):
        local = local or LocalSettings()
        location = (local.artifacts_dir / name).as_uri()
    try:
        return str(mlflow_client.create_experiment(name, artifact_location=location))
    except Exception:
        # Another process created it between our get and create: use theirs.
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)
