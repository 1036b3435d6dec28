"""FAULTS T1-T10, T12 and O5: why a training Job failed, as data, decided as early as the pods
allow and from the objects' own timestamps, on an emulator whose kubelet runs the pods."""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from train_support import backend_for, fake_run, pods, py_job

from mlrelay.errors import TrainingFailed
from mlrelay.kube.client import JOBS
from mlrelay.settings import MLflowSettings
from mlrelay.testing import KubeEmulator
from mlrelay.testing.server import PYTHON_IMAGES, default_emulator
from mlrelay.training import EnvVar, JobHandle, JobState, Resources, SecretKeyRef, manifests, train
from mlrelay.training.kubernetes import job_status
from mlrelay.training.podstate import Limits

MISSING = "registry.example.com/team/missing:1.0"


@pytest.fixture
def cluster(tmp_path):
    """A cluster whose log streams never close after a container exits (T12) and that cannot
    pull one image (T2)."""
    images = {image: {"python": sys.executable} for image in PYTHON_IMAGES}
    options = {"images": images, "missing_images": [MISSING], "log_linger": None}
    with default_emulator(bookmark_interval=0.2, cluster=options) as emulator:
        emulator.write_kubeconfig(tmp_path / "kubeconfig")
        yield emulator


def test_t1_oomkilled_reports_the_memory_limit_and_last_lines(
    cluster: KubeEmulator, mlflow_server: str
) -> None:
    job = py_job(
        "print('loading a big matrix', flush=True); import time; time.sleep(5)",
        env=[EnvVar(name="MLRELAY_EMULATOR_OOM", value="1")],
        resources=Resources(memory="64Mi"),
    )
    with pytest.raises(TrainingFailed) as info:
        train(job, backend_for(cluster), settings=MLflowSettings(tracking_uri=mlflow_server))
    exc = info.value
    assert exc.reason == "OOMKilled"
    assert exc.exit_code == 137
    assert "memory limit 64Mi" in str(exc)
    assert exc.attempts[0]["memory_limit"] == "64Mi"


@pytest.mark.parametrize(
    ("image", "reasons"),
    [(MISSING, {"ErrImagePull", "ImagePullBackOff"}), ("Not A/Valid Image", {"InvalidImageName"})],
)
def test_t2_image_that_cannot_be_pulled_fails_at_the_first_status(
    cluster: KubeEmulator, image: str, reasons: set[str]
) -> None:
    backend = backend_for(cluster)
    job = py_job("print('never')").model_copy(update={"image": image})
    handle = backend.submit(job, fake_run())
    started = time.monotonic()
    status = backend.wait(handle, timeout=30)
    assert status.state is JobState.FAILED
    assert status.reason in reasons
    assert status.message
    assert handle.job_name in status.message
    assert time.monotonic() - started < 5


def test_t3_crash_loop_fails_fast_with_the_previous_containers_logs(cluster: KubeEmulator) -> None:
    backend = backend_for(cluster)
    job = py_job("print('crashing now', flush=True); raise SystemExit(2)", backoff_limit=6)
    body = manifests.batch_job(job, fake_run(), job.name, None)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"  # the kubelet restarts it
    backend.kube.create(JOBS, body)
    handle = JobHandle(
        backend="kubernetes", job_name=job.name, run_id="r", experiment_id="0",
        tracking_uri="-", namespace="default", submitted_at=datetime.now(UTC),
    )  # fmt: skip
    status = backend.wait(handle, timeout=30)
    assert status.reason == "CrashLoopBackOff"
    assert status.exit_code == 2
    assert status.attempts
    assert "crashing now" in status.attempts[0].logs


def test_t4_missing_secret_key_fails_after_the_grace_period_with_the_message(
    cluster: KubeEmulator,
) -> None:
    backend = backend_for(cluster, limits=Limits(config_error=1.5))
    ref = SecretKeyRef(name="no-such-secret", key="token")
    handle = backend.submit(
        py_job("print(1)", env=[EnvVar(name="T", secret_key_ref=ref)]), fake_run()
    )
    started = time.monotonic()
    status = backend.wait(handle, timeout=30)
    assert status.reason == "CreateContainerConfigError"
    assert "no-such-secret" in (status.message or "")
    assert 1.0 <= time.monotonic() - started < 8


def test_t5_unschedulable_fails_at_the_scheduling_timeout_with_the_schedulers_message(
    cluster: KubeEmulator,
) -> None:
    backend = backend_for(cluster, limits=Limits(scheduling=2.0))
    handle = backend.submit(py_job("print(1)", resources=Resources(gpu=1)), fake_run())
    status = backend.wait(handle, timeout=30)
    assert status.reason == "Unschedulable"
    assert "nvidia.com/gpu" in (status.message or "")
    assert "scheduling timeout 2s" in status.message


def test_o5_late_waiter_times_out_from_the_pods_age_not_from_its_own_start(
    cluster: KubeEmulator,
) -> None:
    handle = backend_for(cluster).submit(py_job("print(1)", resources=Resources(gpu=1)), fake_run())
    # a waiter that starts later (a triggerer restarted) and whose clock says the pod is old
    late = backend_for(
        cluster, limits=Limits(scheduling=60), now=lambda: datetime.now(UTC) + timedelta(minutes=5)
    )
    started = time.monotonic()
    assert late.wait(handle, timeout=30).reason == "Unschedulable"
    assert time.monotonic() - started < 10  # far less than its own 60 s limit
    # and a running pod never times out however late the waiter comes
    running = late.submit(py_job("import time; time.sleep(1)"), fake_run())
    assert late.wait(running, timeout=30).state is JobState.SUCCEEDED


