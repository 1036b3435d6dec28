"""The emulated Training Operator: PyTorchJobs through the official client on ``kube_cluster``,
with pods that really run, and the Kubeflow kinds as kubectl sees them."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from kubeflow_support import (  # noqa: F401 - fixture_kf is a fixture
    TRAINER,
    env_code,
    fixture_kf,
    pytorchjob,
    runtime,
    trainjob,
)
from kubelet_support import wait_for
from kubernetes.client.exceptions import ApiException

KUBECTL = shutil.which("kubectl")
OPERATOR = "training.kubeflow.org/"


def test_pytorchjob_master_and_worker_run_with_operator_env_and_succeed(kf):
    seen = kf.history("pytorchjobs", "mnist")
    kf.create(pytorchjob("mnist", env_code(1.0), env_code()))
    done = kf.wait_condition("pytorchjobs", "mnist", "Succeeded")
    assert (done["reason"], done["message"]) == (
        "PyTorchJobSucceeded",
        "PyTorchJob mnist is successfully completed.",
    )
    assert seen == [  # Running turns False in the write that adds Succeeded
        ("Created", "True"),
        ("Running", "True"),
        ("Running", "False"),
        ("Succeeded", "True"),
    ]
    job = kf.get("pytorchjobs", "mnist")
    status = job["status"]
    assert [c["type"] for c in status["conditions"]] == ["Created", "Running", "Succeeded"]
    assert status["replicaStatuses"]["Master"] == {"succeeded": 1}
    assert status["startTime"] <= status["completionTime"]
    master = kf.get("pods", "mnist-master-0")
    worker = kf.wait_pod("mnist-worker-0", "Succeeded")
    assert master["metadata"]["labels"] == {
        OPERATOR + "operator-name": "pytorchjob-controller",
        OPERATOR + "job-name": "mnist",
        OPERATOR + "replica-type": "master",
        OPERATOR + "replica-index": "0",
        OPERATOR + "job-role": "master",
    }
    assert worker["metadata"]["labels"][OPERATOR + "replica-type"] == "worker"
    assert OPERATOR + "job-role" not in worker["metadata"]["labels"]
    owner = master["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "PyTorchJob",
        "mnist",
        job["metadata"]["uid"],
        True,
    )
    want = {
        "PYTHONUNBUFFERED": "0",
        "MASTER_ADDR": "mnist-master-0",
        "MASTER_PORT": "23456",
        "WORLD_SIZE": "2",
        "PET_NNODES": "2",
        "PET_NPROC_PER_NODE": "auto",
    }
    for name, rank in (("mnist-master-0", "0"), ("mnist-worker-0", "1")):
        env = kf.pod_env(name)
        assert {k: env[k] for k in want} == want
        assert (env["RANK"], env["PET_NODE_RANK"]) == (rank, rank)
    port = master["spec"]["containers"][0]["ports"]
    assert port == [{"name": "pytorchjob-port", "containerPort": 23456}]  # defaulted


def test_pytorchjob_failing_worker_fails_the_job_and_cleans_running_pods(kf):
    kf.create(pytorchjob("broken", env_code(60), env_code(code=3), cleanPodPolicy="Running"))
    failed = kf.wait_condition("pytorchjobs", "broken", "Failed")
    assert (failed["reason"], failed["message"]) == (
        "PyTorchJobFailed",
        "PyTorchJob broken is failed because 1 Worker replica(s) failed.",
    )
    assert kf.get("pytorchjobs", "broken")["status"]["replicaStatuses"]["Worker"] == {"failed": 1}
    # cleanPodPolicy Running: the running master goes, the failed worker stays for its logs.
    wait_for(kf.store, lambda: kf.get("pods", "broken-master-0") is None)
    assert kf.get("pods", "broken-worker-0")["status"]["phase"] == "Failed"
    reasons = {e["reason"] for e in kf.store.list("events", "default")[0]}
    assert {"SuccessfulCreatePod", "ExitedWithCode", "PyTorchJobFailed"} <= reasons


def test_pytorchjob_active_deadline_fails_it_and_cleans_up_by_its_clean_pod_policy(kf):
    # DeletePodsAndServices deletes nothing under the default cleanPodPolicy None
    kf.create(pytorchjob("slow", env_code(60), activeDeadlineSeconds=1, cleanPodPolicy="Running"))
    failed = kf.wait_condition("pytorchjobs", "slow", "Failed")
    assert failed["message"] == (
        "Job slow has failed because it was active longer than specified deadline"
    )
    wait_for(kf.store, lambda: kf.get("pods", "slow-master-0") is None)


def test_pytorchjob_deletion_garbage_collects_its_pods(kf):
    kf.create(pytorchjob("doomed", env_code(60), env_code(60)))
    kf.wait_pod("doomed-worker-0", "Running")
    kf.delete("pytorchjobs", "doomed")
    wait_for(kf.store, lambda: not kf.store.list("pods", "default")[0])


def test_pytorchjob_suspended_creates_no_pods_until_resumed(kf):
    kf.create(pytorchjob("queued", env_code(0.5), suspend=True))
    kf.wait_condition("pytorchjobs", "queued", "Suspended")
    status = kf.get("pytorchjobs", "queued")["status"]
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("Created", "PyTorchJobCreated"),
        ("Suspended", "PyTorchJobSuspended"),
    ]
    assert "startTime" not in status
    assert kf.get("pods", "queued-master-0") is None
    kf.patch("pytorchjobs", "queued", {"spec": {"runPolicy": {"suspend": False}}})
    kf.wait_condition("pytorchjobs", "queued", "Succeeded")
    resumed = kf.condition("pytorchjobs", "queued", "Suspended", "False")
    assert (resumed["reason"], resumed["message"]) == (
        "PyTorchJobResumed",
        "PyTorchJob queued is resumed.",
    )


def test_pytorchjob_webhook_refuses_a_job_without_a_pytorch_container(kf):
    body = pytorchjob("nameless", "print(1)")
    master = body["spec"]["pytorchReplicaSpecs"]["Master"]
    master["template"]["spec"]["containers"][0]["name"] = "main"
    del master["replicas"]
    with pytest.raises(ApiException) as e:
        kf.create(body)
    assert e.value.status == 422
    message = json.loads(e.value.body)["message"]
    assert "must have at least one container with name pytorch" in message
    assert "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1" in message


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_gets_pytorchjobs_and_trainjobs_from_the_emulator(kf):
    kf.create(runtime())
    kf.create(trainjob("viewed", "print(1)", suspend=True))
    kf.create(pytorchjob("listed", "print(1)", suspend=True))
    kf.wait_condition("trainjobs", "viewed", "Created")

    def kubectl(*args: str) -> str:
        assert KUBECTL is not None
        config = str(kf.emulator.kubeconfig)
        run = subprocess.run(
            [KUBECTL, "--kubeconfig", config, *args], capture_output=True, text=True, timeout=30
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert kubectl("get", "pytorchjobs", "-o", "name").split() == ["pytorchjob.kubeflow.org/listed"]
    got = yaml.safe_load(kubectl("get", "trainjob", "viewed", "-o", "yaml"))
    assert got["spec"]["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": TRAINER,
        "kind": "ClusterTrainingRuntime",
    }
    assert [c["type"] for c in got["status"]["conditions"]] == ["Suspended", "Created"]
    assert "torch-distributed" in kubectl("get", "clustertrainingruntimes")
