"""The Dagster assets with the Kubernetes training backend, on the API emulator (``kube_cluster``).

The emulator's kubelet runs each pod as a local process (``python:*`` images run this
interpreter), so a Job really runs ``examples/training/train.py`` and logs into the session's
MLflow server. The example switches to the cluster with one setting, ``FRAUD_BACKEND``; the
``kubernetes`` resource reads the emulator's kubeconfig from ``MLRELAY_K8S_KUBECONFIG``.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_support import PARTITION, ROOT, materializations, training_set_asset

from dagster_mlrelay import KubernetesResource, MLflowResource, build_model_asset
from mlrelay import _proc
from mlrelay.serving import undeploy
from mlrelay.serving.local import LocalServingBackend
from mlrelay.testing import KubeEmulator
from mlrelay.testing.kinds import JOBS, PODS
from mlrelay.training.spec import TrainingJob

pytestmark = pytest.mark.slow
SLEEPER = (
    "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
    "print('training', flush=True); time.sleep(120)"
)


def _objects(emulator: KubeEmulator, kind) -> list[dict]:
    return emulator.store.list(kind, "default")[0]


def _gone(emulator: KubeEmulator, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while _objects(emulator, JOBS) or _objects(emulator, PODS):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_example_cli_trains_on_the_cluster_with_one_setting(
    kube_cluster: KubeEmulator, dagster_home, mlrelay_home, mlflow_settings, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        FRAUD_BACKEND="kubernetes",
        MLRELAY_K8S_KUBECONFIG=str(kube_cluster.kubeconfig),
        FRAUD_WORKDIR=str(tmp_path / "work"),
        FRAUD_ROWS="2000",
    )
    argv = [
        str(Path(sys.executable).with_name("dagster")),
        "asset", "materialize", "-m", "examples.dagster.fraud_detector.definitions",
        "--select", "*", "--partition", PARTITION,
        "--config-json", json.dumps({"execution": {"config": {"in_process": {}}}}),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        undeploy("fraud-detector", LocalServingBackend(local=mlrelay_home))
    instance = dg.DagsterInstance.get()
    model = instance.get_latest_materialization_event(dg.AssetKey("fraud_model"))
    assert model is not None
    assert model.asset_materialization.metadata["backend"].value == "kubernetes"
    [job] = _objects(kube_cluster, JOBS)
    assert job["metadata"]["name"].startswith("fraud-detector-train-")
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    print(f"dagster asset materialize --select '*' on the emulator: {seconds:.1f}s")


def test_o1_dagster_terminating_the_run_deletes_the_kubernetes_job(
    kube_cluster: KubeEmulator, mlflow_settings, mlrelay_home, fraud_data, tmp_path, model_name
) -> None:
    pidfile = tmp_path / "trainer.pid"
    model = build_model_asset(
        "model",
        training_set="training_set",
        job=TrainingJob(
            name="sleeper",
            image="python:3.11",
            command=["python", "-c", SLEEPER],
            args=[str(pidfile)],
            experiment=model_name,
        ),
        model_name=model_name,
        backend="kubernetes",
        training_set_arg=None,
    )

    def terminate_when_running() -> None:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what Dagster's termination does to a step

    terminator = threading.Thread(target=terminate_when_running)
    terminator.start()
    result = dg.materialize(
        [training_set_asset(fraud_data["transactions"]), model],
        resources={
            "mlflow": MLflowResource(),
            "kubernetes": KubernetesResource(kubeconfig=str(kube_cluster.kubeconfig)),
        },
        raise_on_error=False,
    )
    terminator.join()

    assert not result.success
    assert not materializations(result, "model")
    assert _gone(kube_cluster), "the Job or its pod outlived the terminated run"
    assert not _proc.alive(int(pidfile.read_text()))
