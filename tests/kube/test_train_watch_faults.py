"""FAULTS K9-K12: waiting on a training Job through the shared watch loop while the emulator
expires, closes and drops watch events, or someone deletes the Job."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from train_support import backend_for, fake_run, py_job

from mlrelay.kube.client import JOBS
from mlrelay.testing import KubeEmulator
from mlrelay.testing.kinds import JOBS as JOBS_KIND
from mlrelay.testing.store import WatchEvent
from mlrelay.training import JobState, JobStatus

SLEEPER = "import time; print('start', flush=True); time.sleep({seconds}); print('done')"


def wait_in_thread(backend, handle) -> dict:
    out: dict = {}

    def run() -> None:
        out["status"] = backend.wait(handle, timeout=60)
        out["at"] = time.monotonic()
        out["wall"] = datetime.now(UTC)

    out["thread"] = threading.Thread(target=run, daemon=True)
    out["thread"].start()
    return out


def finished(out: dict, timeout: float = 60) -> JobStatus:
    out["thread"].join(timeout)
    assert "status" in out, "wait() did not return"
    return out["status"]


def test_k9_watch_410_twice_relists_and_keeps_the_terminal_state(
    kube_cluster: KubeEmulator,
) -> None:
    backend = backend_for(kube_cluster)
    handle = backend.submit(py_job(SLEEPER.format(seconds=2)), fake_run())
    out = wait_in_thread(backend, handle)
    time.sleep(0.7)
    first = kube_cluster.faults.expire_watches()
    time.sleep(0.5)
    second = kube_cluster.faults.expire_watches()
    status = finished(out)
    assert first >= 2
    assert second >= 2
    assert status.state is JobState.SUCCEEDED
    assert status.finished_at is not None


def test_k10_watch_closed_before_any_event_is_reopened_not_read_as_done(
    kube_cluster: KubeEmulator,
) -> None:
    backend = backend_for(kube_cluster)
    handle = backend.submit(py_job(SLEEPER.format(seconds=2)), fake_run())
    out = wait_in_thread(backend, handle)
    for _ in range(5):
        time.sleep(0.2)
        kube_cluster.faults.close_watches()
        assert "status" not in out  # a closed stream is never "done"
    status = finished(out)
    assert status.state is JobState.SUCCEEDED


def test_k11_dropped_completion_event_is_caught_by_the_periodic_relist(
    kube_cluster: KubeEmulator,
) -> None:
    relist = 2.0
    backend = backend_for(kube_cluster, relist_interval=relist)

    def completion(event: WatchEvent) -> bool:
        conditions = (event.object.get("status") or {}).get("conditions") or []
        return event.kind.plural == "jobs" and any(c["type"] == "Complete" for c in conditions)

    def terminal_pod(event: WatchEvent) -> bool:
        return event.kind.plural == "pods" and event.object["status"].get("phase") == "Succeeded"

    # every event that could reveal the end is dropped once: only a re-list can see it
    for predicate in (completion, completion, terminal_pod, terminal_pod):
        kube_cluster.faults.drop_next_event(predicate)
    handle = backend.submit(py_job(SLEEPER.format(seconds=0.5)), fake_run())
    out = wait_in_thread(backend, handle)
    status = finished(out)
    completed = kube_cluster.store.get(JOBS_KIND, "default", handle.job_name)
    done_at = next(
        c["lastTransitionTime"]
        for c in completed["status"]["conditions"]
        if c["type"] == "Complete"
    )
    assert status.state is JobState.SUCCEEDED
    assert any(action == "drop" for _, _, action in kube_cluster.faults.fired)
    seen_after = (
        out["wall"] - datetime.fromisoformat(done_at.replace("Z", "+00:00"))
    ).total_seconds()
    assert seen_after < relist + 4.0  # bounded by the re-list (stamps have 1 s precision)


def test_k12_job_deleted_by_someone_else_fails_fast_as_deleted_externally(
    kube_cluster: KubeEmulator,
) -> None:
    backend = backend_for(kube_cluster)
    handle = backend.submit(py_job(SLEEPER.format(seconds=30)), fake_run())
    out = wait_in_thread(backend, handle)
    time.sleep(1.0)
    started = time.monotonic()
    backend.kube.delete(JOBS, handle.job_name, propagation="Background")
    status = finished(out, timeout=15)
    assert status.state is JobState.FAILED
    assert status.reason == "DeletedExternally"
    assert out["at"] - started < 5
