"""Every waiter of a process shares one watch per namespace and kind (FAULTS K9, K10 on the shared
watch): counted by the emulator, with Jobs ended by writing their status (no kubelet needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from train_support import backend_for, fake_run, py_job

from mlrelay.kube import watch
from mlrelay.kube.shared import INFORMERS
from mlrelay.testing import KubeEmulator
from mlrelay.testing.auth import ADMIN
from mlrelay.testing.kinds import JOBS
from mlrelay.testing.store import WatchEvent
from mlrelay.training import JobHandle, JobState, JobStatus, manifests
from mlrelay.training.kubernetes import KubernetesJobBackend

JOBS_WATCH, PODS_WATCH = ("default", "jobs"), ("default", "pods")


def create(emulator: KubeEmulator, name: str) -> JobHandle:
    """A Job as the backend makes it (its manifest), straight into the store: nothing runs it."""
    job = py_job("pass", name=name)
    emulator.store.create(JOBS, manifests.batch_job(job, fake_run(), name, None), "default")
    return JobHandle(
        backend="kubernetes", job_name=name, run_id="r", experiment_id="0",
        tracking_uri="-", namespace="default", submitted_at=datetime.now(UTC),
    )  # fmt: skip


def complete(emulator: KubeEmulator, name: str) -> None:
    """What the Job controller writes once the Job's pods succeeded."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = {"status": "True", "lastTransitionTime": now}
    emulator.store.update_status(
        JOBS, "default", name,
        {"startTime": now, "completionTime": now, "conditions": [
            {"type": "SuccessCriteriaMet", **done}, {"type": "Complete", **done}]},
    )  # fmt: skip


def waiting(backend: KubernetesJobBackend, handle: JobHandle) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["status"] = backend.wait(handle, timeout=30)
        except Exception as exc:  # the test asserts on it
            out["error"] = exc

    out["thread"] = threading.Thread(target=run, daemon=True)
    out["thread"].start()
    return out


def two_waits(
    emulator: KubeEmulator, backend: KubernetesJobBackend
) -> tuple[dict[str, Any], dict[str, Any]]:
    return waiting(backend, create(emulator, "a")), waiting(backend, create(emulator, "b"))


def result(out: dict[str, Any], timeout: float = 20) -> JobStatus:
    out["thread"].join(timeout)
    assert "error" not in out, out.get("error")
    assert "status" in out, "wait() did not return"
    status: JobStatus = out["status"]
    return status


