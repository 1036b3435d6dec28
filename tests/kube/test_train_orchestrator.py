"""FAULTS O1-O3 and T11 for the Kubernetes training backend, plus parallel workers: what an
orchestrator's task does to a training job (SIGTERM, SIGKILL then retry, a retry while the first
try runs) and what the task's log shows, on the emulator with the session's MLflow server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from mlflow import MlflowClient
from train_support import REPO, backend_for, fake_run, jobs, pods, py_job, unique

from mlrelay.settings import MLflowSettings
from mlrelay.testing import KubeEmulator
from mlrelay.training import JobState, RunIdentity, train

SLOW = (
    "import time\nfor i in range({n}):\n    print('step', i, flush=True)\n    time.sleep({pause})"
)

TASK = """
import logging, sys
from mlrelay.settings import KubernetesSettings, MLflowSettings
from mlrelay.training import RunIdentity, TrainingJob, train
from mlrelay.training.kubernetes import KubernetesJobBackend
logging.basicConfig(level=logging.INFO)
job = TrainingJob.model_validate_json(sys.argv[1])
identity = RunIdentity.model_validate_json(sys.argv[2])
backend = KubernetesJobBackend(KubernetesSettings(kubeconfig=sys.argv[3]), grace_period=1)
train(job, backend, identity=identity, settings=MLflowSettings(tracking_uri=sys.argv[4]))
print("TASK SUCCEEDED")
"""


def start_task(job, identity, emulator: KubeEmulator, mlflow_server: str) -> subprocess.Popen:
    """An orchestrator task: ``train()`` in its own process, as a worker runs it."""
    argv = [sys.executable, "-c", textwrap.dedent(TASK), job.model_dump_json(),
            identity.model_dump_json(), str(emulator.kubeconfig), mlflow_server]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "core" / "src")}
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def running_pod(emulator: KubeEmulator, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in pods(emulator):
            if pod["status"].get("phase") == "Running":
                return str(pod["metadata"]["name"])
        time.sleep(0.1)
    raise AssertionError("no pod started running")


def test_o1_sigterm_mid_training_deletes_the_job_and_the_task_fails(
    kube_cluster: KubeEmulator, mlflow_server: str
) -> None:
    job = py_job(SLOW.format(n=60, pause=0.5))
    identity = RunIdentity(orchestrator="python", run_id=unique("run"), task_id="train")
    task = start_task(job, identity, kube_cluster, mlflow_server)
    try:
        running_pod(kube_cluster)
        task.send_signal(signal.SIGTERM)
        output, _ = task.communicate(timeout=60)
    finally:
        task.kill()
    assert task.returncode != 0
    assert "TASK SUCCEEDED" not in output
    assert "Cancelled" in output
    assert jobs(kube_cluster) == []
    assert pods(kube_cluster) == []


def test_o2_retry_after_sigkill_adopts_the_running_job(
    kube_cluster: KubeEmulator, mlflow_server: str
) -> None:
    job = py_job(SLOW.format(n=6, pause=0.5))
    identity = RunIdentity(
        orchestrator="airflow", run_id=unique("run"), task_id="train", try_number=1
    )
    first = start_task(job, identity, kube_cluster, mlflow_server)
    pod = running_pod(kube_cluster)
    first.kill()  # the worker dies without cleaning up
    first.wait()
    retry = identity.model_copy(update={"try_number": 2})
    messages: list[str] = []
    result = train(
        job,
        backend_for(kube_cluster, log=messages.append),
        identity=retry,
        settings=MLflowSettings(tracking_uri=mlflow_server),
    )
    assert any(m.startswith("adopted Job") for m in messages)
    assert len(jobs(kube_cluster)) == 1
    assert [p["metadata"]["name"] for p in pods(kube_cluster)] == [pod]  # the same trainer
    runs = MlflowClient(mlflow_server).search_runs(
        [result.experiment_id], filter_string=f"tags.`mlrelay.identity` = '{identity.key}'"
    )
    assert [r.info.run_id for r in runs] == [result.run_id]


def test_o3_retry_while_the_first_try_runs_is_single_flight(
    kube_cluster: KubeEmulator, mlflow_server: str
) -> None:
    job = py_job(SLOW.format(n=6, pause=0.5))
    identity = RunIdentity(
        orchestrator="dagster", run_id=unique("run"), task_id="model", map_index="2026-11-22"
    )
    settings = MLflowSettings(tracking_uri=mlflow_server)
    results: dict[str, object] = {}
    first = threading.Thread(
        target=lambda: results.setdefault(
            "first", train(job, backend_for(kube_cluster), identity=identity, settings=settings)
        )
    )
    first.start()
    running_pod(kube_cluster)
    second = train(job, backend_for(kube_cluster), identity=identity, settings=settings)
    first.join(60)
    assert results["first"].run_id == second.run_id  # type: ignore[attr-defined]
    assert len(jobs(kube_cluster)) == 1
    assert len(pods(kube_cluster)) == 1


def test_t11_cut_log_stream_resumes_without_loss_or_duplicates(kube_cluster: KubeEmulator) -> None:
    backend = backend_for(kube_cluster)
    handle = backend.submit(py_job(SLOW.format(n=12, pause=0.15)), fake_run())
    kube_cluster.faults.cut_logs_next(after_lines=3, path="/log", times=2)
    lines = [line.split("] ", 1)[1] for line in backend.logs(handle)]
    assert lines == [f"step {i}" for i in range(12)]
    assert sum(1 for f in kube_cluster.faults.fired if f[2] == "cut-logs") == 2


def test_parallel_workers_run_as_an_indexed_job_and_every_log_is_streamed(
    kube_cluster: KubeEmulator, mlflow_server: str
) -> None:
    lines: list[str] = []
    job = py_job(
        "import os; print('worker', os.environ['JOB_COMPLETION_INDEX'], flush=True)", workers=3
    )
    train(
        job,
        backend_for(kube_cluster),
        settings=MLflowSettings(tracking_uri=mlflow_server),
        log=lines.append,
    )
    (made,) = jobs(kube_cluster)
    assert made["spec"]["completionMode"] == "Indexed"
    assert made["spec"]["completions"] == made["spec"]["parallelism"] == 3
    said = sorted(line.split("] ", 1)[1] for line in lines if "worker" in line)
    assert said == ["worker 0", "worker 1", "worker 2"]
    assert len({line.split("]")[0] for line in lines if "worker" in line}) == 3


@pytest.mark.parametrize("state", [JobState.SUCCEEDED])
def test_cancel_of_an_ended_job_leaves_it_for_inspection(kube_cluster: KubeEmulator, state) -> None:
    backend = backend_for(kube_cluster)
    handle = backend.submit(py_job("print(1)"), fake_run())
    assert backend.wait(handle, timeout=30).state is state
    backend.cancel(handle)
    assert len(jobs(kube_cluster)) == 1


def test_following_the_logs_of_a_cancelled_job_ends(kube_cluster: KubeEmulator) -> None:
    backend = backend_for(kube_cluster)
    handle = backend.submit(py_job(SLOW.format(n=100, pause=0.2)), fake_run())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(backend.logs(handle)), daemon=True)
    reader.start()
    running_pod(kube_cluster)
    time.sleep(0.5)
    backend.cancel(handle)
    reader.join(15)
    assert not reader.is_alive(), "the log stream of a deleted job did not end"
    assert lines
    assert lines[0].endswith("step 0")
