"""Pod logs as the kubelet serves them: timestamps, tailLines, sinceTime, follow, the route."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest
from kubelet_support import (  # noqa: F401 - fixture_cluster is a fixture
    MISSING,
    PY,
    fixture_cluster,
    get_pod,
    phase,
    pod,
    read_log,
    wait_for,
)

from mlrelay.testing.cluster import Cluster
from mlrelay.testing.podlogs import pod_log_route, pod_logs
from mlrelay.testing.status import ApiError


def test_logs_support_timestamps_tail_lines_and_since_time(cluster):
    store = cluster.store
    code = "import time\nfor i in range(4):\n    print(f'line {i}', flush=True)\n    time.sleep(0.05 if i != 1 else 1.1)"
    store.create("pods", pod("chatty", code))
    wait_for(store, lambda: phase(store, "chatty", "Succeeded"))
    stamped = read_log(cluster, "chatty", timestamps="true").splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["line 0", "line 1", "line 2", "line 3"]
    stamp = stamped[2].split(" ", 1)[0]
    assert len(stamp) == len("2026-01-01T00:00:00.000000000Z")
    assert read_log(cluster, "chatty", tailLines="2") == "line 2\nline 3\n"
    assert read_log(cluster, "chatty", sinceTime=stamp[:19] + "Z") == "line 2\nline 3\n"
    assert read_log(cluster, "chatty", limitBytes="8") == "line 0\nl"


def test_log_follow_streams_and_ends_after_the_container_exits(cluster):
    store = cluster.store
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)"
    store.create("pods", pod("follow", code))
    wait_for(store, lambda: phase(store, "follow", "Running"))
    started = time.monotonic()
    assert read_log(cluster, "follow", follow="true") == "0\n1\n2\n"
    assert phase(store, "follow", "Succeeded")
    assert time.monotonic() - started < 5


def test_follow_never_closes_when_linger_is_none(cluster):
    store = cluster.store
    store.create("pods", pod("mute", "print('bye')"))
    wait_for(store, lambda: phase(store, "mute", "Succeeded"))
    source = pod_logs(store, cluster.kubelet, linger=None, poll=0.05)

    async def follow() -> list[bytes]:
        got: list[bytes] = []

        async def read() -> None:
            async for chunk in source("default", "mute", {"follow": "true"}):
                got.append(chunk)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read(), timeout=1.0)
        return got

    assert asyncio.run(follow()) == [b"bye\n"]


def test_logs_of_a_waiting_container_or_an_ambiguous_pod_are_bad_requests(cluster):
    store = cluster.store
    store.create("pods", pod("pull", "print(1)", image=MISSING))
    wait_for(store, lambda: (p := get_pod(store, "pull")) and p["status"].get("containerStatuses"))
    with pytest.raises(ApiError, match='container "main" in pod "pull" is waiting to start') as e:
        read_log(cluster, "pull")
    assert e.value.code == 400
    two = pod("two", "print(1)")
    two["spec"]["containers"].append({**two["spec"]["containers"][0], "name": "side"})
    store.create("pods", two)
    with pytest.raises(ApiError, match=r"choose one of: \[main side\]"):
        read_log(cluster, "two")


def test_pod_log_route_serves_logs_and_refuses_a_waiting_container(cluster):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    store = cluster.store
    store.create("pods", pod("routed", "print('a'); print('b')"))
    store.create("pods", pod("pull", "print(1)", image=MISSING))
    wait_for(store, lambda: phase(store, "routed", "Succeeded"))
    wait_for(store, lambda: (p := get_pod(store, "pull")) and p["status"].get("containerStatuses"))
    app = Starlette(routes=[pod_log_route(store, cluster.kubelet)])
    with TestClient(app) as http:
        ok = http.get("/api/v1/namespaces/default/pods/routed/log", params={"tailLines": "1"})
        assert (ok.status_code, ok.text) == (200, "b\n")
        waiting = http.get("/api/v1/namespaces/default/pods/pull/log")
        assert waiting.status_code == 400
        assert waiting.json()["message"].startswith('container "main" in pod "pull" is waiting')
        missing = http.get("/api/v1/namespaces/default/pods/nope/log")
        assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")


def test_a_job_through_the_api_server_runs_and_its_log_is_served(kube_emulator, tmp_path):
    from kubernetes import client

    # The program-substitution form of ``images``: manifests say ``command: [python, ...]``.
    images = {PY: {"python": sys.executable}}
    emulated = Cluster(kube_emulator.store, images=images, log_dir=tmp_path).start()
    try:
        kube_emulator.api.log_source = emulated.logs
        batch, core = (
            client.BatchV1Api(kube_emulator.api_client()),
            client.CoreV1Api(kube_emulator.api_client()),
        )
        container = client.V1Container(
            name="main", image=PY, command=["python", "-c", "print('trained', 42)"]
        )
        template = client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", containers=[container])
        )
        batch.create_namespaced_job(
            "default",
            client.V1Job(
                metadata=client.V1ObjectMeta(name="train"), spec=client.V1JobSpec(template=template)
            ),
        )

        def complete() -> bool:
            conditions = (
                batch.read_namespaced_job_status("train", "default").status.conditions or []
            )
            return any(c.type == "Complete" and c.status == "True" for c in conditions)

        wait_for(kube_emulator.store, complete)
        (pod_obj,) = core.list_namespaced_pod("default", label_selector="job-name=train").items
        assert (
            core.read_namespaced_pod_log(
                pod_obj.metadata.name, "default", _preload_content=False
            ).data.decode()
            == "trained 42\n"
        )
    finally:
        emulated.stop()
    assert os.path.isdir(tmp_path)