def until(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def watches(emulator: KubeEmulator, where: tuple[str, str]) -> int:
    return emulator.counter.watches_open[where]


def lists(emulator: KubeEmulator, plural: str) -> int:
    return emulator.counter.snapshot()[("list", "default", plural)]


def opens(emulator: KubeEmulator, plural: str) -> int:
    return emulator.counter.snapshot()[("watch", "default", plural)]


def both_watching(emulator: KubeEmulator) -> None:
    until(lambda: watches(emulator, JOBS_WATCH) and watches(emulator, PODS_WATCH), "the watches")


def succeed(emulator: KubeEmulator, **waits: dict[str, Any]) -> None:
    """Complete each named Job and check that its waiter saw it succeed."""
    for name, wait in waits.items():
        complete(emulator, name)
        assert result(wait).state is JobState.SUCCEEDED


def test_two_concurrent_waits_share_one_watch_per_kind(kube_emulator: KubeEmulator) -> None:
    # Two backends, two connections, same credentials: as two deferred tasks in one triggerer.
    first, second = backend_for(kube_emulator), backend_for(kube_emulator)
    a, b = waiting(first, create(kube_emulator, "a")), waiting(second, create(kube_emulator, "b"))
    both_watching(kube_emulator)
    time.sleep(0.3)  # both have joined; a second watch would be open by now
    assert kube_emulator.counter.watches_peak[JOBS_WATCH] == 1
    assert kube_emulator.counter.watches_peak[PODS_WATCH] == 1
    assert lists(kube_emulator, "jobs") == lists(kube_emulator, "pods") == 1
    succeed(kube_emulator, a=a, b=b)


def test_one_wait_ending_keeps_the_watch_another_uses_and_the_last_closes_it(
    kube_emulator: KubeEmulator,
) -> None:
    backend = backend_for(kube_emulator)
    a, b = two_waits(kube_emulator, backend)
    both_watching(kube_emulator)
    until(lambda: INFORMERS.borrowers(kube_emulator.url) == 4, "both waiters")
    succeed(kube_emulator, a=a)
    time.sleep(0.3)  # a closing watch would be gone by now
    assert watches(kube_emulator, JOBS_WATCH) == watches(kube_emulator, PODS_WATCH) == 1
    assert "status" not in b
    complete(kube_emulator, "b")
    assert result(b).state is JobState.SUCCEEDED  # the event came through the kept watch
    until(lambda: not watches(kube_emulator, JOBS_WATCH), "the jobs watch to close")
    until(lambda: not watches(kube_emulator, PODS_WATCH), "the pods watch to close")
    assert not INFORMERS.running(kube_emulator.url)


def test_k9_410_on_the_shared_watch_relists_once_for_every_waiter(
    kube_emulator: KubeEmulator,
) -> None:
    backend = backend_for(kube_emulator)
    a, b = two_waits(kube_emulator, backend)
    both_watching(kube_emulator)
    before = lists(kube_emulator, "jobs"), lists(kube_emulator, "pods")
    assert kube_emulator.faults.expire_watches() == 2  # one per kind, not one per waiter
    complete(kube_emulator, "a")  # while the watch is being re-established
    until(lambda: lists(kube_emulator, "jobs") > before[0], "the re-list")
    until(lambda: lists(kube_emulator, "pods") > before[1], "the re-list")
    time.sleep(0.3)  # a second waiter's re-list would have come by now
    assert lists(kube_emulator, "jobs") == before[0] + 1
    assert lists(kube_emulator, "pods") == before[1] + 1
    assert result(a).state is JobState.SUCCEEDED
    succeed(kube_emulator, b=b)


def test_k10_quiet_close_of_the_shared_watch_resumes_it_without_a_relist(
    kube_emulator: KubeEmulator,
) -> None:
    backend = backend_for(kube_emulator)
    a, b = two_waits(kube_emulator, backend)
    both_watching(kube_emulator)
    listed = lists(kube_emulator, "jobs")
    for _ in range(3):
        opened = opens(kube_emulator, "jobs"), opens(kube_emulator, "pods")
        kube_emulator.faults.close_watches()
        until(
            lambda: (
                opens(kube_emulator, "jobs") > opened[0]
                and opens(kube_emulator, "pods") > opened[1]
            ),
            "both watches reopened",
        )
        assert "status" not in a  # a closed stream is never "done"
        assert "status" not in b
    assert lists(kube_emulator, "jobs") == listed  # resumed from the resourceVersion
    succeed(kube_emulator, a=a, b=b)


def test_a_job_not_yet_in_the_shared_cache_is_not_read_as_deleted(
    kube_emulator: KubeEmulator,
) -> None:
    backend = backend_for(kube_emulator)
    a = waiting(backend, create(kube_emulator, "a"))
    until(lambda: kube_emulator.store.open_watches == 2, "the first waiter's watches")

    def late(event: WatchEvent) -> bool:  # the new Job's ADDED event is still on its way
        return event.type == "ADDED" and event.object["metadata"]["name"] == "late"

    kube_emulator.faults.drop_next_event(late)
    b = waiting(backend, create(kube_emulator, "late"))
    time.sleep(1.0)
    assert "error" not in b
    assert "status" not in b  # not DeletedExternally: a GET said it is there
    succeed(kube_emulator, late=b)
    succeed(kube_emulator, a=a)


def test_k12_a_job_deleted_before_the_waiter_joined_is_deleted_externally(
    kube_emulator: KubeEmulator,
) -> None:
    backend = backend_for(kube_emulator)
    a = waiting(backend, create(kube_emulator, "a"))
    both_watching(kube_emulator)
    handle = create(kube_emulator, "gone")
    kube_emulator.store.delete(JOBS, "default", "gone")
    status = backend.wait(handle, timeout=10)
    assert status.state is JobState.FAILED
    assert status.reason == "DeletedExternally"
    succeed(kube_emulator, a=a)


def test_waiters_with_other_credentials_do_not_share_a_watch(
    kube_emulator: KubeEmulator, tmp_path: Any
) -> None:
    token = kube_emulator.add_token("other", ADMIN)
    other = kube_emulator.write_kubeconfig(tmp_path / "other.kubeconfig", token=token)
    mine = backend_for(kube_emulator)
    theirs = KubernetesJobBackend(mine.kube.settings.model_copy(update={"kubeconfig": other}))
    a, b = waiting(mine, create(kube_emulator, "a")), waiting(theirs, create(kube_emulator, "b"))
    until(lambda: watches(kube_emulator, JOBS_WATCH) == 2, "a watch per identity")
    succeed(kube_emulator, a=a, b=b)


def test_a_wait_joining_a_running_watch_makes_no_request_of_its_own(
    kube_emulator: KubeEmulator,
) -> None:
    backend = backend_for(kube_emulator)
    a = waiting(backend, create(kube_emulator, "a"))
    until(lambda: kube_emulator.store.open_watches == 2, "the first waiter's watches")
    kube_emulator.counter.reset()
    b = waiting(backend, create(kube_emulator, "b"))  # its Job's event reaches the shared cache
    time.sleep(0.3)
    succeed(kube_emulator, b=b)
    assert kube_emulator.counter.total == 0  # no list, no watch, no GET: the cache answered
    succeed(kube_emulator, a=a)


def test_k10_a_watch_gone_quiet_is_reopened_from_its_resource_version(
    kube_emulator: KubeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "QUIET", 1.0)  # the emulator sends bookmarks every 0.2 s
    backend = backend_for(kube_emulator)
    a = waiting(backend, create(kube_emulator, "a"))
    until(lambda: kube_emulator.store.open_watches == 2, "the watches")
    listed, opened = lists(kube_emulator, "jobs"), opens(kube_emulator, "jobs")
    hang = kube_emulator.faults.hang_next(method="GET", path="/jobs$")  # half-open: no answer
    kube_emulator.faults.close_watches()
    assert hang.started.wait(5)
    until(lambda: opens(kube_emulator, "jobs") == opened + 2, "a watch after the silent one")
    assert lists(kube_emulator, "jobs") == listed  # resumed, not re-listed
    succeed(kube_emulator, a=a)
