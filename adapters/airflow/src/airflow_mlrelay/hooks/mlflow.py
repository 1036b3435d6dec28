"""The ``mlflow`` connection: the tracking server (and registry) every step talks to.

Fields: **Tracking URI** (the connection's host: ``https://mlflow.example.com``; a bare host
name gets ``http://``), **Token** (the password: ``MLFLOW_TRACKING_TOKEN``), and the extras
``registry_uri``, ``training_tracking_uri`` (what a training pod uses when it cannot reach the
tracking URI), ``artifact_destinations`` (JSON) and ``ui_url`` (for the extra links).

The hook only turns the connection into ``mlrelay.settings.MLflowSettings``; every MLflow call
is the core's. Without a connection — ``mlflow_conn_id=None``, or the default id when no such
connection is defined — the settings come from the environment exactly as the core reads them
(``MLFLOW_TRACKING_URI``, else a local SQLite store under ``MLRELAY_HOME``), and the log says so.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from mlrelay.settings import MLflowSettings


class MLflowHook(BaseHook):
    """Reads an ``mlflow`` connection into the core's ``MLflowSettings``.

    Args:
        mlflow_conn_id: the connection; ``None`` reads the environment.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str | None = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self._conn: Connection | None = None
        self._looked_up = False

    def get_conn(self) -> MLflowSettings:
        return self.get_settings()

    def get_settings(self) -> MLflowSettings:
        """The connection as settings; the token stays a ``SecretStr`` from here on."""
        from mlrelay.settings import MLflowSettings

        conn = self._connection()
        if conn is None:
            return MLflowSettings()
        extra = conn.extra_dejson
        destinations = extra.get("artifact_destinations")
        if isinstance(destinations, str) and destinations.strip():
            destinations = json.loads(destinations)
        # MLflowSettings takes these three by their environment names (validation aliases).
        values: dict[str, Any] = {
            "tracking_uri": _tracking_uri(conn),
            "registry_uri": extra.get("registry_uri") or None,
            "MLFLOW_TRACKING_TOKEN": conn.password or None,
            "MLRELAY_TRAINING_TRACKING_URI": extra.get("training_tracking_uri") or None,
            "MLRELAY_ARTIFACT_DESTINATIONS": destinations or None,
        }
        return MLflowSettings(**{k: v for k, v in values.items() if v is not None})

    def ui_url(self, settings: MLflowSettings | None = None) -> str | None:
        """Where people open the MLflow UI: the ``ui_url`` extra, else an http(s) tracking URI.

        ``settings``: this connection's, already read (the environment's when there is none).
        """
        conn = self._connection()
        if conn is not None and conn.extra_dejson.get("ui_url"):
            return str(conn.extra_dejson["ui_url"]).rstrip("/")
        uri = (settings or self.get_settings()).display_uri
        return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None

    def test_connection(self) -> tuple[bool, str]:
        """Ask the tracking server's ``/health`` endpoint (the UI's *Test* button)."""
        import httpx

        settings = self.get_settings()
        uri = settings.tracking_uri or ""
        if not uri.startswith(("http://", "https://")):
            return True, f"{settings.display_uri or 'local store'}: no server to reach"
        headers = {}
        if settings.token is not None:
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        try:
            response = httpx.get(f"{uri.rstrip('/')}/health", headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            return False, f"{settings.display_uri}: {type(exc).__name__}"
        return response.is_success, f"{settings.display_uri}: HTTP {response.status_code}"

    def _connection(self) -> Connection | None:
        if not self._looked_up:
            self._looked_up = True
            if self.mlflow_conn_id is not None:
                try:
                    self._conn = self.get_connection(self.mlflow_conn_id)
                except AirflowNotFoundException:
                    if self.mlflow_conn_id != self.default_conn_name:
                        raise
                    self.log.info(
                        "no connection %r: MLflow settings come from the environment "
                        "(MLFLOW_TRACKING_URI, else a local store under MLRELAY_HOME)",
                        self.mlflow_conn_id,
                    )
        return self._conn


def _tracking_uri(conn: Connection) -> str | None:
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        return None
    if "://" in host or host.startswith("databricks"):
        return host
    return f"http://{host}" + (f":{conn.port}" if conn.port else "")
