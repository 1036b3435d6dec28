"""The emulated Kubeflow controllers: PyTorchJob (Training Operator v1) and TrainJob (Trainer v2),
driven through the official client on the ``kube_cluster`` fixture, with pods that really run."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from kubelet_support import wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mlrelay.testing.status import ApiError

KUBECTL = shutil.which("kubectl")
GROUP, TRAINER = "kubeflow.org", "trainer.kubeflow.org"
PRINT_ENV = (
    "import json, os, time; time.sleep({sleep}); "
    "print(json.dumps({{k: v for k, v in os.environ.items() if k.isupper()}})); "
    "raise SystemExit({code})"
)


def replica(code: str, *, replicas: int | None = 1, policy: str = "Never") -> dict[str, Any]:
    container = {"name": "pytorch", "image": "python:3.11", "command": ["python", "-c", code]}
    spec: dict[str, Any] = {
        "restartPolicy": policy,
        "template": {"spec": {"containers": [container]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return spec


def pytorchjob(name: str, master: str, worker: str | None = None, **run: Any) -> dict[str, Any]:
    specs = {"Master": replica(master)}
    if worker is not None:
        specs["Worker"] = replica(worker)
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": specs, "runPolicy": run},
    }


def env_code(sleep: float = 0.0, code: int = 0) -> str:
    return PRINT_ENV.format(sleep=sleep, code=code)


@pytest.fixture
def custom(kube_cluster):
    return client.CustomObjectsApi(kube_cluster.api_client())


@pytest.fixture
def core(kube_cluster):
    return client.CoreV1Api(kube_cluster.api_client())


def get(kube_cluster, plural: str, name: str, namespace: str | None = "default") -> Any:
    try:
        return kube_cluster.store.get(plural, namespace, name)
    except ApiError:
        return None


def condition(obj: Any, type_: str) -> dict[str, Any] | None:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_ and c["status"] == "True"), None)


def history(store, plural: str, name: str) -> list[tuple[str, str]]:
    """(type, status) of the conditions in the order they were first written."""
    seen: list[tuple[str, str]] = []

    def record(event: Any) -> None:
        if event.kind.plural == plural and event.object["metadata"]["name"] == name:
            for c in (event.object.get("status") or {}).get("conditions") or []:
                if (c["type"], c["status"]) not in seen:
                    seen.append((c["type"], c["status"]))

    store.subscribe(record, kinds=[plural])
    return seen


def pod_env(core, name: str) -> dict[str, str]:
    # Raw bytes: the client would json.loads a log that is one JSON line, then str() it.
    raw = core.read_namespaced_pod_log(name, "default", _preload_content=False).data
    return json.loads(raw.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- PyTorchJob ----------------------------------------------------------------------------------
def test_pytorchjob_master_and_worker_run_with_operator_env_and_succeed(kube_cluster, custom, core):
    store = kube_cluster.store
    seen = history(store, "pytorchjobs", "mnist")
    custom.create_namespaced_custom_object(
        GROUP, "v1", "default", "pytorchjobs", pytorchjob("mnist", env_code(1.0), env_code())
    )
    done = wait_for(
        store, lambda: condition(get(kube_cluster, "pytorchjobs", "mnist"), "Succeeded")
    )
    assert done["reason"] == "PyTorchJobSucceeded"
    assert done["message"] == "PyTorchJob mnist is successfully completed."
    assert seen == [  # Running turns False in the write that adds Succeeded
        ("Created", "True"),
        ("Running", "True"),
        ("Running", "False"),
        ("Succeeded", "True"),
    ]
    job = get(kube_cluster, "pytorchjobs", "mnist")
    status = job["status"]
    assert [c["type"] for c in status["conditions"]] == ["Created", "Running", "Succeeded"]
    assert status["conditions"][1]["status"] == "False"  # Running flips when the job finishes
    assert status["replicaStatuses"]["Master"] == {"succeeded": 1}
    assert status["startTime"] <= status["completionTime"]
    master, worker = core.read_namespaced_pod("mnist-master-0", "default"), None
    wait_for(
        store,
        lambda: core.read_namespaced_pod("mnist-worker-0", "default").status.phase == "Succeeded",
    )
    worker = core.read_namespaced_pod("mnist-worker-0", "default")
    prefix = "training.kubeflow.org/"
    assert master.metadata.labels == {
        prefix + "operator-name": "pytorchjob-controller",
        prefix + "job-name": "mnist",
        prefix + "replica-type": "master",
        prefix + "replica-index": "0",
        prefix + "job-role": "master",
    }
    assert worker.metadata.labels[prefix + "replica-type"] == "worker"
    assert prefix + "job-role" not in worker.metadata.labels
    owner = master.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
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
        env = pod_env(core, name)
        assert {k: env[k] for k in want} == want
        assert (env["RANK"], env["PET_NODE_RANK"]) == (rank, rank)
    ports = master.spec.containers[0].ports
    assert [(p.name, p.container_port) for p in ports] == [("pytorchjob-port", 23456)]


def test_pytorchjob_failing_worker_fails_the_job_and_cleans_running_pods(kube_cluster, custom):
    store = kube_cluster.store
    body = pytorchjob("broken", env_code(60), env_code(code=3), cleanPodPolicy="Running")
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "pytorchjobs", body)
    failed = wait_for(
        store, lambda: condition(get(kube_cluster, "pytorchjobs", "broken"), "Failed")
    )
    assert failed["reason"] == "PyTorchJobFailed"
    assert failed["message"] == "PyTorchJob broken is failed because 1 Worker replica(s) failed."
    job = get(kube_cluster, "pytorchjobs", "broken")
    assert job["status"]["replicaStatuses"]["Worker"] == {"failed": 1}
    # cleanPodPolicy Running: the still-running master goes, the failed worker stays for its logs.
    wait_for(store, lambda: get(kube_cluster, "pods", "broken-master-0") is None)
    assert get(kube_cluster, "pods", "broken-worker-0")["status"]["phase"] == "Failed"
    reasons = {e["reason"] for e in store.list("events", "default")[0]}
    assert {"SuccessfulCreatePod", "ExitedWithCode", "PyTorchJobFailed"} <= reasons


def test_t7_pytorchjob_active_deadline_fails_it_and_deletes_its_pods(kube_cluster, custom):
    store = kube_cluster.store
    body = pytorchjob("slow", env_code(60), activeDeadlineSeconds=1)
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "pytorchjobs", body)
    failed = wait_for(store, lambda: condition(get(kube_cluster, "pytorchjobs", "slow"), "Failed"))
    assert (
        failed["message"]
        == "Job slow has failed because it was active longer than specified deadline"
    )
    wait_for(store, lambda: get(kube_cluster, "pods", "slow-master-0") is None)


def test_pytorchjob_deletion_garbage_collects_its_pods(kube_cluster, custom):
    store = kube_cluster.store
    body = pytorchjob("doomed", env_code(60), env_code(60))
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "pytorchjobs", body)
    wait_for(
        store,
        lambda: (
            (p := get(kube_cluster, "pods", "doomed-worker-0"))
            and p["status"]["phase"] == "Running"
        ),
    )
    custom.delete_namespaced_custom_object(GROUP, "v1", "default", "pytorchjobs", "doomed")
    wait_for(store, lambda: not store.list("pods", "default")[0])


def test_pytorchjob_suspended_creates_no_pods_until_resumed(kube_cluster, custom):
    store = kube_cluster.store
    body = pytorchjob("queued", env_code(0.5), suspend=True)
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "pytorchjobs", body)
    wait_for(store, lambda: condition(get(kube_cluster, "pytorchjobs", "queued"), "Suspended"))
    job = get(kube_cluster, "pytorchjobs", "queued")
    assert [(c["type"], c["reason"]) for c in job["status"]["conditions"]] == [
        ("Created", "PyTorchJobCreated"),
        ("Suspended", "PyTorchJobSuspended"),
    ]
    assert "startTime" not in job["status"]
    assert get(kube_cluster, "pods", "queued-master-0") is None
    custom.patch_namespaced_custom_object(
        GROUP, "v1", "default", "pytorchjobs", "queued", {"spec": {"runPolicy": {"suspend": False}}}
    )
    wait_for(store, lambda: condition(get(kube_cluster, "pytorchjobs", "queued"), "Succeeded"))
    resumed = get(kube_cluster, "pytorchjobs", "queued")["status"]["conditions"][1]
    assert (resumed["type"], resumed["status"], resumed["reason"], resumed["message"]) == (
        "Suspended",
        "False",
        "PyTorchJobResumed",
        "PyTorchJob queued is resumed.",
    )


def test_pytorchjob_webhook_refuses_a_job_without_a_pytorch_container(kube_cluster, custom):
    body = pytorchjob("nameless", "print(1)")
    body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["name"] = (
        "main"
    )
    del body["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"]
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "pytorchjobs", body)
    assert e.value.status == 422
    message = json.loads(e.value.body)["message"]
    assert "must have at least one container with name pytorch" in message
    assert "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1" in message


# -- TrainJob ------------------------------------------------------------------------------------
def runtime(name: str = "torch-distributed", **job_spec: Any) -> dict[str, Any]:
    node = {"name": "node", "image": "python:3.11", "command": ["python", "-c", "print('runtime')"]}
    rjob = {
        "name": "node",
        "template": {
            "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": {"spec": {"containers": [node]}}, **job_spec},
        },
    }
    return {
        "apiVersion": f"{TRAINER}/v1alpha1",
        "kind": "ClusterTrainingRuntime",
        "metadata": {"name": name},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {"spec": {"replicatedJobs": [rjob]}},
        },
    }


def trainjob(name: str, code: str, *, nodes: int = 2, suspend: bool = False) -> dict[str, Any]:
    trainer = {
        "numNodes": nodes,
        "command": ["python", "-c", code],
        "env": [{"name": "DATASET", "value": "fraud"}],
    }
    return {
        "apiVersion": f"{TRAINER}/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": trainer,
            "suspend": suspend,
        },
    }


def create_runtime(custom, **job_spec: Any) -> None:
    custom.create_cluster_custom_object(
        TRAINER, "v1alpha1", "clustertrainingruntimes", runtime(**job_spec)
    )


def trainjob_pods(kube_cluster, name: str) -> list[dict[str, Any]]:
    selector = "jobset.sigs.k8s.io/jobset-name"
    return kube_cluster.store.list(
        "pods", "default", lambda p: p["metadata"]["labels"].get(selector) == name
    )[0]


def test_trainjob_runs_num_nodes_pods_with_torchrun_env_and_completes(kube_cluster, custom, core):
    store = kube_cluster.store
    create_runtime(custom)
    seen = history(store, "trainjobs", "fraud")
    custom.create_namespaced_custom_object(
        TRAINER, "v1alpha1", "default", "trainjobs", trainjob("fraud", env_code())
    )
    done = wait_for(store, lambda: condition(get(kube_cluster, "trainjobs", "fraud"), "Complete"))
    assert (done["reason"], done["message"]) == (
        "AllJobsCompleted",
        "jobset completed successfully",
    )
    assert seen == [("Created", "True"), ("Complete", "True")]
    status = get(kube_cluster, "trainjobs", "fraud")["status"]
    assert status["conditions"][0]["reason"] == "JobsCreationSucceeded"
    assert status["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}
    ]
    pods = sorted(trainjob_pods(kube_cluster, "fraud"), key=lambda p: p["metadata"]["name"])
    assert len(pods) == 2
    for index, pod in enumerate(pods):
        labels = pod["metadata"]["labels"]
        assert labels["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
        assert labels["batch.kubernetes.io/job-completion-index"] == str(index)
        assert labels["batch.kubernetes.io/job-name"] == "fraud-node-0"
        assert pod["metadata"]["name"].startswith(f"fraud-node-0-{index}-")
        assert pod["spec"]["subdomain"] == "fraud"
        env = pod_env(core, pod["metadata"]["name"])
        assert {k: env[k] for k in ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK")} == {
            "PET_NNODES": "2",
            "PET_NPROC_PER_NODE": "auto",
            "PET_NODE_RANK": str(index),
        }
        assert env["PET_MASTER_ADDR"] == "fraud-node-0-0.fraud"
        assert (env["PET_MASTER_PORT"], env["DATASET"]) == ("29500", "fraud")
    job = get(kube_cluster, "jobs", "fraud-node-0")
    assert job["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"


def test_trainjob_naming_a_missing_runtime_is_refused_and_a_deleted_one_fails_the_build(
    kube_cluster, custom
):
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(
            TRAINER, "v1alpha1", "default", "trainjobs", trainjob("orphan", "print(1)")
        )
    assert e.value.status == 422
    assert (
        "specified clusterTrainingRuntime must be created before the TrainJob is created"
        in json.loads(e.value.body)["message"]
    )
    create_runtime(custom)
    custom.create_namespaced_custom_object(
        TRAINER, "v1alpha1", "default", "trainjobs", trainjob("held", "print(1)", suspend=True)
    )
    wait_for(
        kube_cluster.store, lambda: condition(get(kube_cluster, "trainjobs", "held"), "Created")
    )
    custom.delete_cluster_custom_object(
        TRAINER, "v1alpha1", "clustertrainingruntimes", "torch-distributed"
    )

    def build_failed() -> Any:
        conds = get(kube_cluster, "trainjobs", "held")["status"]["conditions"]
        return next((c for c in conds if c["type"] == "Created" and c["status"] == "False"), None)

    failed = wait_for(kube_cluster.store, build_failed)
    assert (failed["reason"], failed["message"]) == ("JobsBuildFailed", "Failed to build Jobs")


def test_t10_trainjob_suspended_holds_its_pods_until_resumed(kube_cluster, custom):
    store = kube_cluster.store
    create_runtime(custom, backoffLimit=0)
    body = trainjob("queued", env_code(), nodes=1, suspend=True)
    custom.create_namespaced_custom_object(TRAINER, "v1alpha1", "default", "trainjobs", body)
    wait_for(store, lambda: condition(get(kube_cluster, "trainjobs", "queued"), "Created"))
    conds = get(kube_cluster, "trainjobs", "queued")["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in conds] == [
        ("Suspended", "True", "Suspended"),
        ("Created", "True", "JobsCreationSucceeded"),
    ]
    assert get(kube_cluster, "jobs", "queued-node-0")["spec"]["suspend"] is True
    assert not trainjob_pods(kube_cluster, "queued")
    custom.patch_namespaced_custom_object(
        TRAINER, "v1alpha1", "default", "trainjobs", "queued", {"spec": {"suspend": False}}
    )
    wait_for(store, lambda: condition(get(kube_cluster, "trainjobs", "queued"), "Complete"))
    suspended = get(kube_cluster, "trainjobs", "queued")["status"]["conditions"][0]
    assert (suspended["status"], suspended["reason"], suspended["message"]) == (
        "False",
        "Resumed",
        "TrainJob is resumed",
    )


def test_trainjob_node_failure_past_backoff_limit_fails_it_with_jobset_reason(kube_cluster, custom):
    create_runtime(custom, backoffLimit=0)
    body = trainjob("crash", env_code(code=2), nodes=1)
    body["spec"]["trainer"]["command"] = ["python", "-c", "raise SystemExit(2)"]
    custom.create_namespaced_custom_object(TRAINER, "v1alpha1", "default", "trainjobs", body)
    failed = wait_for(
        kube_cluster.store, lambda: condition(get(kube_cluster, "trainjobs", "crash"), "Failed")
    )
    assert (failed["reason"], failed["message"]) == (
        "FailedJobs",
        "jobset failed due to one or more job failures",
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_gets_pytorchjobs_and_trainjobs_from_the_emulator(kube_cluster, custom):
    create_runtime(custom)
    custom.create_namespaced_custom_object(
        TRAINER, "v1alpha1", "default", "trainjobs", trainjob("viewed", "print(1)", suspend=True)
    )
    custom.create_namespaced_custom_object(
        GROUP, "v1", "default", "pytorchjobs", pytorchjob("listed", "print(1)", suspend=True)
    )
    wait_for(
        kube_cluster.store, lambda: condition(get(kube_cluster, "trainjobs", "viewed"), "Created")
    )

    def kubectl(*args: str) -> str:
        assert KUBECTL is not None
        run = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kube_cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert kubectl("get", "pytorchjobs", "-o", "name").split() == ["pytorchjob.kubeflow.org/listed"]
    import yaml

    got = yaml.safe_load(kubectl("get", "trainjob", "viewed", "-o", "yaml"))
    assert got["spec"]["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": TRAINER,
        "kind": "ClusterTrainingRuntime",
    }
    assert {c["type"] for c in got["status"]["conditions"]} == {"Suspended", "Created"}
    assert "torch-distributed" in kubectl("get", "clustertrainingruntimes")
