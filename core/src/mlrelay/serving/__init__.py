"""Deploy: serve a registered model version under a stable name, blue/green, smoke-tested.

``deploy(spec)`` rolls a version out and returns only once it answers; a failed rollout leaves
the previous version serving and says so (``DeploymentFailed.rolled_back``). Without a backend,
the local one is used (the real KServe model server on 127.0.0.1) and the log says so.

Importing this package is cheap: KServe, MLflow and pandas are imported when a rollout runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mlrelay.serving.base import ServingBackend
from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec, Replace, Strategy

if TYPE_CHECKING:
    from mlrelay.serving.kserve import KServeBackend
    from mlrelay.serving.local import LocalServingBackend

__all__ = [
    "Canary",
    "Deployment",
    "DeploymentSpec",
    "KServeBackend",
    "LocalServingBackend",
    "Replace",
    "ServingBackend",
    "Strategy",
    "deploy",
    "list_deployments",
    "rollback",
    "undeploy",
]

log = logging.getLogger("mlrelay.serving")


def __getattr__(name: str) -> object:
    if name == "LocalServingBackend":
        from mlrelay.serving.local import LocalServingBackend

        return LocalServingBackend
    if name == "KServeBackend":
        from mlrelay.serving.kserve import KServeBackend

        return KServeBackend
    raise AttributeError(f"module 'mlrelay.serving' has no attribute {name!r}")


def _backend(backend: ServingBackend | None) -> ServingBackend:
    if backend is not None:
        return backend
    from mlrelay.serving.local import LocalServingBackend

    log.info(
        "no serving backend given: using LocalServingBackend (the KServe model server on 127.0.0.1)"
    )
    return LocalServingBackend()


def deploy(spec: DeploymentSpec, backend: ServingBackend | None = None) -> Deployment:
    """Roll ``spec.model`` out to the endpoint ``spec.name`` (see ``ServingBackend.deploy``)."""
    return _backend(backend).deploy(spec)


def rollback(name: str, backend: ServingBackend | None = None) -> Deployment:
    """Serve the version that ``name`` served before the last rollout again."""
    return _backend(backend).rollback(name)


def undeploy(name: str, backend: ServingBackend | None = None) -> None:
    """Stop serving ``name``; undeploying a name that is not deployed does nothing."""
    _backend(backend).undeploy(name)


def list_deployments(backend: ServingBackend | None = None) -> list[Deployment]:
    """The endpoints that currently serve."""
    return _backend(backend).list()
