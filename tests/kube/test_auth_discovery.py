"""Bearer tokens, RBAC rules with subresources, SelfSubjectAccessReview and discovery documents."""

from __future__ import annotations

import json

import httpx
import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException
from test_rest import JOB

from mlrelay.testing import KubeEmulator, Rule


def test_missing_or_unknown_token_is_401_status(kube_emulator):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = httpx.get(
            f"{kube_emulator.url}/api/v1/pods", headers=headers, verify=str(kube_emulator.ca_file)
        )
        assert r.status_code == 401
        assert r.json()["reason"] == "Unauthorized"


def test_revoked_token_is_401_from_the_next_request(kube_emulator):
    token = kube_emulator.add_token("rotating", (Rule(),))
    core = client.CoreV1Api(kube_emulator.api_client(token))
    core.list_namespace()
    kube_emulator.auth.revoke(token)
    with pytest.raises(ApiException) as e:
        core.list_namespace()
    assert e.value.status == 401


def test_rules_scope_verbs_groups_namespaces_and_subresources(kube_emulator):
    token = kube_emulator.add_token(
        "ci",
        (
            Rule(
                verbs=("create", "get"),
                api_groups=("batch",),
                resources=("jobs",),
                namespaces=("ml",),
            ),
            Rule(
                verbs=("patch",),
                api_groups=("batch",),
                resources=("jobs/status",),
                namespaces=("ml",),
            ),
        ),
    )
    admin = client.CoreV1Api(kube_emulator.api_client())
    admin.create_namespace({"metadata": {"name": "ml"}})
    batch = client.BatchV1Api(kube_emulator.api_client(token))
    batch.create_namespaced_job("ml", JOB)
    batch.patch_namespaced_job_status("train", "ml", {"status": {"active": 1}})
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job("default", JOB)
    body = json.loads(e.value.body)
    assert (e.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'jobs.batch is forbidden: User "ci" cannot create resource "jobs" '
        'in API group "batch" in the namespace "default"'
    )
    with pytest.raises(ApiException) as e:
        batch.patch_namespaced_job("train", "ml", {"spec": {"parallelism": 2}})
    assert json.loads(e.value.body)["message"].startswith(
        'jobs.batch "train" is forbidden: User "ci" cannot patch'
    )
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(kube_emulator.api_client(token)).list_namespace()
    assert "at the cluster scope" in json.loads(e.value.body)["message"]


def test_self_subject_access_review_answers_for_the_caller(kube_emulator):
    token = kube_emulator.add_token(
        "viewer", (Rule(verbs=("get",), resources=("pods", "pods/log")),)
    )
    authz = client.AuthorizationV1Api(kube_emulator.api_client(token))

    def can(verb: str, resource: str, subresource: str = "") -> bool:
        review = authz.create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "verb": verb,
                        "resource": resource,
                        "subresource": subresource,
                        "namespace": "default",
                    }
                }
            }
        )
        return review.status.allowed

    assert can("get", "pods", "log")
    assert not can("delete", "pods")


def test_discovery_lists_core_batch_and_custom_groups(kube_emulator):
    core = client.CoreApi(kube_emulator.api_client())
    assert core.get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(kube_emulator.api_client()).get_api_versions().groups}
    assert {
        "batch",
        "serving.kserve.io",
        "trainer.kubeflow.org",
        "kubeflow.org",
        "authorization.k8s.io",
    } <= groups
    resources = {
        r.name: r
        for r in client.CoreV1Api(kube_emulator.api_client()).get_api_resources().resources
    }
    assert resources["pods"].short_names == ["po"]
    assert resources["namespaces"].namespaced is False
    assert {"pods/status", "pods/log"} <= set(resources)
    assert "watch" in resources["configmaps"].verbs
    version = client.VersionApi(kube_emulator.api_client()).get_code()
    assert (version.major, version.minor) == ("1", "32")


def test_registering_a_kind_later_makes_it_discoverable(kube_emulator):
    from mlrelay.testing import custom

    kube_emulator.store.register(
        custom("example.com", "v1", "widgets", "Widget", short_names=("wd",))
    )
    dyn = dynamic.DynamicClient(kube_emulator.api_client())
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    widgets.create(
        body={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        namespace="default",
    )
    assert [w.metadata.name for w in widgets.get(namespace="default").items] == ["w"]


def test_plain_http_mode_serves_the_same_api():
    with KubeEmulator(tls=False) as emu:
        assert emu.url.startswith("http://")
        names = [n.metadata.name for n in client.CoreV1Api(emu.api_client()).list_namespace().items]
        assert names == ["default", "kube-public", "kube-system"]
