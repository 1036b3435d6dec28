"""The control plane behind the API: the Job controller and one node (scheduler + kubelet).

``Cluster`` is what turns the API emulator into something that runs workloads: start it on the
emulator's store and a created Job gets pods, the pods run as local processes, their logs are
served. Stopping it leaves no process behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlrelay.testing.jobs import JobController
from mlrelay.testing.kserve import InferenceServiceController
from mlrelay.testing.kubelet import Kubelet
from mlrelay.testing.podlogs import LogSource, pod_logs
from mlrelay.testing.pytorchjobs import PyTorchJobController
from mlrelay.testing.runtime import Images
from mlrelay.testing.store import Store
from mlrelay.testing.trainjobs import TrainJobController


class Cluster:
    """The Job controller and a kubelet on ``store``, started and stopped together.

    Args:
        images: image name -> argv prefix (``{"python:3.11": [sys.executable]}``, the image's
            entrypoint) or -> program substitutions (``{"python:3.11": {"python": sys.executable}}``
            runs ``command: [python, ...]`` with the local interpreter); unmapped images run
            ``command`` as is.
        node_capacity: the node's resources (``{"nvidia.com/gpu": 1}``); extended resources
            not listed are 0, so a GPU request is Unschedulable by default.
        missing_images: images whose pull fails (ErrImagePull, then ImagePullBackOff).
        log_linger: seconds a ``follow`` log stream stays open after its container exited;
            ``None`` keeps it open forever (the T12 fault).
        kserve: run the KServe controller (InferenceServices served by real model servers, see
            :mod:`mlrelay.testing.kserve`); a mapping passes its options (``pvc_root``,
            ``status_delay``, ...). Idle, it costs one thread.
        kubelet_options: further :class:`Kubelet` keyword arguments (backoffs, resync, ...).
    """

    def __init__(
        self,
        store: Store,
        *,
        images: Images | None = None,
        node_capacity: Mapping[str, Any] | None = None,
        missing_images: Sequence[str] = (),
        log_dir: Path | None = None,
        log_linger: float | None = 1.0,
        kserve: bool | Mapping[str, Any] = True,
        **kubelet_options: Any,
    ) -> None:
        self.store = store
        self.jobs = JobController(store)
        #: Kubeflow: the Training Operator (PyTorchJob) and Trainer v2 (TrainJob) controllers.
        self.kubeflow = (PyTorchJobController(store), TrainJobController(store))
        self.kubelet = Kubelet(
            store,
            images=images,
            capacity=node_capacity,
            missing_images=missing_images,
            log_dir=log_dir,
            **kubelet_options,
        )
        self.logs: LogSource = pod_logs(store, self.kubelet, linger=log_linger)
        self.kserve: InferenceServiceController | None = None
        if isinstance(kserve, Mapping) or kserve:  # an empty mapping means "on, defaults"
            options = kserve if isinstance(kserve, Mapping) else {}
            self.kserve = InferenceServiceController(store, **options)

    def start(self) -> Cluster:
        self.kubelet.start()
        self.jobs.start()
        for controller in self.kubeflow:
            controller.start()
        if self.kserve is not None:
            self.kserve.start()
        return self

    def stop(self) -> None:
        if self.kserve is not None:
            self.kserve.stop()
        for controller in self.kubeflow:
            controller.stop()
        self.jobs.stop()
        self.kubelet.stop()

    def evict(
        self, namespace: str, name: str, message: str = "The node was low on resource: memory."
    ) -> None:
        self.kubelet.evict(namespace, name, message)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
