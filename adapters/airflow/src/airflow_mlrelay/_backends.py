"""Backends by name, so an operator argument (and a serialised trigger) can say where a step runs.

``backend="local"`` runs on the worker; the cluster names build the core's cluster backends
from the ``kubernetes`` connection. A dotted path (``"my_pkg.backends:MyBackend"``) names any
class that keeps the core's backend contract. Everything is imported when a task runs, never
when a DAG file is parsed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

log = logging.getLogger("airflow_mlrelay")

if TYPE_CHECKING:
    from mlrelay.serving.base import ServingBackend
    from mlrelay.settings import MLflowSettings
    from mlrelay.training.backend import TrainingBackend

TRAINING = {
    "local": "mlrelay.training.local:LocalBackend",
    "kubernetes": "mlrelay.training.kubernetes:KubernetesJobBackend",
    "trainjob": "mlrelay.training.kubeflow:TrainJobBackend",
    "pytorchjob": "mlrelay.training.kubeflow:PyTorchJobBackend",
}
SERVING = {
    "local": "mlrelay.serving.local:LocalServingBackend",
    "kserve": "mlrelay.serving.kserve:KServeBackend",
}


def training_backend(
    kind: str,
    options: Mapping[str, Any] | None = None,
    *,
    kubernetes_conn_id: str | None = None,
    namespace: str | None = None,
) -> TrainingBackend:
    """The training backend ``kind`` with ``options`` as its keyword arguments.

    The cluster backends get ``settings=`` from the Kubernetes connection unless ``options`` has
    it; a class named by dotted path gets ``options`` only.
    """
    cls = _load(kind, TRAINING)
    kwargs = dict(options or {})
    if kind in TRAINING and kind != "local":
        if "settings" not in kwargs:
            from airflow_mlrelay.hooks.kubernetes import KubernetesSettingsHook

            hook = KubernetesSettingsHook(kubernetes_conn_id, namespace)
            kwargs["settings"] = hook.get_settings()
        if isinstance(kwargs.get("limits"), Mapping):  # JSON in a serialised trigger
            from mlrelay.training.podstate import Limits

            kwargs["limits"] = Limits(**kwargs["limits"])
    backend: TrainingBackend = cls(**kwargs)
    return backend


def serving_backend(
    kind: str,
    options: Mapping[str, Any] | None = None,
    *,
    mlflow: MLflowSettings,
    kubernetes_conn_id: str | None = None,
    namespace: str | None = None,
) -> ServingBackend:
    """The serving backend ``kind``: the local model server, or KServe on the cluster."""
    cls = _load(kind, SERVING)
    kwargs = dict(options or {})
    if kind == "local":
        kwargs.setdefault("settings", mlflow)
    elif kind in SERVING:  # KServe: its constructor is settled with the KServe backend (issue 5)
        from airflow_mlrelay.hooks.kubernetes import KubernetesSettingsHook

        hook = KubernetesSettingsHook(kubernetes_conn_id, namespace)
        kwargs.setdefault("settings", hook.get_kserve_settings())
        kwargs.setdefault("kubernetes", hook.get_settings())
        kwargs.setdefault("mlflow", mlflow)
    backend: ServingBackend = cls(**kwargs)
    return backend


def _load(kind: str, known: Mapping[str, str]) -> Any:
    from mlrelay.errors import ConfigError

    target = known.get(kind, kind)
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ConfigError(
            f"unknown backend {kind!r}: use one of {', '.join(known)} or 'package.module:Class'",
            field="backend",
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(
                f"backend {kind!r} is not available: {module_name} cannot be imported "
                "(is your mlrelay recent enough?)",
                field="backend",
            ) from exc
        raise
    return getattr(module, attr)
