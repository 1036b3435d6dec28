"""T11: a ``follow`` log stream cut mid-job, and the resume from ``sinceTime`` that loses nothing.

The official client's ``read_namespaced_pod_log`` has no ``since_time`` parameter, so the resume
goes through ``ApiClient.call_api``, as a client that wants one must."""

from __future__ import annotations

import threading
from typing import Any

from kubelet_support import wait_for
from kubernetes import client

from mlrelay.testing.status import ApiError

CHATTY = (
    "import time\n"
    "for i in range({lines}):\n"
    "    print(f'step {{i}}', flush=True)\n"
    "    time.sleep({pause})\n"
)


def start_pod(kube_cluster, name: str, lines: int = 8, pause: float = 0.2) -> None:
    code = CHATTY.format(lines=lines, pause=pause)
    container = {"name": "main", "image": "python:3.11", "command": ["python", "-c", code]}
    pod = {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }
    client.CoreV1Api(kube_cluster.api_client()).create_namespaced_pod("default", pod)

    def running() -> bool:
        try:
            found = kube_cluster.store.get("pods", "default", name)
        except ApiError:
            return False
        return found["status"].get("phase") in ("Running", "Succeeded")

    wait_for(kube_cluster.store, running)


def open_log(kube_cluster, name: str, query: list[tuple[str, str]]) -> Any:
    """GET .../log with any query (``sinceTime`` included); the raw urllib3 response."""
    response = kube_cluster.api_client().call_api(
        "/api/v1/namespaces/{namespace}/pods/{name}/log",
        "GET",
        {"namespace": "default", "name": name},
        query,
        {"Accept": "*/*"},
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=30,
    )
    return response[0] if isinstance(response, tuple) else response


def read_log(kube_cluster, name: str, **query: str) -> list[str]:
    """The stamped lines, to the end of the stream."""
    response = open_log(kube_cluster, name, [("timestamps", "true"), *query.items()])
    return [line for line in response.data.decode().splitlines() if line]


def stamp(line: str) -> str:
    return line.split(" ", 1)[0]


def test_t11_cut_follow_stream_resumes_from_since_time_without_loss(kube_cluster):
    start_pod(kube_cluster, "chatty")
    kube_cluster.faults.cut_logs_next(after_lines=3, path="/pods/chatty/log")
    first = read_log(kube_cluster, "chatty", follow="true")  # ends cleanly: looks like "done"
    assert [line.split(" ", 1)[1] for line in first] == ["step 0", "step 1", "step 2"]
    assert kube_cluster.faults.fired[-1] == (
        "GET",
        "/api/v1/namespaces/default/pods/chatty/log",
        "cut-logs",
    )
    last = stamp(first[-1])
    resumed = read_log(kube_cluster, "chatty", follow="true", sinceTime=last)
    # sinceTime reaches the kubelet with whole seconds and is inclusive: the resume repeats the
    # last line seen (and any earlier line of that second), which the client must drop.
    assert resumed[0] <= first[-1]
    assert first[-1] in resumed
    rest = [line for line in resumed if stamp(line) > last]
    whole = read_log(kube_cluster, "chatty")
    assert first + rest == whole
    assert [line.split(" ", 1)[1] for line in whole] == [f"step {i}" for i in range(8)]


def test_t11_cut_log_streams_ends_every_open_follow_stream(kube_cluster):
    start_pod(kube_cluster, "steady", lines=40, pause=0.1)
    got: list[str] = []
    first_line = threading.Event()

    def follow() -> None:
        for chunk in open_log(kube_cluster, "steady", [("follow", "true")]).stream(64):
            got.append(chunk.decode())
            first_line.set()

    reader = threading.Thread(target=follow)
    reader.start()
    assert first_line.wait(15)
    assert kube_cluster.faults.cut_log_streams(namespace="elsewhere") == 0
    assert kube_cluster.faults.cut_log_streams(namespace="default") == 1
    reader.join(10)
    assert not reader.is_alive()
    lines = "".join(got).splitlines()
    assert 0 < len(lines) < 40
    assert lines == [f"step {i}" for i in range(len(lines))]
    pod = kube_cluster.store.get("pods", "default", "steady")
    assert pod["status"]["phase"] == "Running"  # cut while the container still writes


def test_since_time_is_cut_to_whole_seconds_as_the_api_server_forwards_it(kube_cluster):
    start_pod(kube_cluster, "early", lines=6, pause=0.3)
    wait_for(
        kube_cluster.store,
        lambda: (
            kube_cluster.store.get("pods", "default", "early")["status"]["phase"] == "Succeeded"
        ),
    )
    whole = read_log(kube_cluster, "early")
    second = stamp(whole[2])[:19]  # "2026-...T12:00:01"
    got = read_log(kube_cluster, "early", sinceTime=second + ".999999999Z")
    assert got == [line for line in whole if stamp(line)[:19] >= second]
    assert whole[2] in got  # stamped before sinceTime, but within its second
