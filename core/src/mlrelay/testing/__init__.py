"""A Kubernetes API emulator for testing pipelines without a cluster (the ``testing`` extra).

The official ``kubernetes`` client and ``kubectl`` talk to it over real HTTP: an in-memory
store with real API semantics (resourceVersion, generation, status subresource, selectors,
patches, owner-reference garbage collection), watches with bounded history, discovery,
bearer-token RBAC and deterministic fault injection. Use it from pytest::

    pytest_plugins = ["mlrelay.testing.pytest_plugin"]

    def test_my_pipeline(kube_emulator):
        batch = kubernetes.client.BatchV1Api(kube_emulator.api_client())

or directly: ``with KubeEmulator() as emu: emu.write_kubeconfig(path)``.
"""

from mlrelay.testing.auth import ADMIN, READ_ONLY, Rule
from mlrelay.testing.faults import Faults, Hang
from mlrelay.testing.kinds import (
    INFERENCE_SERVICES,
    JOBS,
    PODS,
    PYTORCH_JOBS,
    TRAIN_JOBS,
    ResourceKind,
    custom,
)
from mlrelay.testing.server import KubeEmulator, kubeconfig
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store, WatchEvent

__all__ = [
    "ADMIN",
    "INFERENCE_SERVICES",
    "JOBS",
    "PODS",
    "PYTORCH_JOBS",
    "READ_ONLY",
    "TRAIN_JOBS",
    "ApiError",
    "Faults",
    "Hang",
    "KubeEmulator",
    "ResourceKind",
    "Rule",
    "Store",
    "WatchEvent",
    "custom",
    "kubeconfig",
]
