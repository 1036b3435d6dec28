"""One canary secret through every core path (FAULTS S2): a job's env secret (local backend and
the emulator), the MLflow token, the kubeconfig token. Everything the run leaves is scanned
for it: logs, captured stdout/stderr, the trainer's output, results and handles as JSON, reprs
of specs and settings, exception text, the MLflow run's params, tags and artifacts, and every
object on the emulator. The one allowed place is the Secret mlrelay makes for the job."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from canary_support import CANARY, ENCODED, assert_clean, files_text, mlflow_run_text

from mlrelay.errors import MLRelayError
from mlrelay.settings import KubernetesSettings, MLflowSettings
from mlrelay.testing import KubeEmulator
from mlrelay.testing.auth import ADMIN
from mlrelay.training import EnvVar, LocalBackend, RunContext, TrainingJob, train
from mlrelay.training.kubernetes import KubernetesJobBackend

# The trainer proves it received the secret without printing it.
TRAINER = (
    "import os; v = os.environ['API_KEY']; t = os.environ.get('MLFLOW_TRACKING_TOKEN');"
    "print('key length', len(v), 'token set', t is not None)"
)


def job(name: str, experiment: str, **fields: Any) -> TrainingJob:
    return TrainingJob(
        name=name,
        command=[sys.executable, "-c", TRAINER],
        env=[EnvVar(name="API_KEY", secret_value=CANARY)],
        experiment=experiment,
        **fields,
    )


def test_s2_the_secret_reaches_the_local_trainer_and_nowhere_else(
    mlflow_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = MLflowSettings(tracking_uri=mlflow_server, token=CANARY)
    lines: list[str] = []
    spec = job("canary-local", f"canary-{uuid.uuid4().hex[:6]}")
    result = train(
        spec, LocalBackend(state_dir=tmp_path / "jobs"), settings=settings, log=lines.append
    )
    assert any("key length" in line and "token set True" in line for line in lines)
    out, err = capfd.readouterr()
    assert_clean(
        {
            "the log records": caplog.text,
            "stdout/stderr": out + err,
            "the trainer's output": "\n".join(lines),
            "the result": result.model_dump_json(),
            "the spec's JSON": spec.model_dump_json(),
            "reprs": repr(spec) + str(spec) + repr(settings) + str(settings),
            "the MLflow run": mlflow_run_text(mlflow_server, result.run_id),
            "the job's state dir": files_text(tmp_path / "jobs"),
        }
    )


def test_s2_a_failing_local_job_does_not_repeat_the_secret(mlflow_server: str, tmp_path) -> None:
    settings = MLflowSettings(tracking_uri=mlflow_server, token=CANARY)
    failing = job("canary-fails", f"canary-{uuid.uuid4().hex[:6]}").model_copy(
        update={"command": [sys.executable, "-c", "import os, sys; sys.exit(3)"]}
    )
    with pytest.raises(MLRelayError) as info:
        train(failing, LocalBackend(state_dir=tmp_path / "jobs"), settings=settings)
    assert_clean({"the exception": str(info.value) + repr(info.value) + repr(info.value.__dict__)})


def objects(emulator: KubeEmulator) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for kind in emulator.store.kinds():
        items = emulator.store.list(kind, None)[0]
        if items:
            found[kind.plural] = items
    return found


def test_s2_on_the_cluster_the_secret_is_only_in_the_jobs_secret_even_after_a_500(
    kube_cluster: KubeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    token = kube_cluster.add_token("canary-user", ADMIN, token=CANARY)  # the kubeconfig token
    config = kube_cluster.write_kubeconfig(tmp_path / "kubeconfig", token=token)
    backend = KubernetesJobBackend(KubernetesSettings(kubeconfig=config), relist_interval=2.0)
    # a run context as train() makes it, with the MLflow token (the backend sends no request
    # to MLflow itself)
    run = RunContext(
        run_id=uuid.uuid4().hex,
        experiment_id="0",
        experiment_name="e",
        tracking_uri="http://127.0.0.1:9",
        token=CANARY,
    )
    spec = job("canary-kube", "e", image="python:3.11").model_copy(
        update={"command": ["python", "-c", "import os; print(len(os.environ['API_KEY']))"]}
    )
    kube_cluster.faults.fail_next(1, method="POST", path="/jobs$", status=500)  # K1 + S2
    handle = backend.submit(spec, run)
    status = backend.wait(handle, timeout=60)
    logs = "\n".join(backend.logs(handle))
    assert status.state.value == "Succeeded"
    assert str(len(CANARY)) in logs  # the pod got the value
    kube_cluster.faults.fail_next(5, method="POST", path="/jobs$", status=422)
    with pytest.raises(MLRelayError) as refused:
        backend.submit(spec.model_copy(update={"name": "canary-refused"}), run)
    out, err = capfd.readouterr()
    stored = objects(kube_cluster)
    secrets = stored.pop("secrets", [])
    holding = [s["metadata"]["name"] for s in secrets if ENCODED in json.dumps(s)]
    assert holding == ["canary-kube-env"], "the secret must live in the job's Secret, only"
    assert_clean(
        {
            "the objects on the cluster (but the Secret)": stored,
            "the log records": caplog.text,
            "stdout/stderr": out + err,
            "the pod's logs": logs,
            "the handle and status": handle.model_dump_json() + status.model_dump_json(),
            "the refused create's error": str(refused.value) + repr(refused.value),
            "the settings": repr(backend.kube.settings) + str(backend.kube.settings),
        }
    )
