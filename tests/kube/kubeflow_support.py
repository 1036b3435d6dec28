"""What the Kubeflow controller tests share: manifests, and a ``kf`` fixture that drives the
``kube_cluster`` emulator through the official client and waits on store events. Imported
explicitly; the fixture is named ``fixture_kf`` so a test's ``kf`` argument does not shadow it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubelet_support import wait_for
from kubernetes import client

from mlrelay.testing.status import ApiError

GROUP, TRAINER = "kubeflow.org", "trainer.kubeflow.org"
_PRINT_ENV = (
    "import json, os, time; time.sleep({sleep}); "
    "print(json.dumps({{k: v for k, v in os.environ.items() if k.isupper()}})); "
    "raise SystemExit({code})"
)
#: plural -> (group, version, namespaced), as the official client's CustomObjectsApi needs them.
_WHERE = {
    "pytorchjobs": (GROUP, "v1", True),
    "trainjobs": (TRAINER, "v1alpha1", True),
    "clustertrainingruntimes": (TRAINER, "v1alpha1", False),
}


def env_code(sleep: float = 0.0, code: int = 0) -> str:
    """A container program that prints its environment as one JSON line, then exits ``code``."""
    return _PRINT_ENV.format(sleep=sleep, code=code)


def pytorchjob(name: str, master: str, worker: str | None = None, **run: Any) -> dict[str, Any]:
    def replica(code: str) -> dict[str, Any]:
        container = {"name": "pytorch", "image": "python:3.11", "command": ["python", "-c", code]}
        template = {"spec": {"containers": [container]}}
        return {"replicas": 1, "restartPolicy": "Never", "template": template}

    specs = {"Master": replica(master)} | ({"Worker": replica(worker)} if worker else {})
    spec = {"pytorchReplicaSpecs": specs, "runPolicy": run}
    return {"kind": "PyTorchJob", "metadata": {"name": name}, "spec": spec}


def runtime(name: str = "torch-distributed", **job_spec: Any) -> dict[str, Any]:
    """A ClusterTrainingRuntime like Trainer's ``torch-distributed``: one ``node`` job."""
    node = {"name": "node", "image": "python:3.11", "command": ["python", "-c", "print(0)"]}
    rjob = {
        "name": "node",
        "template": {
            "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": {"spec": {"containers": [node]}}, **job_spec},
        },
    }
    spec = {
        "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
        "template": {"spec": {"replicatedJobs": [rjob]}},
    }
    return {"kind": "ClusterTrainingRuntime", "metadata": {"name": name}, "spec": spec}


def trainjob(name: str, code: str, *, nodes: int = 2, suspend: bool = False) -> dict[str, Any]:
    trainer = {
        "numNodes": nodes,
        "command": ["python", "-c", code],
        "env": [{"name": "DATASET", "value": "fraud"}],
    }
    spec = {"runtimeRef": {"name": "torch-distributed"}, "trainer": trainer, "suspend": suspend}
    return {"kind": "TrainJob", "metadata": {"name": name}, "spec": spec}


class Kubeflow:
    """The emulator seen through ``CustomObjectsApi``/``CoreV1Api``, with event-driven waits."""

    def __init__(self, emulator: Any) -> None:
        self.emulator, self.store = emulator, emulator.store
        self.custom = client.CustomObjectsApi(emulator.api_client())
        self.core = client.CoreV1Api(emulator.api_client())

    def create(self, body: dict[str, Any]) -> Any:
        plural = body["kind"].lower() + "s"
        group, version, namespaced = _WHERE[plural]
        body = {"apiVersion": f"{group}/{version}", **body}
        if namespaced:
            return self.custom.create_namespaced_custom_object(
                group, version, "default", plural, body
            )
        return self.custom.create_cluster_custom_object(group, version, plural, body)

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> Any:
        group, version, _ = _WHERE[plural]
        return self.custom.patch_namespaced_custom_object(
            group, version, "default", plural, name, body
        )

    def delete(self, plural: str, name: str) -> Any:
        group, version, namespaced = _WHERE[plural]
        if namespaced:
            return self.custom.delete_namespaced_custom_object(
                group, version, "default", plural, name
            )
        return self.custom.delete_cluster_custom_object(group, version, plural, name)

    def get(self, plural: str, name: str) -> Any:
        try:
            return self.store.get(plural, "default", name)
        except ApiError:
            return None

    def condition(self, plural: str, name: str, type_: str, status: str = "True") -> Any:
        conds = ((self.get(plural, name) or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conds if (c["type"], c["status"]) == (type_, status)), None)

    def wait_condition(self, plural: str, name: str, type_: str, status: str = "True") -> Any:
        return wait_for(self.store, lambda: self.condition(plural, name, type_, status))

    def wait_pod(self, name: str, *phases: str) -> Any:
        def found() -> Any:
            pod = self.get("pods", name)
            return pod if pod and pod["status"].get("phase") in phases else None

        return wait_for(self.store, found)

    def pods(self, label: str, value: str) -> list[dict[str, Any]]:
        pods = self.store.list(
            "pods", "default", lambda p: p["metadata"]["labels"].get(label) == value
        )[0]
        return sorted(pods, key=lambda p: p["metadata"]["name"])

    def history(self, plural: str, name: str) -> list[tuple[str, str]]:
        """(type, status) of the object's conditions, in the order they were first written."""
        seen: list[tuple[str, str]] = []

        def record(event: Any) -> None:
            if event.object["metadata"]["name"] == name:
                for c in (event.object.get("status") or {}).get("conditions") or []:
                    if (c["type"], c["status"]) not in seen:
                        seen.append((c["type"], c["status"]))

        self.store.subscribe(record, kinds=[plural])
        return seen

    def pod_env(self, name: str) -> dict[str, str]:
        """The env a pod printed with :func:`env_code` (raw bytes: the client would json.loads a
        log that is one JSON line, then ``str()`` the dict)."""
        raw = self.core.read_namespaced_pod_log(name, "default", _preload_content=False).data
        return json.loads(raw.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(name="kf")
def fixture_kf(kube_cluster: Any) -> Kubeflow:
    return Kubeflow(kube_cluster)
