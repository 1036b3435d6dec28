"""What the kubelet and pod-log tests share: a started cluster on a bare store, pod builders,
event-driven waits. Imported explicitly; the fixture is named ``fixture_cluster`` so a test's
``cluster`` argument does not shadow the import."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlrelay.testing.cluster import Cluster
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store

PY = "python:3.11"
MISSING = "registry.example.com/team/missing:1.0"


@pytest.fixture(name="cluster")
def fixture_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A store with a Job controller and a kubelet: one GPU, one missing image, short backoffs."""
    store = Store()
    emulated = Cluster(
        store,
        images={PY: [sys.executable]},
        node_capacity={"nvidia.com/gpu": 1},
        missing_images=[MISSING],
        log_dir=tmp_path / "logs",
        log_linger=0.3,
        restart_backoff=0.2,
        image_backoff=0.2,
    )
    emulated.start()
    try:
        yield emulated
    finally:
        emulated.stop()


def wait_for(store: Store, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Re-check on every store event (no fixed sleeps) until ``check()`` is truthy."""
    changed = threading.Event()
    unsubscribe = store.subscribe(lambda _: changed.set())
    deadline = time.monotonic() + timeout
    try:
        while True:
            changed.clear()
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {check}")
            changed.wait(0.2)
    finally:
        unsubscribe()


def pod(name: str, code: str, **container: Any) -> dict[str, Any]:
    spec = container.pop("spec", {})
    meta = container.pop("metadata", {})
    main = {"name": "main", "image": PY, "command": ["-c", code], **container}
    return {
        "metadata": {"name": name, **meta},
        "spec": {"restartPolicy": "Never", "containers": [main], **spec},
    }


def get_pod(store: Store, name: str) -> dict[str, Any] | None:
    try:
        return store.get("pods", "default", name)
    except ApiError:
        return None


def phase(store: Store, name: str, *phases: str) -> dict[str, Any] | None:
    found = get_pod(store, name)
    return found if found and found["status"].get("phase") in phases else None


def state(found: dict[str, Any]) -> dict[str, Any]:
    return found["status"]["containerStatuses"][0]["state"]  # type: ignore[no-any-return]


def pid_of(found: dict[str, Any]) -> int:
    return int(found["status"]["containerStatuses"][0]["containerID"].removeprefix("mlrelay://"))


def events(store: Store, name: str) -> list[tuple[str, str, str]]:
    items = store.list("events", "default")[0]
    return [
        (e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name
    ]


def read_log(cluster: Cluster, name: str, **query: str) -> str:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in cluster.logs("default", name, query)])

    return asyncio.run(collect()).decode()
