"""One way to reach MLflow for every step: a client built from ``MLflowSettings``.

MLflow reads credentials from process environment variables only (``MLFLOW_TRACKING_TOKEN``),
so a token given in settings is exported into this process's environment when a client is
made. Tracking URIs are shown in logs and errors only through ``redact_uri``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from mlrelay._deps import require
from mlrelay.settings import LocalSettings, MLflowSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("mlrelay.mlflow")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Download progress bars are written to stderr character by character: noise in task logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


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
    _skip_feast_header_provider()
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


def _skip_feast_header_provider() -> None:
    """Keep MLflow from importing all of Feast on its first REST call.

    Feast registers an ``mlflow.request_header_provider`` entry point; MLflow loads every such
    plugin when it builds its first request, and loading Feast's imports the whole ``feast``
    package (6-16 s measured here) in every process that talks to a tracking server. The
    provider only adds headers inside Feast's own MLflow data-source calls (a context variable
    Feast sets), so when Feast is not imported in this process it is skipped. MLflow has no
    setting for this; the filter wraps its entry-point lookup before the registry reads it.
    """
    if "feast" in sys.modules or "mlflow.tracking.request_header.registry" in sys.modules:
        return
    from mlflow.utils import plugins

    original = plugins.get_entry_points
    if getattr(original, "_mlrelay_filtered", False):
        return

    def get_entry_points(group: str) -> list[Any]:
        found: list[Any] = list(original(group))
        if group != "mlflow.request_header_provider":
            return found
        return [ep for ep in found if not ep.value.startswith("feast.")]

    get_entry_points._mlrelay_filtered = True  # type: ignore[attr-defined]
    plugins.get_entry_points = get_entry_points
