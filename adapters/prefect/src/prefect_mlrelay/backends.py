"""Where a step runs: one setting switches a pipeline from this machine to a cluster.

``backend="local"`` trains in a local process and serves with the KServe model server on
127.0.0.1; ``"kubernetes"`` (a batch Job), ``"trainjob"`` (Kubeflow Trainer) and ``"pytorchjob"``
(Kubeflow Training Operator) train on the cluster a ``KubernetesCluster`` block describes, and
``"kserve"`` serves through the ``KServeTarget`` block. A backend object built by hand is also
accepted, for everything the names do not cover. Cluster backends are imported only when named.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

from mlrelay.errors import ConfigError
from prefect_mlrelay.blocks import kubernetes_settings

if TYPE_CHECKING:
    from mlrelay.serving.base import ServingBackend
    from mlrelay.settings import MLflowSettings
    from mlrelay.training.backend import TrainingBackend
    from prefect_mlrelay.blocks import KServeTarget

TrainingBackendName = Literal["local", "kubernetes", "trainjob", "pytorchjob"]
ServingBackendName = Literal["local", "kserve"]

_TRAINING: dict[str, tuple[str, str]] = {
    "kubernetes": ("mlrelay.training.kubernetes", "KubernetesJobBackend"),
    "trainjob": ("mlrelay.training.kubeflow", "TrainJobBackend"),
    "pytorchjob": ("mlrelay.training.kubeflow", "PyTorchJobBackend"),
}


def training_backend(
    backend: TrainingBackendName | TrainingBackend, kubernetes: Any = None
) -> TrainingBackend:
    """The training backend a task was asked for (``kubernetes`` describes the cluster)."""
    if not isinstance(backend, str):
        return backend
    if backend == "local":
        from mlrelay.training.local import LocalBackend

        return LocalBackend()
    if backend not in _TRAINING:
        raise ConfigError(
            f"unknown training backend {backend!r}: use one of local, {', '.join(_TRAINING)}",
            field="backend",
        )
    cls = _load(*_TRAINING[backend], field="backend")
    return cls(kubernetes_settings(kubernetes))  # type: ignore[no-any-return]


def serving_backend(
    backend: ServingBackendName | ServingBackend,
    *,
    mlflow: MLflowSettings | None,
    kserve: KServeTarget | None = None,
) -> ServingBackend:
    """The serving backend a task was asked for (``kserve`` describes the target)."""
    if not isinstance(backend, str):
        return backend
    if backend == "local":
        from mlrelay.serving.local import LocalServingBackend

        return LocalServingBackend(settings=mlflow)
    if backend != "kserve":
        raise ConfigError(
            f"unknown serving backend {backend!r}: use local or kserve", field="backend"
        )
    cls = _load("mlrelay.serving.kserve", "KServeBackend", field="backend")
    if kserve is None:
        return cls(mlflow=mlflow)  # type: ignore[no-any-return]
    return cls(  # type: ignore[no-any-return]
        kserve.settings(), kubernetes=kserve.kubernetes_settings(), mlflow=mlflow
    )


def _load(module: str, name: str, *, field: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        missing = getattr(exc, "name", None) or module
        if missing.startswith("mlrelay"):
            raise ConfigError(
                f"{name} is not part of the installed mlrelay ({module} not found)", field=field
            ) from exc
        raise ConfigError(
            f"{name} needs {missing!r}: install it with: pip install 'mlrelay[kubernetes]'",
            field=field,
        ) from exc
