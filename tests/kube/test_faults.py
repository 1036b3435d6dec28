"""The emulator's fault injection itself: each fault fires exactly as programmed, then is gone."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kube_support import wait_for_watches
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from test_rest import JOB


@pytest.fixture
def batch(kube_emulator):
    return client.BatchV1Api(kube_emulator.api_client(retries=False))


@pytest.fixture
def core(kube_emulator):
    return client.CoreV1Api(kube_emulator.api_client(retries=False))


def test_fault_fail_next_returns_status_then_recovers(kube_emulator, batch):
    kube_emulator.faults.fail_next(2, method="POST", path=r"/jobs$", status=500)
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            batch.create_namespaced_job("default", JOB)
        assert e.value.status == 500
        assert json.loads(e.value.body)["reason"] == "InternalError"
    assert batch.create_namespaced_job("default", JOB).metadata.name == "train"
    assert [f[2] for f in kube_emulator.faults.fired] == ["fail", "fail"]


def test_fault_only_matches_method_and_path(kube_emulator, batch, core):
    kube_emulator.faults.fail_next(method="POST", path=r"/jobs$", status=503)
    core.list_namespace()  # other paths are untouched
    batch.list_namespaced_job("default")  # a GET on the same path is untouched
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", JOB)
    assert e.value.status == 503


def test_fault_429_carries_retry_after(kube_emulator, batch):
    kube_emulator.faults.fail_next(method="POST", path="jobs", status=429, retry_after=7)
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", JOB)
    assert e.value.status == 429
    assert e.value.headers["Retry-After"] == "7"
    assert json.loads(e.value.body)["reason"] == "TooManyRequests"


def test_fault_409_conflict_is_not_already_exists(kube_emulator, batch):
    kube_emulator.faults.fail_next(method="POST", path="jobs", status=409, message="exceeded quota")
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", JOB)
    assert json.loads(e.value.body)["reason"] == "Conflict"


def test_fault_latency_delays_the_answer(kube_emulator, core):
    kube_emulator.faults.add_latency(0.5, method="GET", path="/api/v1/namespaces$")
    started = time.monotonic()
    core.list_namespace()
    assert time.monotonic() - started >= 0.5


def test_fault_hang_holds_request_until_client_timeout_then_release_lets_it_through(
    kube_emulator, core
):
    hang = kube_emulator.faults.hang_next(method="GET", path="/namespaces$")
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.list_namespace(_request_timeout=0.5)
    assert hang.started.is_set()
    hang.release()
    assert core.list_namespace().items  # the next request is answered


def test_fault_hang_is_released_when_the_emulator_stops(kube_emulator, core):
    hang = kube_emulator.faults.hang_next(path="/namespaces$")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            core.list_namespace(_request_timeout=30)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    assert hang.started.wait(10)
    kube_emulator.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert errors  # the connection was closed without an answer


def test_fault_lose_response_commits_the_create(kube_emulator, batch):
    kube_emulator.faults.lose_response_next(method="POST", path="/jobs$")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        batch.create_namespaced_job("default", JOB)
    assert batch.read_namespaced_job("train", "default").metadata.uid  # committed
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", JOB)
    assert json.loads(e.value.body)["reason"] == "AlreadyExists"


def _watch_in_thread(
    emulator, core, events: list, namespace: str = "default", **kwargs
) -> threading.Thread:
    def run() -> None:
        try:
            for e in watch.Watch().stream(core.list_namespaced_config_map, namespace, **kwargs):
                events.append((e["type"], e["object"].metadata.name))
        except ApiException as e:
            events.append(("RAISED", e.status))

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_watches(emulator)
    return thread


def test_fault_stream_faults_for_a_namespace_leave_other_namespaces_watches_open(
    kube_emulator, core
):
    core.create_namespace({"metadata": {"name": "other"}})
    mine: list = []
    theirs: list = []
    rv = core.list_namespaced_config_map("other").metadata.resource_version
    other = _watch_in_thread(
        kube_emulator, core, mine, "other", resource_version=rv, timeout_seconds=30
    )
    default = _watch_in_thread(kube_emulator, core, theirs, timeout_seconds=30)
    wait_for_watches(kube_emulator, 2)
    assert kube_emulator.faults.expire_watches(namespace="other") == 1
    other.join(10)
    assert mine == [("RAISED", 410)]
    assert default.is_alive()
    assert kube_emulator.faults.close_watches(namespace="other") == 0
    assert kube_emulator.faults.close_watches(namespace="default") == 1
    default.join(10)
    assert not default.is_alive()
    assert theirs == []


def test_fault_discard_removes_only_one_namespaces_pending_faults(kube_emulator, batch, core):
    core.create_namespace({"metadata": {"name": "other"}})
    kube_emulator.faults.fail_next(3, method="POST", path="/namespaces/other/jobs$", status=500)
    kube_emulator.faults.fail_next(1, method="POST", path="/namespaces/default/jobs$", status=503)
    assert kube_emulator.faults.discard("other") == 1
    batch.create_namespaced_job("other", JOB)  # its faults are gone
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", JOB)
    assert e.value.status == 503  # another namespace's fault still fires


def test_fault_expire_watches_sends_410_error(kube_emulator, core):
    events: list = []
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    thread = _watch_in_thread(kube_emulator, core, events, resource_version=rv, timeout_seconds=5)
    assert kube_emulator.faults.expire_watches() == 1
    thread.join(10)
    assert events == [("RAISED", 410)]


def test_fault_close_watches_ends_streams_without_events(kube_emulator, core):
    events: list = []
    thread = _watch_in_thread(kube_emulator, core, events, timeout_seconds=30)
    kube_emulator.faults.close_watches()
    thread.join(10)
    assert not thread.is_alive()
    assert events == []


def test_fault_drop_next_event_hides_it_from_watches_only(kube_emulator, core):
    kube_emulator.faults.drop_next_event(
        lambda e: e.type == "MODIFIED" and e.object["metadata"]["name"] == "a"
    )
    events: list = []
    thread = _watch_in_thread(kube_emulator, core, events, timeout_seconds=1)
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})  # dropped
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "2"}})
    thread.join(10)
    assert events == [("ADDED", "a"), ("MODIFIED", "a")]
    assert core.read_namespaced_config_map("a", "default").data == {"x": "2"}
