"""The contract every serving backend keeps (local model server today, KServe on a cluster)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mlrelay.serving.spec import Deployment, DeploymentSpec


@runtime_checkable
class ServingBackend(Protocol):
    """Roll model versions out to named endpoints, and back.

    ``deploy`` returns only after the new version is ready, passed its smoke test and took the
    traffic, or raises ``DeploymentFailed`` saying whether the previous version still serves.
    """

    kind: str

    def deploy(self, spec: DeploymentSpec) -> Deployment: ...

    def rollback(self, name: str) -> Deployment: ...

    def undeploy(self, name: str) -> None: ...

    def list(self) -> list[Deployment]: ...
