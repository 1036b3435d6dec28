"""Kubernetes settings from the cncf-kubernetes provider's ``kubernetes`` connection.

mlrelay does not define a connection type of its own for clusters: the ``kubernetes``
connection (in-cluster, kubeconfig path, inline kubeconfig, context, namespace, disable SSL
verification) is what Airflow users already have. Its fields are read through the provider's
``KubernetesHook``, imported only when a cluster backend runs. Without the provider, or with
``kubernetes_conn_id=None``, the settings come from the environment as the core reads them
(``MLRELAY_K8S_*``, else the client's defaults: ``KUBECONFIG``, ``~/.kube/config``, in-cluster).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlrelay.settings import KServeSettings, KubernetesSettings

_KUBECONFIG_DIR: Path | None = None  # this process's inline kubeconfigs (see _private_kubeconfig)
_FIELDS = (
    "in_cluster", "kube_config_path", "kube_config", "cluster_context", "namespace",
    "disable_verify_ssl",
)  # fmt: skip


class KubernetesSettingsHook(BaseHook):
    """Reads a ``kubernetes`` connection into the core's ``KubernetesSettings``.

    Args:
        kubernetes_conn_id: the connection; ``None`` reads the environment.
        namespace: overrides the connection's namespace.
    """

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "kubernetes_default"

    def __init__(
        self, kubernetes_conn_id: str | None = default_conn_name, namespace: str | None = None
    ) -> None:
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace

    def get_conn(self) -> KubernetesSettings:
        return self.get_settings()

    def get_settings(self) -> KubernetesSettings:
        from mlrelay.settings import KubernetesSettings

        fields = self._fields()
        values: dict[str, Any] = {}
        if _true(fields.get("in_cluster")):
            values["in_cluster"] = True
        if fields.get("kube_config_path"):
            values["kubeconfig"] = fields["kube_config_path"]
        elif fields.get("kube_config"):
            values["kubeconfig"] = _private_kubeconfig(fields["kube_config"])
        if fields.get("cluster_context"):
            values["context"] = fields["cluster_context"]
        if self.namespace or fields.get("namespace"):
            values["namespace"] = self.namespace or fields["namespace"]
        if _true(fields.get("disable_verify_ssl")):
            values["verify_ssl"] = False
        return KubernetesSettings(**values)

    def get_kserve_settings(self, **overrides: Any) -> KServeSettings:
        """KServe settings in the same namespace (``overrides``: any ``KServeSettings`` field)."""
        from mlrelay.settings import KServeSettings

        namespace = self.get_settings().namespace
        return KServeSettings(**{"namespace": namespace, **overrides})

    def _fields(self) -> dict[str, Any]:
        if self.kubernetes_conn_id is None:
            return {}
        try:
            from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        except ImportError:
            self.log.info(
                "apache-airflow-providers-cncf-kubernetes is not installed: Kubernetes settings "
                "come from the environment (MLRELAY_K8S_*, KUBECONFIG, in-cluster)"
            )
            return {}
        # _get_field is how the provider itself reads its fields (old prefixed names included);
        # a missing "kubernetes_default" reads as an empty connection there, as here.
        hook = KubernetesHook(conn_id=self.kubernetes_conn_id)
        return {name: hook._get_field(name) for name in _FIELDS}  # type: ignore[no-untyped-call]


def _true(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def _private_kubeconfig(content: str | dict[str, Any]) -> Path:
    """Write an inline kubeconfig to a file only this user can read, once per content.

    The core reads a kubeconfig by path, and may read it again later (to reload rotated
    credentials), so the file lives as long as this process: in a private folder that is
    removed when the process exits. Naming the file by the content's hash keeps a long-running
    triggerer from writing one file per trigger.
    """
    global _KUBECONFIG_DIR
    text = json.dumps(content) if isinstance(content, dict) else str(content)
    if _KUBECONFIG_DIR is None:
        _KUBECONFIG_DIR = Path(tempfile.mkdtemp(prefix="mlrelay-kubeconfig-"))  # mode 0700
        atexit.register(shutil.rmtree, _KUBECONFIG_DIR, ignore_errors=True)
    path = _KUBECONFIG_DIR / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.kubeconfig"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=_KUBECONFIG_DIR)  # created 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return path
