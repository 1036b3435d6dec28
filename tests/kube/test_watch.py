"""WATCH through ``kubernetes.watch.Watch`` and raw HTTP: ordering, resume, expiry, bookmarks."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from mlrelay.testing import KubeEmulator


def cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"v": "1"}}


def collect(core, **kwargs) -> list[tuple[str, str]]:
    w = watch.Watch()
    return [
        (e["type"], e["object"].metadata.name)
        for e in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=1, **kwargs)
    ]


def raw_watch(emu, path: str, params: dict[str, str]) -> httpx.Response:
    """A watch request read as bytes on the wire, not through a client that interprets it."""
    return httpx.get(
        f"{emu.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {emu.token}"},
        timeout=5,
        verify=str(emu.ca_file),
    )


def test_watch_from_list_resource_version_sees_changes_in_commit_order(core):
    core.create_namespaced_config_map("default", cm("before"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", cm("a"))
    core.patch_namespaced_config_map("a", "default", {"data": {"v": "2"}})
    core.delete_namespaced_config_map("a", "default")
    assert collect(core, resource_version=rv) == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]


def test_watch_without_resource_version_starts_with_synthetic_added(core):
    core.create_namespaced_config_map("default", cm("x"))
    core.create_namespaced_config_map("default", cm("y"))
    assert collect(core) == [("ADDED", "x"), ("ADDED", "y")]
    assert collect(core, resource_version="0") == [("ADDED", "x"), ("ADDED", "y")]


def test_watch_delivers_live_events_and_timeout_ends_stream(core):
    def later():
        core.create_namespaced_config_map("default", cm("live"))

    timer = threading.Timer(0.2, later)
    timer.start()
    try:
        assert collect(core) == [("ADDED", "live")]
    finally:
        timer.join()


def test_label_selector_watch_sees_object_leaving_selection_as_deleted(core):
    core.create_namespaced_config_map("default", cm("a", app="x"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "y"}}})
    core.create_namespaced_config_map("default", cm("b", app="y"))
    assert collect(core, resource_version=rv, label_selector="app=x") == [("DELETED", "a")]


def test_watch_with_compacted_resource_version_gets_410_expired():
    with KubeEmulator(history=3) as emu:
        core = client.CoreV1Api(emu.api_client())
        start = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(5):
            core.create_namespaced_config_map("default", cm(f"c{i}"))
        # With timeout_seconds the official client raises on the ERROR 410 event.
        with pytest.raises(ApiException) as e:
            collect(core, resource_version=start)
        assert e.value.status == 410
        latest = core.list_namespaced_config_map("default").metadata.resource_version
        assert collect(core, resource_version=latest) == []


def test_expired_watch_is_one_error_event_on_a_200_stream():
    with KubeEmulator(history=2) as emu:
        core = client.CoreV1Api(emu.api_client())
        for i in range(4):
            core.create_namespaced_config_map("default", cm(f"c{i}"))
        r = raw_watch(
            emu, "/api/v1/namespaces/default/configmaps", {"watch": "1", "resourceVersion": "1"}
        )
        assert r.status_code == 200
        event = json.loads(r.text.splitlines()[0])
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410
        assert event["object"]["reason"] == "Expired"
        assert event["object"]["message"].startswith("too old resource version: 1 (")


def test_bookmarks_carry_resource_version_when_allowed(kube_emulator, core):
    r = raw_watch(
        kube_emulator,
        "/api/v1/namespaces/default/configmaps",
        {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "1"},
    )
    events = [json.loads(line) for line in r.text.splitlines()]
    assert events
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert (
        int(events[0]["object"]["metadata"]["resourceVersion"])
        == kube_emulator.store.resource_version
    )


def test_no_bookmarks_unless_asked(kube_emulator):
    r = raw_watch(kube_emulator, "/api/v1/pods", {"watch": "True", "timeoutSeconds": "1"})
    assert r.text == ""


def test_dynamic_client_watches_custom_resources(kube_emulator):
    dyn = dynamic.DynamicClient(kube_emulator.api_client())
    trainjobs = dyn.resources.get(api_version="trainer.kubeflow.org/v1alpha1", kind="TrainJob")
    trainjobs.create(
        body={
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "tj"},
            "spec": {},
        },
        namespace="default",
    )
    events = [
        (e["type"], e["object"].metadata.name)
        for e in trainjobs.watch(namespace="default", timeout=1)
    ]
    assert events == [("ADDED", "tj")]


def test_store_subscribers_see_every_commit_in_order(kube_emulator, core):
    seen: list[tuple[str, str, int]] = []
    unsubscribe = kube_emulator.store.subscribe(
        lambda e: seen.append((e.type, e.object["metadata"]["name"], e.resource_version)),
        kinds=["configmaps"],
    )
    core.create_namespaced_config_map("default", cm("a"))
    core.delete_namespaced_config_map("a", "default")
    unsubscribe()
    core.create_namespaced_config_map("default", cm("b"))
    assert [s[:2] for s in seen] == [("ADDED", "a"), ("DELETED", "a")]
    assert seen[0][2] < seen[1][2]
