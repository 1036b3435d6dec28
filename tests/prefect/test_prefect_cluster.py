"""The Prefect integration on the emulated cluster (``kube_cluster``): training as a Kubernetes
Job, a retry adopting the Job its first try left running (O3), and a cancelled flow run
deleting its Job (O1). Pods run as local processes of this interpreter (``python:*`` images), so
the example trainer really trains and logs to the session's MLflow server.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.flow_engine import run_flow
from prefect.states import Cancelling
from prefect_support import EXAMPLES, eventually, feature_repo, log_lines, unique

from mlrelay import _proc
from mlrelay._model import safe_name
from mlrelay.serving.local import LocalServingBackend
from mlrelay.settings import LocalSettings, MLflowSettings
from mlrelay.testing import KubeEmulator
from mlrelay.testing.kinds import JOBS
from mlrelay.training import RunIdentity, TrainingJob, start_training
from mlrelay.training.kubernetes import KubernetesJobBackend
from prefect_mlrelay import KubernetesCluster, MLflowCredentials, train_and_deploy, train_model

pytestmark = pytest.mark.slow
IMAGE = "python:3.11"  # the emulator's kubelet runs python:* images with this interpreter
TRAIN_PY = EXAMPLES / "training" / "train.py"


def jobs(emulator: KubeEmulator) -> list[dict[str, Any]]:
    return emulator.store.list(JOBS, "default")[0]


def cluster_of(emulator: KubeEmulator) -> KubernetesCluster:
    assert emulator.kubeconfig is not None
    return KubernetesCluster(kubeconfig=str(emulator.kubeconfig))


def test_train_and_deploy_trains_on_the_emulated_cluster(
    kube_cluster: KubeEmulator,
    mlflow_server: str,
    fraud_data: dict[str, Path],
    mlrelay_home: LocalSettings,
    tmp_path: Path,
) -> None:
    repo = feature_repo(tmp_path / "feature_repo", fraud_data["customer_stats"])
    stamps = pd.read_parquet(fraud_data["customer_stats"], columns=["event_timestamp"])
    model = unique("fraud-prefect-kube")
    mlflow = MLflowCredentials(tracking_uri=mlflow_server)
    state = train_and_deploy(
        data=str(fraud_data["transactions"]),
        suite=str(EXAMPLES / "expectations" / "transactions.json"),
        feature_repo=str(repo),
        feature_service="fraud_model_v1",
        training_command=["python", str(TRAIN_PY)],
        image=IMAGE,
        training_backend="kubernetes",
        kubernetes=cluster_of(kube_cluster),
        model_name=model,
        materialize_start=stamps.event_timestamp.min().to_pydatetime(),
        materialize_end=stamps.event_timestamp.max().to_pydatetime(),
        mlflow=mlflow,
        return_state=True,
    )
    try:
        assert state.is_completed(), state
        result = state.result()
        assert result.training.backend == "kubernetes"
        assert result.promotion.promoted
        assert result.deployment is not None
        (job,) = jobs(kube_cluster)
        assert job["metadata"]["name"] == result.training.job_name
        assert job["metadata"]["labels"]["mlrelay.io/identity"]
        run = MlflowClient(mlflow_server).get_run(result.training.run_id)
        assert run.data.tags["mlrelay.backend"] == "kubernetes"
        assert log_lines(state.state_details.flow_run_id, "metrics: roc_auc=")
    finally:
        LocalServingBackend(settings=mlflow.settings(), local=mlrelay_home).undeploy(
            safe_name(model)
        )


def test_o3_prefect_flow_run_adopts_the_kubernetes_job_its_first_try_left_running(
    kube_cluster: KubeEmulator, mlflow_settings: MLflowSettings
) -> None:
    cluster = cluster_of(kube_cluster)
    job = TrainingJob(
        name="adopt-me",
        image=IMAGE,
        command=["python", "-c", "import time; time.sleep(2); print('done', flush=True)"],
        experiment=unique("prefect-kube-o3"),
    )

    @flow
    def pipeline() -> str:
        return train_model(
            job, backend="kubernetes", kubernetes=cluster, mlflow=mlflow_settings
        ).run_id

    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(pipeline)
    identity = RunIdentity(
        orchestrator="prefect", run_id=str(flow_run.id), task_id="train_model", map_index=job.name
    )
    first = start_training(
        job, KubernetesJobBackend(cluster.settings()), identity=identity, settings=mlflow_settings
    )
    assert run_flow(pipeline, flow_run=flow_run) == first.run_id
    (only,) = jobs(kube_cluster)
    assert only["metadata"]["name"] == identity.job_name(job.name)
    client = MlflowClient(mlflow_settings.tracking_uri)
    exp = client.get_experiment_by_name(job.experiment)
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"


def test_o1_prefect_cancelling_a_flow_run_deletes_its_kubernetes_job(
    runner: None, kube_cluster: KubeEmulator, mlflow_settings: MLflowSettings, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pod.pid"
    experiment = unique("prefect-kube-o1")
    flow_run = run_deployment(
        "long-training/o1",
        parameters={
            "experiment": experiment,
            "pid_file": str(pid_file),
            "kubeconfig": str(kube_cluster.kubeconfig),
        },
        timeout=0,
    )
    assert eventually(pid_file.exists, bool, timeout=120), "the pod did not start"
    trainer = int(pid_file.read_text())
    assert len(jobs(kube_cluster)) == 1
    started = time.monotonic()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
        state = eventually(
            lambda: client.read_flow_run(flow_run.id).state,
            lambda s: s is not None and s.is_final(),
            timeout=90,
        )
    assert state.is_cancelled(), state
    assert eventually(lambda: jobs(kube_cluster), lambda found: not found, timeout=30) == []
    assert eventually(lambda: _proc.alive(trainer), lambda alive: not alive, timeout=30) is False
    client = MlflowClient(mlflow_settings.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "KILLED"
    assert time.monotonic() - started < 90
