"""TrainModelOperator on a cluster (the Kubernetes API emulator): deferral, kill, retry, deadline.

The ``kubernetes_default`` connection points at the emulator's kubeconfig, as a user's would
point at their cluster. ``dag.test()`` runs each deferred task's trigger in-line, so a test
sees the whole path: submit, defer, the trigger's wait and log stream, the resume from the
trigger's event. Pods run the test trainer as local processes (``python:*`` images).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import UTC, datetime

import kubernetes
import pytest
from airflow_support import (
    TRAINER,
    child_states,
    dag_test_in_child,
    run_dag,
    trainer_starts,
    unique,
    wait_for,
)

from airflow_mlrelay.operators import TrainModelOperator
from airflow_mlrelay.triggers.training import TrainingJobTrigger
from mlrelay import _mlflow, _proc
from mlrelay.settings import KubernetesSettings
from mlrelay.testing.kinds import JOBS, PODS
from mlrelay.training import start_training
from mlrelay.training.kubernetes import KubernetesJobBackend
from mlrelay.training.spec import TrainingJob

pytestmark = pytest.mark.slow
OPTIONS = {"relist_interval": 5.0, "grace_period": 2, "log_linger": 1.0}


@pytest.fixture
def cluster(kube_cluster, monkeypatch, mlflow_settings, mlrelay_home):
    """The emulator behind the ``kubernetes_default`` connection."""
    extra = {"kube_config_path": str(kube_cluster.kubeconfig)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes", "extra": extra})
    )
    return kube_cluster


def jobs(emulator) -> list[dict]:
    return emulator.store.list(JOBS, "default")[0]


def pods(emulator) -> list[dict]:
    return emulator.store.list(PODS, "default")[0]


def conf(tmp_path, name: str, **more: object) -> dict[str, object]:
    return {
        "name": name,
        "experiment": unique("airflow-k8s"),
        "marker": str(tmp_path / "marker"),
        **more,
    }


def test_airflow_train_defers_on_the_cluster_and_streams_the_pod_log(
    cluster, dagbag, tmp_path, capfd, caplog
):
    run = run_dag(dagbag, "mlrelay_train_cluster", conf(tmp_path, "on-cluster", sleep=1))
    assert run.states == {"train": "success"}
    result = run.result("train")
    assert result["backend"] == "kubernetes"
    ((_, run_id),) = trainer_starts(tmp_path / "marker")
    assert result["run_id"] == run_id
    out = capfd.readouterr().out + caplog.text  # Airflow's structlog, or stdlib logging
    assert "[DAG TEST] running trigger in line" in out
    streamed = [line for line in out.splitlines() if "TrainingJobTrigger" in line]
    assert any("epoch 1: loss 0.42" in line for line in streamed)
    (job,) = jobs(cluster)
    assert job["metadata"]["name"].startswith("on-cluster-")  # named after the run identity


def test_o2_o3_airflow_retry_after_worker_sigkill_adopts_the_cluster_job(cluster, dagbag, tmp_path):
    settings = conf(tmp_path, "orphan", sleep=6)
    when = datetime.now(UTC)
    child = dag_test_in_child("mlrelay_train_cluster", settings, when)
    try:
        wait_for(lambda: trainer_starts(tmp_path / "marker"), 120, "the pod's trainer to start")
        child.kill()  # the worker (and the in-line trigger with it) dies; the Job runs on
    finally:
        child.communicate(timeout=60)
    retry = run_dag(dagbag, "mlrelay_train_cluster", settings, logical_date=when)
    assert retry.states == {"train": "success"}
    assert len(trainer_starts(tmp_path / "marker")) == 1
    assert len(jobs(cluster)) == 1


def test_o1_airflow_sigterm_deletes_the_cluster_job_and_fails_the_task(
    cluster, tmp_path, mlflow_settings
):
    settings = conf(tmp_path, "killed", sleep=300)
    child = dag_test_in_child("mlrelay_train_cluster_inline", settings)
    try:
        wait_for(lambda: trainer_starts(tmp_path / "marker"), 120, "the pod's trainer to start")
        ((trainer, _),) = trainer_starts(tmp_path / "marker")
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child_states(out) == {"train": "failed"}, out[-3000:]
    wait_for(lambda: not jobs(cluster) and not pods(cluster), 90, "the Job and its pods to go")
    assert not _proc.alive(trainer)


def test_o6_airflow_trigger_deletes_the_cluster_job_at_the_deadline(cluster, dagbag, tmp_path):
    started = time.monotonic()
    run = run_dag(dagbag, "mlrelay_train_cluster_deadline", conf(tmp_path, "late", sleep=300))
    assert run.states == {"train": "failed"}
    assert time.monotonic() - started < 90
    wait_for(lambda: not jobs(cluster), 90, "the Job to be deleted")


def cluster_job(cluster, tmp_path, mlflow_settings, name: str, sleep: float):
    backend = KubernetesJobBackend(KubernetesSettings(kubeconfig=cluster.kubeconfig), **OPTIONS)
    job = TrainingJob(
        name=name,
        image="python:3.11",
        command=["python", str(TRAINER), str(tmp_path / "marker"), str(sleep), "0"],
        experiment=unique("airflow-k8s"),
    )
    handle = start_training(job, backend, settings=mlflow_settings)
    trigger = TrainingJobTrigger(
        handle=handle.model_dump(mode="json"), backend="kubernetes", backend_options=OPTIONS,
        kubernetes_conn_id="kubernetes_default",
    )  # fmt: skip
    return backend, handle, trigger


def test_o4_airflow_trigger_on_kill_deletes_the_cluster_job(cluster, tmp_path, mlflow_settings):
    _, _, trigger = cluster_job(cluster, tmp_path, mlflow_settings, "deferred-kill", 300)
    wait_for(lambda: trainer_starts(tmp_path / "marker"), 60, "the pod's trainer to start")
    asyncio.run(trigger.cleanup())  # a triggerer restart: the Job keeps running
    assert jobs(cluster)
    asyncio.run(trigger.on_kill())  # the user marked the deferred task failed
    wait_for(lambda: not jobs(cluster) and not pods(cluster), 90, "the Job and its pods to go")


def test_o7_airflow_resume_uses_the_event_status_after_the_job_is_gone(
    cluster, tmp_path, mlflow_settings
):
    backend, handle, trigger = cluster_job(cluster, tmp_path, mlflow_settings, "collected", 0)
    event = asyncio.run(anext(trigger.run()))
    assert event.payload["status"]["state"] == "Succeeded"
    batch = kubernetes.client.BatchV1Api(cluster.api_client())  # a TTL controller, say
    batch.delete_namespaced_job(handle.job_name, "default", propagation_policy="Foreground")
    wait_for(lambda: not jobs(cluster), 90, "the Job to be garbage-collected")
    assert backend.status(handle).reason == "DeletedExternally"  # re-reading it would be wrong

    class TI:
        def xcom_push(self, key: str, value: object) -> None:
            pass

    operator = TrainModelOperator(task_id="train", name="collected", command=["unused"])
    result = operator.execute_complete({"ti": TI()}, event.payload)  # type: ignore[arg-type]
    assert result["run_id"] == handle.run_id
    client = _mlflow.client(mlflow_settings)
    assert client.get_run(handle.run_id).info.status == "FINISHED"


def test_example_dag_trains_on_the_cluster_with_deferral(
    cluster, mlflow_server, tmp_path, monkeypatch
):
    """``MLRELAY_BACKEND=kubernetes``: the same DAG file, its training deferred on the cluster."""
    import os
    from pathlib import Path

    from airflow.dag_processing.dagbag import BundleDagBag

    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])  # set by this folder's conftest
    monkeypatch.setenv("MLRELAY_BACKEND", "kubernetes")
    bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")
    model = unique("fraud-k8s")
    run = run_dag(bag, "fraud_detector", {"model_name": model})
    try:
        assert set(run.states.values()) == {"success"}, run.states
        assert run.result("train")["backend"] == "kubernetes"
        assert run.result("deploy")["model_version"] == run.result("register")["version"]
    finally:
        from mlrelay.serving import undeploy
        from mlrelay.serving.local import LocalServingBackend

        undeploy(model, LocalServingBackend())
