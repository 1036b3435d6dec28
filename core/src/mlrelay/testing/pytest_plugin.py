"""pytest fixtures for the Kubernetes emulator; enable with
``pytest_plugins = ["mlrelay.testing.pytest_plugin"]``.

``kube_emulator`` is function-scoped: each test gets an empty cluster (starting one takes a few
milliseconds), its own faults and tokens, and nothing leaks between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlrelay.testing.server import KubeEmulator, default_emulator


def _running(emulator: KubeEmulator, tmp_path: Path) -> Iterator[KubeEmulator]:
    with emulator:
        emulator.write_kubeconfig(tmp_path / "kubeconfig")
        yield emulator


@pytest.fixture
def kube_emulator(tmp_path: Path) -> Iterator[KubeEmulator]:
    """A running emulator serving the built-ins plus KServe and Kubeflow custom resources.

    Pods are objects only (no kubelet): use ``kube_cluster`` for pods that run.
    Attributes used by tests: ``url``, ``token`` (admin), ``kubeconfig`` (a path),
    ``api_client(token=None)``, ``faults``, ``store``, ``add_token(user, rules)``.
    """
    yield from _running(default_emulator(bookmark_interval=0.2, cluster=False), tmp_path)


@pytest.fixture
def kube_cluster(tmp_path: Path) -> Iterator[KubeEmulator]:
    """Like ``kube_emulator``, with a Job controller and a kubelet: pods run as local processes
    (``python:*`` images run this interpreter), their logs are served, and every process is
    stopped with the emulator."""
    yield from _running(default_emulator(bookmark_interval=0.2), tmp_path)


@pytest.fixture
def kubeconfig_path(kube_emulator: KubeEmulator) -> Path:
    assert kube_emulator.kubeconfig is not None
    return kube_emulator.kubeconfig
