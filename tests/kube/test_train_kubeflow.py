"""TrainJob and PyTorchJob backends on the emulator's Kubeflow controllers: two nodes with their
rank environment, logs of every node, failures as data, and the same MLflow linkage as a Job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubeflow_support import runtime
from train_support import IMAGE, TRAIN_PY, fake_run, py_job, settings_for, unique

from mlrelay.errors import ConfigError
from mlrelay.kube.client import Kind
from mlrelay.settings import MLflowSettings
from mlrelay.testing import KubeEmulator
from mlrelay.training import JobState, TrainingJob, train
from mlrelay.training.kubeflow import PyTorchJobBackend, TrainJobBackend
from mlrelay.training.podstate import Limits

RUNTIMES = Kind(
    "trainer.kubeflow.org",
    "v1alpha1",
    "clustertrainingruntimes",
    "ClusterTrainingRuntime",
    namespaced=False,
)
SHOW_RANK = (
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    "('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'PET_NNODES', 'PET_NODE_RANK', 'MLFLOW_RUN_ID')}))"
)


def kubeflow_backend(cls, emulator: KubeEmulator, **options):
    options.setdefault("limits", Limits(scheduling=5.0, config_error=2.0))
    return cls(
        settings_for(emulator), relist_interval=5.0, grace_period=2, log_linger=1.0, **options
    )


def printed(lines: list[str]) -> dict[str, dict]:
    """pod -> the JSON it printed."""
    return {
        line.split("] ", 1)[0].lstrip("["): json.loads(line.split("] ", 1)[1])
        for line in lines
        if "] {" in line
    }


def test_pytorchjob_with_two_nodes_gives_each_its_rank_and_streams_both(
    kube_cluster: KubeEmulator,
) -> None:
    backend = kubeflow_backend(PyTorchJobBackend, kube_cluster)
    run = fake_run()
    # the master ends last: its success ends the job and stops replicas still running
    code = SHOW_RANK + "; import time; time.sleep(0 if os.environ['RANK'] != '0' else 1.5)"
    handle = backend.submit(py_job(code, workers=2), run)
    assert backend.wait(handle, timeout=60).state is JobState.SUCCEEDED
    seen = printed(list(backend.logs(handle)))
    master, worker = f"{handle.job_name}-master-0", f"{handle.job_name}-worker-0"
    assert set(seen) == {master, worker}
    assert (seen[master]["RANK"], seen[worker]["RANK"]) == ("0", "1")
    assert {env["WORLD_SIZE"] for env in seen.values()} == {"2"}
    assert {env["MASTER_ADDR"] for env in seen.values()} == {master}
    assert {env["MLFLOW_RUN_ID"] for env in seen.values()} == {run.run_id}


def test_pytorchjob_failed_worker_fails_the_job_with_its_attempt(
    kube_cluster: KubeEmulator,
) -> None:
    backend = kubeflow_backend(PyTorchJobBackend, kube_cluster)
    # the master outlives the worker: with the operator's default success policy a master that
    # ends first would make the job succeed
    code = (
        "import os, sys, time; rank = int(os.environ['RANK']); print('rank', rank, flush=True); "
        "time.sleep(0 if rank else 5); sys.exit(rank * 3)"
    )
    status = backend.wait(backend.submit(py_job(code, workers=2), fake_run()), timeout=60)
    assert status.state is JobState.FAILED
    assert [(a.reason, a.exit_code) for a in status.attempts] == [("Error", 3)]
    assert status.attempts[0].logs == ["rank 1"]


def test_trainjob_with_two_nodes_on_a_cluster_runtime(kube_cluster: KubeEmulator) -> None:
    backend = kubeflow_backend(TrainJobBackend, kube_cluster, runtime="torch-distributed")
    backend.kube.create(RUNTIMES, {"apiVersion": RUNTIMES.api_version, **runtime()})
    handle = backend.submit(py_job(SHOW_RANK, workers=2), fake_run())
    assert backend.wait(handle, timeout=60).state is JobState.SUCCEEDED
    seen = printed(list(backend.logs(handle)))
    assert sorted(env["PET_NODE_RANK"] for env in seen.values()) == ["0", "1"]
    assert {env["PET_NNODES"] for env in seen.values()} == {"2"}


def test_trainjob_without_its_runtime_is_refused_with_the_servers_message(
    kube_cluster: KubeEmulator,
) -> None:
    backend = kubeflow_backend(TrainJobBackend, kube_cluster, runtime="no-such-runtime")
    with pytest.raises(ConfigError, match="no-such-runtime"):
        backend.submit(py_job("print(1)"), fake_run())


def test_trainjob_refuses_pod_fields_that_belong_in_the_runtime_before_any_call(
    kube_emulator: KubeEmulator,
) -> None:
    backend = kubeflow_backend(TrainJobBackend, kube_emulator)
    with pytest.raises(ConfigError, match="node_selector") as info:
        backend.validate(py_job("print(1)", node_selector={"pool": "gpu"}))
    assert info.value.field == "node_selector"
    assert backend.kube.requests == 0


def test_example_model_trains_on_a_trainjob_and_lands_in_mlflow(
    kube_cluster: KubeEmulator, mlflow_server: str, fraud_data: dict[str, Path]
) -> None:
    backend = kubeflow_backend(TrainJobBackend, kube_cluster)
    backend.kube.create(RUNTIMES, {"apiVersion": RUNTIMES.api_version, **runtime()})
    job = TrainingJob(
        name="fraud-trainjob",
        image=IMAGE,
        command=["python", str(TRAIN_PY)],
        args=["--training-set", str(fraud_data["transactions"]), "--target", "is_fraud"],
        experiment=unique("trainjob"),
    )
    result = train(job, backend, settings=MLflowSettings(tracking_uri=mlflow_server))
    assert result.backend == "trainjob"
    assert result.model_uri is not None
    assert result.metrics["roc_auc"] > 0.5
