"""The emulated Kubeflow Trainer v2: TrainJobs against a ClusterTrainingRuntime through the
official client on ``kube_cluster``, one Job per trainer replicated job, pods that really run."""

from __future__ import annotations

import json

import pytest
from kubeflow_support import (  # noqa: F401 - fixture_kf is a fixture
    env_code,
    fixture_kf,
    runtime,
    trainjob,
)
from kubernetes.client.exceptions import ApiException

JOBSET = "jobset.sigs.k8s.io/"


def test_trainjob_runs_num_nodes_pods_with_torchrun_env_and_completes(kf):
    kf.create(runtime())
    seen = kf.history("trainjobs", "fraud")
    kf.create(trainjob("fraud", env_code()))
    done = kf.wait_condition("trainjobs", "fraud", "Complete")
    assert (done["reason"], done["message"]) == (
        "AllJobsCompleted",
        "jobset completed successfully",
    )
    assert seen == [("Created", "True"), ("Complete", "True")]
    status = kf.get("trainjobs", "fraud")["status"]
    assert status["conditions"][0]["reason"] == "JobsCreationSucceeded"
    assert status["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}
    ]
    pods = kf.pods(JOBSET + "jobset-name", "fraud")
    assert len(pods) == 2
    for index, pod in enumerate(pods):
        labels = pod["metadata"]["labels"]
        assert labels[JOBSET + "replicatedjob-name"] == "node"
        assert labels["batch.kubernetes.io/job-completion-index"] == str(index)
        assert labels["batch.kubernetes.io/job-name"] == "fraud-node-0"
        assert pod["metadata"]["name"].startswith(f"fraud-node-0-{index}-")
        assert pod["spec"]["subdomain"] == "fraud"
        env = kf.pod_env(pod["metadata"]["name"])
        assert {k: env[k] for k in ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK")} == {
            "PET_NNODES": "2",
            "PET_NPROC_PER_NODE": "auto",
            "PET_NODE_RANK": str(index),
        }
        assert env["PET_MASTER_ADDR"] == "fraud-node-0-0.fraud"
        assert (env["PET_MASTER_PORT"], env["DATASET"]) == ("29500", "fraud")
    job = kf.get("jobs", "fraud-node-0")
    assert job["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"


def test_trainjob_naming_a_missing_runtime_is_refused_and_a_deleted_one_fails_the_build(kf):
    with pytest.raises(ApiException) as e:
        kf.create(trainjob("orphan", "print(1)"))
    assert e.value.status == 422
    assert (
        "specified clusterTrainingRuntime must be created before the TrainJob is created"
        in (json.loads(e.value.body)["message"])
    )
    kf.create(runtime())
    kf.create(trainjob("held", "print(1)", suspend=True))
    kf.wait_condition("trainjobs", "held", "Created")
    kf.delete("clustertrainingruntimes", "torch-distributed")
    failed = kf.wait_condition("trainjobs", "held", "Created", "False")
    assert (failed["reason"], failed["message"]) == ("JobsBuildFailed", "Failed to build Jobs")


def test_trainjob_refuses_reserved_torchrun_env(kf):
    kf.create(runtime())
    body = trainjob("sneaky", "print(1)")
    body["spec"]["trainer"]["env"].append({"name": "PET_NNODES", "value": "9"})
    with pytest.raises(ApiException) as e:
        kf.create(body)
    assert "must not have reserved envs, invalid envs configured: [PET_NNODES]" in e.value.body


def test_trainjob_suspended_holds_its_job_and_pods_until_resumed(kf):
    kf.create(runtime(backoffLimit=0))
    kf.create(trainjob("queued", env_code(), nodes=1, suspend=True))
    kf.wait_condition("trainjobs", "queued", "Created")
    conds = kf.get("trainjobs", "queued")["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in conds] == [
        ("Suspended", "True", "Suspended"),
        ("Created", "True", "JobsCreationSucceeded"),
    ]
    assert kf.get("jobs", "queued-node-0")["spec"]["suspend"] is True
    assert not kf.pods(JOBSET + "jobset-name", "queued")
    kf.patch("trainjobs", "queued", {"spec": {"suspend": False}})
    kf.wait_condition("trainjobs", "queued", "Complete")
    resumed = kf.condition("trainjobs", "queued", "Suspended", "False")
    assert (resumed["reason"], resumed["message"]) == ("Resumed", "TrainJob is resumed")


def test_trainjob_node_failure_past_backoff_limit_fails_it_with_jobset_reason(kf):
    kf.create(runtime(backoffLimit=0))
    kf.create(trainjob("crash", env_code(code=2), nodes=1))
    failed = kf.wait_condition("trainjobs", "crash", "Failed")
    assert (failed["reason"], failed["message"]) == (
        "FailedJobs",
        "jobset failed due to one or more job failures",
    )
