"""The emulated node: pods run as real local processes, with the states a real kubelet reports.

These tests drive the store directly (no HTTP); ``test_pod_logs`` ends with one through the API
server with the official client, as a user's pipeline would.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from kubelet_support import (  # noqa: F401 - fixture_cluster is a fixture
    MISSING,
    PY,
    events,
    fixture_cluster,
    get_pod,
    phase,
    pid_of,
    pod,
    read_log,
    state,
    wait_for,
)

from mlrelay import _proc
from mlrelay.testing.cluster import Cluster
from mlrelay.testing.store import Store


def test_pod_runs_its_command_and_reports_completed(cluster):
    cluster.store.create("pods", pod("hello", "print('hello from the pod')"))
    done = wait_for(cluster.store, lambda: phase(cluster.store, "hello", "Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded"
    terminated = state(done)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["startedAt"] <= terminated["finishedAt"]
    conditions = {c["type"]: c for c in done["status"]["conditions"]}
    assert conditions["PodScheduled"]["status"] == "True"
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False",
        "PodCompleted",
    )
    assert done["spec"]["nodeName"] == "mlrelay-node"
    assert read_log(cluster, "hello") == "hello from the pod\n"


def test_failing_container_reports_error_and_its_exit_code(cluster):
    cluster.store.create("pods", pod("crash", "import sys; sys.exit(3)"))
    done = wait_for(cluster.store, lambda: phase(cluster.store, "crash", "Failed"))
    assert state(done)["terminated"]["exitCode"] == 3
    assert state(done)["terminated"]["reason"] == "Error"


def test_env_comes_from_secret_configmap_and_downward_api(cluster, tmp_path):
    store = cluster.store
    store.create("secrets", {"metadata": {"name": "db"}, "stringData": {"password": "s3cret"}})
    store.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"mode": "fast"}})
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING", "value": "hi $(POD)"},
    ]
    code = "import os; print(*(os.environ[k] for k in ('PASSWORD','MODE','POD','NS','GREETING')), os.getcwd())"
    store.create("pods", pod("envy", code, env=env, workingDir=str(tmp_path)))
    wait_for(store, lambda: phase(store, "envy", "Succeeded"))
    assert read_log(cluster, "envy") == f"s3cret fast envy default hi envy {tmp_path}\n"


def test_missing_secret_key_is_create_container_config_error(cluster):
    store = cluster.store
    store.create("secrets", {"metadata": {"name": "db"}, "stringData": {"user": "u"}})
    env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    store.create("pods", pod("cfg", "print('started')", env=env))

    def waiting() -> dict[str, Any] | None:
        found = get_pod(store, "cfg")
        statuses = (found or {}).get("status", {}).get("containerStatuses") or []
        return statuses[0]["state"].get("waiting") if statuses else None

    reason = wait_for(store, lambda: (w := waiting()) and w["reason"] != "ContainerCreating" and w)
    assert reason == {
        "reason": "CreateContainerConfigError",
        "message": "couldn't find key password in Secret default/db",
    }
    assert (
        "Warning",
        "Failed",
        "Error: couldn't find key password in Secret default/db",
    ) in events(store, "cfg")
    assert store.get("pods", "default", "cfg")["status"]["phase"] == "Pending"
    # The kubelet retries: once the key exists the container starts.
    store.patch(
        "secrets", "default", "db", lambda s: {**s, "data": {**s["data"], "password": "cA=="}}
    )
    wait_for(store, lambda: phase(store, "cfg", "Succeeded"))


def test_oom_marker_kills_the_container_with_137(cluster):
    store = cluster.store
    env = [{"name": "MLRELAY_EMULATOR_OOM", "value": "1"}]
    store.create("pods", pod("oom", "import time; time.sleep(30)", env=env))
    done = wait_for(store, lambda: phase(store, "oom", "Failed"))
    assert state(done)["terminated"]["reason"] == "OOMKilled"
    assert state(done)["terminated"]["exitCode"] == 137


def test_memory_limit_breach_is_oomkilled(cluster):
    store = cluster.store
    code = "import time; hog = b'x' * (120 * 2**20); time.sleep(30)"
    resources = {"limits": {"memory": "40Mi"}}
    store.create("pods", pod("hog", code, resources=resources))
    done = wait_for(store, lambda: phase(store, "hog", "Failed"))
    assert (state(done)["terminated"]["reason"], state(done)["terminated"]["exitCode"]) == (
        "OOMKilled",
        137,
    )


def test_missing_image_is_err_image_pull_then_image_pull_backoff(cluster):
    store = cluster.store
    seen: list[str] = []

    def record(event: Any) -> None:  # every status write, in commit order
        if event.object["metadata"]["name"] == "pull":
            for s in event.object["status"].get("containerStatuses") or []:
                reason = s["state"].get("waiting", {}).get("reason")
                if reason and reason not in seen:
                    seen.append(reason)

    store.subscribe(record, kinds=["pods"])
    store.create("pods", pod("pull", "print(1)", image=MISSING))
    wait_for(store, lambda: "ImagePullBackOff" in seen)
    assert seen == ["ErrImagePull", "ImagePullBackOff"]
    messages = events(store, "pull")
    assert ("Warning", "Failed", "Error: ErrImagePull") in messages
    assert any(m.startswith(f'Failed to pull image "{MISSING}"') for _, _, m in messages)
    assert store.get("pods", "default", "pull")["status"]["phase"] == "Pending"


def test_invalid_image_name(cluster):
    store = cluster.store
    store.create("pods", pod("bad", "print(1)", image="Not A/Valid::Image"))
    found = wait_for(
        store, lambda: (p := get_pod(store, "bad")) and p["status"].get("containerStatuses") and p
    )
    assert state(found)["waiting"]["reason"] == "InvalidImageName"


def test_gpu_request_over_capacity_is_unschedulable(cluster):
    store = cluster.store
    resources = {"limits": {"nvidia.com/gpu": 2}}
    store.create("pods", pod("greedy", "print(1)", resources=resources))
    found = wait_for(
        store, lambda: (p := get_pod(store, "greedy")) and p["status"].get("conditions") and p
    )
    (scheduled,) = found["status"]["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert "1 Insufficient nvidia.com/gpu" in scheduled["message"]
    assert found["status"]["phase"] == "Pending"
    assert "nodeName" not in found["spec"]
    assert [(t, r) for t, r, _ in events(store, "greedy")] == [("Warning", "FailedScheduling")]


def test_evicted_pod_fails_with_reason_evicted_and_its_process_ends(cluster):
    store = cluster.store
    store.create("pods", pod("victim", "import time; time.sleep(60)"))
    running = wait_for(store, lambda: phase(store, "victim", "Running"))
    cluster.evict("default", "victim")
    done = wait_for(store, lambda: phase(store, "victim", "Failed"))
    assert (done["status"]["reason"], done["status"]["message"]) == (
        "Evicted",
        "The node was low on resource: memory.",
    )
    assert not _proc.alive(pid_of(running))


def test_deleting_a_pod_sigterms_then_sigkills_after_the_grace_period(cluster):
    store = cluster.store
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    store.create("pods", pod("stubborn", stubborn, spec={"terminationGracePeriodSeconds": 1}))
    store.create("pods", pod("polite", "import time; time.sleep(60)"))
    running = [
        wait_for(store, lambda n=n: phase(store, n, "Running")) for n in ("stubborn", "polite")
    ]
    wait_for(store, lambda: "up" in read_log(cluster, "stubborn"))
    started = time.monotonic()
    for name in ("stubborn", "polite"):
        store.delete("pods", "default", name)
    assert store.get("pods", "default", "stubborn")["metadata"]["deletionTimestamp"]
    wait_for(store, lambda: get_pod(store, "polite") is None and get_pod(store, "stubborn") is None)
    assert time.monotonic() - started >= 0.9  # the stubborn one got its full grace period
    assert not any(_proc.alive(pid_of(p)) for p in running)


def test_on_failure_restarts_with_crash_loop_backoff_and_previous_logs(cluster):
    store = cluster.store
    code = "import sys; print('attempt'); sys.exit(1)"
    store.create("pods", pod("loop", code, spec={"restartPolicy": "OnFailure"}))

    def crashlooping() -> dict[str, Any] | None:
        found = get_pod(store, "loop")
        statuses = (found or {}).get("status", {}).get("containerStatuses") or []
        ok = statuses and statuses[0]["restartCount"] >= 1 and "waiting" in statuses[0]["state"]
        return statuses[0] if ok else None

    status = wait_for(store, crashlooping)
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert store.get("pods", "default", "loop")["status"]["phase"] == "Running"
    assert read_log(cluster, "loop", previous="true") == "attempt\n"


def test_stopping_the_cluster_leaves_no_process(tmp_path):
    store = Store()
    emulated = Cluster(
        store, images={PY: [sys.executable]}, log_dir=tmp_path, stop_grace=0.5
    ).start()
    store.create("pods", pod("sleeper", "import time; time.sleep(60)"))
    running = wait_for(store, lambda: phase(store, "sleeper", "Running"))
    emulated.stop()
    assert not _proc.alive(pid_of(running))
