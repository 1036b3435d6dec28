"""One predictor revision of an emulated InferenceService: its model files and its server process.

A revision is what Knative makes of each new predictor template (``<isvc>-predictor-00001``,
``-00002``, ...). Here its "pod" is the real KServe model server that the local serving backend
runs (``python -m mlrelay.serving.server``, started and awaited through
:mod:`mlrelay.serving.process`), on a free port of 127.0.0.1, in its own process group.

Two things are kept apart, as Knative keeps them apart: whether the revision *is ready* (it loaded
its model once; it stays ready when it loses its traffic and is scaled to zero) and whether it is
*running* (a process with a port). A ready revision that gets traffic back is started again
("scale from zero"); the router waits for it like Knative's activator does.

``storageUri`` is resolved the way KServe's storage initializer and PVC mount would: ``file://``
and absolute paths as they are, ``pvc://<claim>/<path>`` below ``pvc_root/<claim>``, other
prefixes through ``storage_roots`` (``{"s3://bucket/": "/srv/bucket"}``), and anything else fails
with the storage initializer's own message.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrelay import _proc
from mlrelay.registry.spec import ModelVersionRef
from mlrelay.serving import process
from mlrelay.serving.spec import DeploymentSpec
from mlrelay.testing.recorder import log

LOADING, READY, FAILED = "Loading", "Ready", "Failed"
# What the kubelet keeps of a failed container's log for terminationMessagePolicy
# FallbackToLogsOnError: the last 80 lines, at most 2048 bytes.
_MESSAGE_LINES, _MESSAGE_BYTES = 80, 2048
_KNOWN_SCHEMES = ("gs://", "s3://", "hdfs://", "webhdfs://", "http://", "https://", "hf://")


class StorageError(Exception):
    """The storage initializer could not provide the model (its container would exit 1)."""


def resolve_storage(
    uri: str, *, pvc_root: Path | None, storage_roots: Mapping[str, Path] | None = None
) -> Path:
    """The local directory that ``uri`` names, or :class:`StorageError` saying why not."""
    for prefix, root in sorted((storage_roots or {}).items(), key=lambda kv: -len(kv[0])):
        if uri.startswith(prefix):
            return _existing(Path(root) / uri[len(prefix) :].lstrip("/"), uri)
    if uri.startswith("pvc://"):
        claim, _, sub = uri[len("pvc://") :].partition("/")
        if pvc_root is None or not claim or not (Path(pvc_root) / claim).is_dir():
            raise StorageError(f'persistentvolumeclaim "{claim}" not found')
        path = Path(pvc_root) / claim / sub
        if not path.exists():
            raise StorageError(f'model path "/{sub}" not found in persistentvolumeclaim "{claim}"')
        return path
    if uri.startswith("file://") or uri.startswith("/"):
        return _existing(Path(uri.removeprefix("file://")), uri)
    if uri.startswith(_KNOWN_SCHEMES):
        raise StorageError(
            f"cannot download {uri}: the emulator reads models from local paths only "
            "(map this prefix with storage_roots, or use file:// or pvc://)"
        )
    raise StorageError(
        f"Cannot recognize storage type for {uri}\n'gs://', 's3://', 'file://', "
        "'http(s)://' and 'hf://' are the current available storage type."
    )


def _existing(path: Path, uri: str) -> Path:
    if not path.exists():
        raise StorageError(f"Local path {uri} does not exist.")
    return path


@dataclass(frozen=True)
class RevisionView:
    """A consistent snapshot of a revision, what the status is computed from."""

    name: str
    state: str
    failure: Mapping[str, Any] | None = None
    running: bool = False
    port: int | None = None


@dataclass
class Revision:
    """A Knative revision of the predictor and the model server process behind it.

    Attributes:
        template: the predictor spec it was made from (without ``canaryTrafficPercent``).
        state: ``Loading`` until its first start answers ready, then ``Ready``; ``Failed`` if
            the storage, the process or the readiness wait failed.
        failure: ``lastFailureInfo`` for a failed revision (reason, message, exitCode).
        ready_after: seconds from process start to ready, on its last start.
    """

    name: str
    template: dict[str, Any]
    state: str = LOADING
    failure: dict[str, Any] | None = None
    model_dir: Path | None = None
    port: int | None = None
    ready_after: float | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_file: Path | None = None
    _wanted: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def running(self) -> bool:
        """A process was started and not stopped (it may still be loading)."""
        return self._wanted

    def view(self) -> RevisionView:
        with self._lock:
            return RevisionView(self.name, self.state, self.failure, self._wanted, self.port)

    def fail_storage(self, error: StorageError) -> None:
        self.state = FAILED
        self.failure = {"reason": "ModelLoadFailed", "message": str(error), "exitCode": 1}

    def start(
        self,
        *,
        isvc: str,
        python: str,
        log_file: Path,
        timeout: float,
        on_change: Callable[[], None],
    ) -> None:
        """Start the model server and a thread that awaits its readiness, then ``on_change``."""
        assert self.model_dir is not None
        spec = DeploymentSpec(
            name=isvc,
            model=ModelVersionRef(name=isvc, version=self.name),
            smoke_test=False,
            ready_timeout=timeout,
        )
        with self._lock:
            self._wanted, self.port, self.log_file = True, None, log_file
            proc = self.proc = process.spawn(python, spec, self.model_dir, log_file)
        waiter = threading.Thread(
            target=self._await_ready,
            args=(proc, spec, log_file, timeout, on_change),
            name=f"mlrelay-{self.name}",
            daemon=True,
        )
        waiter.start()

    def _await_ready(
        self,
        proc: subprocess.Popen[bytes],
        spec: DeploymentSpec,
        log_file: Path,
        timeout: float,
        on_change: Callable[[], None],
    ) -> None:
        began = time.monotonic()
        try:
            port = process.wait_ready(
                proc, spec, log_file, timeout=timeout, clock=time.monotonic, sleep=time.sleep
            )
        except process.ServerFailed as exc:
            with self._lock:
                if proc is not self.proc or not self._wanted:
                    return  # stopped on purpose (superseded, scaled down, deleted)
            _proc.stop_group(proc.pid, proc=proc, grace=2.0)
            self._failed(proc, log_file, None if exc.reason == "ServerExited" else str(exc))
        else:
            with self._lock:
                if proc is not self.proc or not self._wanted:
                    return
                self.port, self.state = port, READY
                self.ready_after = time.monotonic() - began
            log.info("revision %s ready on port %d after %.1fs", self.name, port, self.ready_after)
        on_change()

    def check(self) -> bool:
        """Notice a process that died after it was ready; True if the state changed."""
        with self._lock:
            proc = self.proc
            if not self._wanted or self.port is None or proc is None or proc.poll() is None:
                return False
        assert self.log_file is not None
        self._failed(proc, self.log_file, None)
        return True

    def _failed(self, proc: subprocess.Popen[bytes], log_file: Path, why: str | None) -> None:
        """Record the failure as the kubelet would: the exit code and the end of the log."""
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        exit_code = 128 - code if code < 0 else code  # killed by signal N: 128 + N
        tail = "\n".join(process.tail(log_file, _MESSAGE_LINES))[-_MESSAGE_BYTES:]
        # An exit speaks through its log (the termination message); a timeout says so first.
        message = f"{why}\n{tail}" if why else tail
        with self._lock:
            self.failure = {
                "reason": "ModelLoadFailed",
                "message": message.strip() or f"the model server exited with code {exit_code}",
                "exitCode": exit_code,
            }
            self._wanted, self.port, self.state = False, None, FAILED
        last = why or (tail.splitlines() or [""])[-1]
        log.warning("revision %s failed (exit code %d): %s", self.name, exit_code, last)

    def stop(self, grace: float = 5.0) -> None:
        """Stop the process (scale to zero); the revision keeps its state."""
        with self._lock:
            self._wanted, self.port = False, None
            proc = self.proc
        if proc is not None:  # the group too: a dead leader may leave children
            _proc.stop_group(proc.pid, proc=proc, grace=grace)
