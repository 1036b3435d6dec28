"""Typed and dynamic clients of the official ``kubernetes`` package on the ``kube_emulator``
fixture, which comes from the emulator's public pytest plugin (enabled in ``tests/conftest.py``
exactly as a user's project enables it)."""

import pytest
from kubernetes import client, dynamic


@pytest.fixture
def core(kube_emulator):
    """The official client's typed core/v1 API on the emulator."""
    return client.CoreV1Api(kube_emulator.api_client())


@pytest.fixture
def batch(kube_emulator):
    return client.BatchV1Api(kube_emulator.api_client())


@pytest.fixture
def custom(kube_emulator):
    return client.CustomObjectsApi(kube_emulator.api_client())


@pytest.fixture
def dyn(kube_emulator):
    """The dynamic client: it reads discovery first, as kubectl does."""
    return dynamic.DynamicClient(kube_emulator.api_client())
