"""The emulated Job controller: real pods, counters and the 1.31+ condition sequence."""

from __future__ import annotations

from typing import Any

import pytest
from kubelet_support import (  # noqa: F401 - fixture_cluster is a fixture
    PY,
    fixture_cluster,
    get_pod,
    pid_of,
    read_log,
    wait_for,
)

from mlrelay import _proc
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store


def job(name: str, code: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": PY, "command": ["-c", code]}
    template = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    return {"metadata": {"name": name}, "spec": {"template": template, **spec}}


def get_job(store: Store, name: str) -> dict[str, Any] | None:
    try:
        return store.get("jobs", "default", name)
    except ApiError:
        return None


def condition(store: Store, name: str, type_: str) -> dict[str, Any] | None:
    found = get_job(store, name)
    for c in ((found or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c  # type: ignore[no-any-return]
    return None


def pods_of(store: Store, name: str) -> list[dict[str, Any]]:
    return store.list("pods", "default", lambda p: p["metadata"]["labels"].get("job-name") == name)[
        0
    ]


def condition_history(store: Store, name: str) -> list[str]:
    """Condition types in the order they appeared on the Job, from every status write."""
    seen: list[str] = []

    def record(event: Any) -> None:
        if event.kind.plural == "jobs" and event.object["metadata"]["name"] == name:
            for c in (event.object.get("status") or {}).get("conditions") or []:
                if c["type"] not in seen:
                    seen.append(c["type"])

    store.subscribe(record, kinds=["jobs"])
    return seen


def test_job_completes_with_success_criteria_met_then_complete(cluster):
    store = cluster.store
    history = condition_history(store, "hello")
    store.create("jobs", job("hello", "print('hello from the job')"))
    wait_for(store, lambda: condition(store, "hello", "Complete"))
    status = store.get("jobs", "default", "hello")["status"]
    assert history == ["SuccessCriteriaMet", "Complete"]
    assert (status["succeeded"], status["failed"], status["active"]) == (1, 0, 0)
    assert status["completionTime"] >= status["startTime"]
    assert condition(store, "hello", "Complete")["reason"] == "CompletionsReached"
    (pod,) = pods_of(store, "hello")
    uid = store.get("jobs", "default", "hello")["metadata"]["uid"]
    assert pod["metadata"]["name"].startswith("hello-")
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "hello"
    assert pod["metadata"]["labels"]["controller-uid"] == uid
    assert pod["metadata"]["ownerReferences"][0]["controller"] is True
    assert read_log(cluster, pod["metadata"]["name"]) == "hello from the job\n"


def test_backoff_limit_exceeded_after_backoff_limit_plus_one_failures(cluster):
    store = cluster.store
    history = condition_history(store, "flaky")
    store.create("jobs", job("flaky", "import sys; print('boom'); sys.exit(2)", backoffLimit=2))
    failed = wait_for(store, lambda: condition(store, "flaky", "Failed"))
    assert (failed["reason"], failed["message"]) == (
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    assert history == ["FailureTarget", "Failed"]
    status = store.get("jobs", "default", "flaky")["status"]
    assert (status["failed"], status["succeeded"], status["active"]) == (3, 0, 0)
    assert "completionTime" not in status
    pods = pods_of(store, "flaky")
    assert len(pods) == 3
    assert all(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2 for p in pods
    )


def test_active_deadline_exceeded_fails_the_job_and_stops_its_pods(cluster):
    store = cluster.store
    store.create(
        "jobs", job("slow", "import time; time.sleep(60)", activeDeadlineSeconds=1, backoffLimit=6)
    )
    (running,) = wait_for(
        store, lambda: [p for p in pods_of(store, "slow") if p["status"]["phase"] == "Running"]
    )
    failed = wait_for(store, lambda: condition(store, "slow", "Failed"))
    assert failed["reason"] == "DeadlineExceeded"
    assert condition(store, "slow", "FailureTarget")["reason"] == "DeadlineExceeded"
    assert pods_of(store, "slow") == []
    assert not _proc.alive(pid_of(running))
    assert store.get("jobs", "default", "slow")["status"]["active"] == 0


def test_indexed_job_gives_each_pod_its_completion_index(cluster):
    store = cluster.store
    code = "import os; print(os.environ['JOB_COMPLETION_INDEX'])"
    store.create(
        "jobs", job("shards", code, completions=2, parallelism=2, completionMode="Indexed")
    )
    wait_for(store, lambda: condition(store, "shards", "Complete"))
    status = store.get("jobs", "default", "shards")["status"]
    assert (status["succeeded"], status["completedIndexes"]) == (2, "0-1")
    pods = sorted(pods_of(store, "shards"), key=lambda p: p["metadata"]["name"])
    for index, pod in enumerate(pods):
        assert pod["metadata"]["name"].startswith(f"shards-{index}-")
        assert pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == str(
            index
        )
        assert read_log(cluster, pod["metadata"]["name"]) == f"{index}\n"


def test_suspended_job_creates_no_pods_until_resumed(cluster):
    store = cluster.store
    store.create("jobs", job("queued", "print('ran')", suspend=True))
    suspended = wait_for(store, lambda: condition(store, "queued", "Suspended"))
    assert (suspended["status"], suspended["reason"], suspended["message"]) == (
        "True",
        "JobSuspended",
        "Job suspended",
    )
    assert pods_of(store, "queued") == []
    assert "startTime" not in store.get("jobs", "default", "queued")["status"]

    def resume(obj: dict[str, Any]) -> dict[str, Any]:
        obj["spec"]["suspend"] = False
        return obj

    store.patch("jobs", "default", "queued", resume)
    wait_for(store, lambda: condition(store, "queued", "Complete"))
    resumed = condition(store, "queued", "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


def test_pod_failure_policy_fail_job_on_exit_code(cluster):
    store = cluster.store
    history = condition_history(store, "policy")
    rules = [
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
        }
    ]
    store.create(
        "jobs",
        job(
            "policy", "import sys; sys.exit(42)", backoffLimit=6, podFailurePolicy={"rules": rules}
        ),
    )
    failed = wait_for(store, lambda: condition(store, "policy", "Failed"))
    assert failed["reason"] == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in failed["message"]
    assert history == ["FailureTarget", "Failed"]
    assert store.get("jobs", "default", "policy")["status"]["failed"] == 1


def test_pod_failure_policy_ignore_does_not_count_the_failure(cluster, tmp_path):
    store = cluster.store
    # First attempt exits 43 (ignored); the replacement finds the marker file and succeeds.
    code = (
        "import os, sys; p = os.environ['M']\n"
        "if os.path.exists(p): os.remove(p); sys.exit(0)\nopen(p, 'w').close(); sys.exit(43)"
    )
    spec = job(
        "ignore",
        code,
        backoffLimit=0,
        podFailurePolicy={
            "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [43]}}]
        },
    )
    spec["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "M", "value": str(tmp_path / "marker")}
    ]
    store.create("jobs", spec)
    wait_for(store, lambda: condition(store, "ignore", "Complete"))
    status = store.get("jobs", "default", "ignore")["status"]
    assert (status["failed"], status["succeeded"]) == (0, 1)
    assert len(pods_of(store, "ignore")) == 2


def test_ttl_seconds_after_finished_deletes_the_job_and_its_pods(cluster):
    store = cluster.store
    store.create("jobs", job("short", "print(1)", ttlSecondsAfterFinished=0))
    wait_for(store, lambda: get_job(store, "short") is None and not pods_of(store, "short"))


@pytest.mark.parametrize("policy", ["Foreground", "Background"])
def test_deleting_a_job_terminates_its_pod_processes(cluster, policy):
    store = cluster.store
    store.create("jobs", job("doomed", "import time; time.sleep(60)"))
    (running,) = wait_for(
        store, lambda: [p for p in pods_of(store, "doomed") if p["status"]["phase"] == "Running"]
    )
    store.delete("jobs", "default", "doomed", propagation=policy)
    wait_for(store, lambda: get_job(store, "doomed") is None and not pods_of(store, "doomed"))
    assert not _proc.alive(pid_of(running))
    assert get_pod(store, running["metadata"]["name"]) is None


@pytest.mark.parametrize("ignore_disruptions", [False, True])
def test_evicted_pod_is_replaced_and_counted_unless_the_policy_ignores_it(
    cluster,
    ignore_disruptions,
):
    store = cluster.store
    spec: dict[str, Any] = {"backoffLimit": 3}
    if ignore_disruptions:
        rule = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
        spec["podFailurePolicy"] = {"rules": [rule]}
    store.create("jobs", job("evictee", "import time; time.sleep(60)", **spec))
    (first,) = wait_for(
        store, lambda: [p for p in pods_of(store, "evictee") if p["status"]["phase"] == "Running"]
    )
    cluster.evict("default", first["metadata"]["name"])
    # Ready again: the status saying so was written after the replacement was created.
    wait_for(
        store,
        lambda: (
            sorted(p["status"].get("phase") for p in pods_of(store, "evictee"))
            == ["Failed", "Running"]
            and store.get("jobs", "default", "evictee")["status"].get("ready") == 1
        ),
    )
    evicted = get_pod(store, first["metadata"]["name"])
    assert (evicted["status"]["phase"], evicted["status"]["reason"]) == ("Failed", "Evicted")
    status = store.get("jobs", "default", "evictee")["status"]
    assert status["failed"] == (0 if ignore_disruptions else 1)
    assert not _proc.alive(pid_of(first))


def test_suspending_a_running_job_stops_its_pods_without_counting_failures(cluster):
    store = cluster.store
    store.create("jobs", job("paused", "import time; time.sleep(60)"))
    (running,) = wait_for(
        store, lambda: [p for p in pods_of(store, "paused") if p["status"]["phase"] == "Running"]
    )

    def suspend(obj: dict[str, Any]) -> dict[str, Any]:
        obj["spec"]["suspend"] = True
        return obj

    store.patch("jobs", "default", "paused", suspend)
    wait_for(
        store,
        lambda: (
            not pods_of(store, "paused")
            and (c := condition(store, "paused", "Suspended"))
            and c["status"] == "True"
        ),
    )
    status = store.get("jobs", "default", "paused")["status"]
    assert (status["active"], status["failed"]) == (0, 0)
    assert not _proc.alive(pid_of(running))