def test_t6_evicted_pod_is_an_attempt_and_the_retry_is_followed(cluster: KubeEmulator) -> None:
    backend = backend_for(cluster)
    job = py_job("import time; print('working', flush=True); time.sleep(2)", backoff_limit=1)
    handle = backend.submit(job, fake_run())
    first = _running_pod(cluster, handle.job_name)
    assert cluster.cluster is not None
    cluster.cluster.evict("default", first)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(backend.logs(handle)), daemon=True)
    reader.start()
    status = backend.wait(handle, timeout=30)
    reader.join(15)
    assert status.state is JobState.SUCCEEDED
    assert [(a.pod, a.reason) for a in status.attempts] == [(first, "Evicted")]
    assert any(not line.startswith(f"[{first}]") and "working" in line for line in lines)


def test_t7_deadline_exceeded_is_terminal_before_the_backoff_limit(cluster: KubeEmulator) -> None:
    backend = backend_for(cluster)
    job = py_job("import time; time.sleep(30)", backoff_limit=3, active_deadline_seconds=1)
    status = backend.wait(backend.submit(job, fake_run()), timeout=30)
    assert status.state is JobState.FAILED
    assert status.reason == "DeadlineExceeded"


def test_t8_backoff_limit_reports_every_attempt_and_streams_every_pod(
    cluster: KubeEmulator, mlflow_server: str
) -> None:
    lines: list[str] = []
    job = py_job(
        "import os; print('attempt on', os.environ['HOSTNAME'], flush=True); raise SystemExit(1)",
        backoff_limit=2,
    )
    with pytest.raises(TrainingFailed) as info:
        train(
            job,
            backend_for(cluster),
            settings=MLflowSettings(tracking_uri=mlflow_server),
            log=lines.append,
        )
    exc = info.value
    assert exc.reason == "BackoffLimitExceeded"
    assert len(exc.attempts) == 3
    assert all(a["exit_code"] == 1 and a["logs"] for a in exc.attempts)
    streamed = {line.split("]")[0] for line in lines if "attempt on" in line}
    assert streamed == {f"[{a['pod']}" for a in exc.attempts}


def test_t9_failure_target_decides_before_failed_is_set() -> None:
    job = {
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy", "message": "Container trainer for pod default/j-x failed with exit code 42 matching FailJob rule at index 0"}]},
    }  # fmt: skip
    status = job_status(job, [], datetime.now(UTC), Limits())
    assert status.state is JobState.FAILED
    assert status.reason == "PodFailurePolicy"
    assert "exit code 42" in (status.message or "")
    not_yet = {
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": "Suspended", "status": "False"}]},
    }
    assert job_status(not_yet, [], datetime.now(UTC), Limits()).state is JobState.PENDING


def test_t9_pod_failure_policy_on_the_cluster(cluster: KubeEmulator) -> None:
    backend = backend_for(cluster)
    job = py_job("raise SystemExit(42)", backoff_limit=5)
    body = manifests.batch_job(job, fake_run(), job.name, None)
    body["spec"]["podFailurePolicy"] = {
        "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
    }
    backend.kube.create(JOBS, body)
    handle = JobHandle(
        backend="kubernetes", job_name=job.name, run_id="r", experiment_id="0",
        tracking_uri="-", namespace="default", submitted_at=datetime.now(UTC),
    )  # fmt: skip
    status = backend.wait(handle, timeout=30)
    assert status.reason == "PodFailurePolicy"
    assert len(status.attempts) == 1


def test_t10_suspended_job_is_queued_without_a_startup_timeout(cluster: KubeEmulator) -> None:
    messages: list[str] = []
    backend = backend_for(
        cluster, limits=Limits(scheduling=1.0, config_error=1.0), log=messages.append
    )
    handle = backend.submit(py_job("print('admitted')", queue="team-a"), fake_run())
    assert backend.status(handle).state is JobState.QUEUED
    time.sleep(2.5)  # longer than every startup limit: still only queued
    assert backend.status(handle).state is JobState.QUEUED
    threading.Timer(
        1.0, lambda: backend.kube.patch(JOBS, handle.job_name, {"spec": {"suspend": False}})
    ).start()
    status = backend.wait(handle, timeout=30)
    assert status.state is JobState.SUCCEEDED
    assert any("Queued" in m and "team-a" in m for m in messages)


def test_t12_log_stream_left_open_after_exit_is_closed_after_the_linger(
    cluster: KubeEmulator,
) -> None:
    backend = backend_for(cluster, log_linger=1.0)
    handle = backend.submit(py_job("print('one'); print('two')"), fake_run())
    started = time.monotonic()
    lines = list(backend.logs(handle))
    assert [line.split("] ", 1)[1] for line in lines] == ["one", "two"]
    assert time.monotonic() - started < 10


def _running_pod(emulator: KubeEmulator, job_name: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in pods(emulator):
            if (
                pod["metadata"]["name"].startswith(job_name)
                and pod["status"].get("phase") == "Running"
            ):
                return str(pod["metadata"]["name"])
        time.sleep(0.1)
    raise AssertionError("no running pod")
