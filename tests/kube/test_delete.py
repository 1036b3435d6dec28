"""DELETE: propagation policies over owner references, grace periods, finalizers, namespaces."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException
from test_rest import JOB


def owned_pod(name: str, owner) -> dict:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": owner.metadata.name,
                    "uid": owner.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [{"name": "main", "image": "python:3.11"}],
            "restartPolicy": "Never",
        },
    }


def pod_names(core) -> list[str]:
    return [p.metadata.name for p in core.list_namespaced_pod("default").items]


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_deleting_a_job_deletes_its_pods(core, batch, policy):
    job = batch.create_namespaced_job("default", JOB)
    core.create_namespaced_pod("default", owned_pod("train-1", job))
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "bystander"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    batch.delete_namespaced_job("train", "default", propagation_policy=policy)
    assert pod_names(core) == ["bystander"]
    with pytest.raises(ApiException):
        batch.read_namespaced_job("train", "default")


def test_orphan_keeps_pods_and_strips_owner_reference(core, batch):
    job = batch.create_namespaced_job("default", JOB)
    core.create_namespaced_pod("default", owned_pod("train-1", job))
    batch.delete_namespaced_job("train", "default", propagation_policy="Orphan")
    left = core.read_namespaced_pod("train-1", "default")
    assert left.metadata.owner_references is None


def test_job_delete_without_policy_orphans_pods_like_the_api_server(core, batch):
    job = batch.create_namespaced_job("default", JOB)
    core.create_namespaced_pod("default", owned_pod("train-1", job))
    batch.delete_namespaced_job("train", "default")
    assert pod_names(core) == ["train-1"]


def test_foreground_keeps_owner_with_finalizer_until_graceful_dependents_are_removed(
    kube_emulator, core, batch
):
    terminating: list[dict] = []
    kube_emulator.store.set_deletion_handler("pods", terminating.append)
    job = batch.create_namespaced_job("default", JOB)
    core.create_namespaced_pod("default", owned_pod("train-1", job))
    batch.delete_namespaced_job("train", "default", propagation_policy="Foreground")
    owner = batch.read_namespaced_job("train", "default")
    assert owner.metadata.deletion_timestamp is not None
    assert owner.metadata.finalizers == ["foregroundDeletion"]
    assert [p["metadata"]["name"] for p in terminating] == ["train-1"]
    assert terminating[0]["metadata"]["deletionGracePeriodSeconds"] == 30
    kube_emulator.store.remove("pods", "default", "train-1")  # what the kubelet does when done
    with pytest.raises(ApiException):
        batch.read_namespaced_job("train", "default")


def test_grace_period_is_recorded_and_handler_decides_removal(kube_emulator, core):
    seen: list[dict] = []
    kube_emulator.store.set_deletion_handler("pods", seen.append)
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    core.delete_namespaced_pod("p", "default", grace_period_seconds=5)
    still = core.read_namespaced_pod("p", "default")
    assert still.metadata.deletion_grace_period_seconds == 5
    assert seen[0]["metadata"]["deletionGracePeriodSeconds"] == 5
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)  # force: gone at once
    assert pod_names(core) == []


def test_finalizer_blocks_removal_until_cleared(core):
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm", "finalizers": ["x.io/keep"]}}
    )
    core.delete_namespaced_config_map("cm", "default")
    held = core.read_namespaced_config_map("cm", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("cm", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("cm", "default")
    assert e.value.status == 404


def test_deleting_a_namespace_deletes_its_objects(core):
    core.create_namespace({"metadata": {"name": "scratch"}})
    core.create_namespaced_config_map("scratch", {"metadata": {"name": "cm"}})
    core.delete_namespace("scratch")
    assert core.list_config_map_for_all_namespaces().items == []


def test_delete_collection_by_label(core):
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"app": app}}}
        )
    core.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c"]


def test_delete_precondition_on_uid_is_409(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map("cm", "default", body={"preconditions": {"uid": "other"}})
    assert e.value.status == 409


def test_foreground_delete_event_order_seen_by_a_store_subscriber(kube_emulator, core, batch):
    seen: list[tuple[str, str, bool]] = []
    kube_emulator.store.subscribe(
        lambda e: seen.append(
            (e.type, e.object["metadata"]["name"], "deletionTimestamp" in e.object["metadata"])
        ),
        kinds=["jobs.batch", "pods"],
    )
    job = batch.create_namespaced_job("default", JOB)
    core.create_namespaced_pod("default", owned_pod("train-1", job))
    batch.delete_namespaced_job("train", "default", propagation_policy="Foreground")
    assert seen[2:] == [
        ("MODIFIED", "train", True),  # owner marked, foregroundDeletion finalizer added
        ("DELETED", "train-1", False),  # dependents go first
        ("MODIFIED", "train", True),  # finalizer removed by the garbage collector
        ("DELETED", "train", True),
    ]


def test_job_delete_answers_a_success_status_and_pod_delete_the_pod(kube_emulator, core, batch):
    batch.create_namespaced_job("default", JOB)
    raw = batch.delete_namespaced_job(
        "train", "default", propagation_policy="Background", _preload_content=False
    )
    status = json.loads(raw.data)  # the wire format: client versions deserialise it differently
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert status["details"]["name"] == "train"
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    deleted = core.delete_namespaced_pod("p", "default")
    assert deleted.metadata.name == "p"
