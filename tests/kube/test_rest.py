"""REST semantics through the official client's typed APIs (CoreV1Api, BatchV1Api, CustomObjectsApi)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "train", "labels": {"app": "fraud"}},
    "spec": {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "python:3.11", "command": ["python", "-V"]}
                ],
            }
        }
    },
}


def pod(name: str, **labels: str) -> dict:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "python:3.11"}]},
    }


def status_of(excinfo) -> dict:
    return json.loads(excinfo.value.body)


def test_create_assigns_uid_timestamp_generation_and_global_resource_version(core, batch):
    p = core.create_namespaced_pod("default", pod("a"))
    job = batch.create_namespaced_job("default", JOB)
    assert p.metadata.uid
    assert p.metadata.uid != job.metadata.uid
    assert p.metadata.creation_timestamp is not None
    assert job.metadata.generation == 1
    # One counter across kinds, like etcd's revision.
    assert int(job.metadata.resource_version) == int(p.metadata.resource_version) + 1


def test_job_create_defaults_selector_and_pod_labels(batch):
    job = batch.create_namespaced_job("default", JOB)
    uid = job.metadata.uid
    assert job.spec.backoff_limit == 6
    assert job.spec.completions == 1
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert job.spec.template.metadata.labels["job-name"] == "train"


def test_duplicate_create_is_409_already_exists_status(core):
    core.create_namespaced_pod("default", pod("a"))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", pod("a"))
    assert e.value.status == 409
    body = status_of(e)
    assert body["kind"] == "Status"
    assert body["reason"] == "AlreadyExists"
    assert body["details"] == {"name": "a", "kind": "pods"}


def test_get_missing_is_404_not_found_status_naming_group(batch):
    with pytest.raises(ApiException) as e:
        batch.read_namespaced_job("nope", "default")
    body = status_of(e)
    assert (e.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'jobs.batch "nope" not found'


def test_invalid_name_is_422_with_field_cause(core):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    body = status_of(e)
    assert (e.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert "RFC 1123" in body["message"]


def test_job_without_never_or_onfailure_restart_policy_is_422(batch):
    bad = json.loads(json.dumps(JOB))
    del bad["spec"]["template"]["spec"]["restartPolicy"]
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", bad)
    body = status_of(e)
    assert e.value.status == 422
    assert body["message"].startswith(
        'Job.batch "train" is invalid: spec.template.spec.restartPolicy'
    )


def test_pod_without_containers_is_422_required(dyn):
    # The typed client validates V1PodSpec locally, so send the raw body with the dynamic client.
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    with pytest.raises(ApiException) as e:
        pods.create(body={"metadata": {"name": "x"}, "spec": {}}, namespace="default")
    assert e.value.status == 422
    assert status_of(e)["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.containers",
    }


def test_create_in_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("ghost", {"metadata": {"name": "cm"}})
    assert status_of(e)["message"] == 'namespaces "ghost" not found'


def test_list_carries_resource_version_and_label_selectors_filter(core):
    core.create_namespaced_pod("default", pod("a", app="x", tier="web"))
    core.create_namespaced_pod("default", pod("b", app="y"))
    core.create_namespaced_pod("default", pod("c"))

    def names(selector: str) -> list[str]:
        return [
            p.metadata.name
            for p in core.list_namespaced_pod("default", label_selector=selector).items
        ]

    result = core.list_namespaced_pod("default")
    assert int(result.metadata.resource_version) >= 3
    assert names("app=x") == ["a"]
    assert names("app==y") == ["b"]
    assert names("app!=x") == ["b", "c"]
    assert names("app in (x,y)") == ["a", "b"]
    assert names("app notin (x)") == ["b", "c"]
    assert names("app") == ["a", "b"]
    assert names("!app") == ["c"]
    assert names("app=x,tier=web") == ["a"]


def test_field_selectors_on_name_and_pod_phase_and_unsupported_field_is_400(core, kube_emulator):
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("default", pod("b"))
    kube_emulator.store.update_status("pods", "default", "b", {"phase": "Running"})
    by_name = core.list_namespaced_pod("default", field_selector="metadata.name=a").items
    running = core.list_namespaced_pod("default", field_selector="status.phase=Running").items
    assert [p.metadata.name for p in by_name] == ["a"]
    assert [p.metadata.name for p in running] == ["b"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert e.value.status == 400


def test_list_across_namespaces(core):
    core.create_namespace({"metadata": {"name": "team-a"}})
    core.create_namespaced_config_map("team-a", {"metadata": {"name": "one"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    names = sorted(c.metadata.name for c in core.list_config_map_for_all_namespaces().items)
    assert names == ["one", "two"]


def test_put_with_stale_resource_version_is_409_conflict(core):
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("cm", "default", created)
    assert updated.data == {"a": "2"}
    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("cm", "default", created)
    body = status_of(e)
    assert (e.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]


def test_generation_bumps_on_spec_change_only(batch):
    job = batch.create_namespaced_job("default", JOB)
    relabelled = batch.patch_namespaced_job(
        "train", "default", {"metadata": {"labels": {"x": "y"}}}
    )
    assert relabelled.metadata.generation == 1
    assert int(relabelled.metadata.resource_version) > int(job.metadata.resource_version)
    resized = batch.patch_namespaced_job("train", "default", {"spec": {"parallelism": 2}})
    assert resized.metadata.generation == 2


def test_status_subresource_isolates_status_from_spec(batch):
    batch.create_namespaced_job("default", JOB)
    ignored = batch.patch_namespaced_job("train", "default", {"status": {"active": 5}})
    assert ignored.status.active is None
    done = batch.patch_namespaced_job_status(
        "train", "default", {"status": {"succeeded": 1}, "spec": {"parallelism": 9}}
    )
    assert done.status.succeeded == 1
    assert done.spec.parallelism == 1
    assert done.metadata.generation == 1


def test_merge_json_and_strategic_patches(core, dyn):
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}}
    )
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")

    def patched(body, content_type):
        cms.patch(body=body, name="cm", namespace="default", content_type=content_type)
        return core.read_namespaced_config_map("cm", "default").data

    assert patched({"data": {"b": None, "c": "3"}}, "application/merge-patch+json") == {
        "a": "1",
        "c": "3",
    }
    assert patched({"data": {"d": "4"}}, "application/strategic-merge-patch+json")["d"] == "4"
    ops = [{"op": "replace", "path": "/data/a", "value": "9"}, {"op": "remove", "path": "/data/c"}]
    assert patched(ops, "application/json-patch+json") == {"a": "9", "d": "4"}
    with pytest.raises(ApiException) as e:
        patched([{"op": "remove", "path": "/data/zzz"}], "application/json-patch+json")
    assert e.value.status == 422


def test_server_side_apply_creates_then_updates(core, dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": {"k": "v1"},
    }
    cms.server_side_apply(body=doc, namespace="default", field_manager="tests")
    doc["data"]["k"] = "v2"
    cms.server_side_apply(body=doc, namespace="default", field_manager="tests")
    assert core.read_namespaced_config_map("applied", "default").data == {"k": "v2"}
    with pytest.raises(ApiException) as e:
        cms.server_side_apply(body=doc, namespace="default")
    assert e.value.status == 422


def test_secret_string_data_is_stored_base64(core):
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"token": "hunter2"}}
    )
    secret = core.read_namespaced_secret("s", "default")
    assert secret.data == {"token": "aHVudGVyMg=="}
    assert secret.type == "Opaque"


def test_custom_resource_crud_with_status_subresource(custom):
    args = ("serving.kserve.io", "v1beta1", "default", "inferenceservices")
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "fraud"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}},
    }
    created = custom.create_namespaced_custom_object(*args, isvc)
    assert created["metadata"]["generation"] == 1
    custom.patch_namespaced_custom_object_status(
        *args, "fraud", {"status": {"url": "http://fraud"}}
    )
    got = custom.get_namespaced_custom_object(*args, "fraud")
    assert got["status"] == {"url": "http://fraud"}
    listed = custom.list_namespaced_custom_object(*args)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["fraud"]
    custom.delete_namespaced_custom_object(*args, "fraud")
    with pytest.raises(ApiException) as e:
        custom.get_namespaced_custom_object(*args, "fraud")
    assert status_of(e)["message"] == 'inferenceservices.serving.kserve.io "fraud" not found'


def test_unregistered_custom_group_is_404(custom):
    with pytest.raises(ApiException) as e:
        custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert e.value.status == 404
