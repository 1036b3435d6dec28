"""An emulated KServe controller (Serverless mode) whose InferenceServices really serve.

Create a ``serving.kserve.io/v1beta1`` InferenceService on the emulator and it behaves as on a
cluster with KServe and Knative: each new predictor template becomes a revision
(``<isvc>-predictor-00001``, ``-00002``, ...) served by the real KServe model server (the local
serving backend's ``python -m mlrelay.serving.server``) as a process on 127.0.0.1; a router per
InferenceService serves ``status.url`` and splits the traffic as Knative would; the status says
what KServe's says (see :mod:`mlrelay.testing.kserve_status`), so a client that rolls models out,
canaries, promotes and rolls back can be tested without a cluster, against real model servers.

The model is ``spec.predictor.model.storageUri``: an MLflow model directory (what
``mlflow.artifacts.download_artifacts`` gives), as ``file:///abs/dir``, ``pvc://<claim>/<path>``
(below ``pvc_root``) or a prefix mapped by ``storage_roots``. Other predictor kinds (framework
keys, custom containers) are reported as an invalid spec. RawDeployment mode is not emulated.

Reaching one revision (for a smoke test of a canary): set the annotation
``serving.kserve.io/enable-tag-routing: "true"`` as on a real cluster, then use the ``url`` of the
``latest`` (or ``prev``) entry of ``status.components.predictor.traffic``, or send the header
``Knative-Serving-Tag: latest`` to ``status.url`` (see :mod:`mlrelay.testing.kserve_router`).
Which revision answered: the router adds ``X-Mlrelay-Revision``, and the V2 response's
``model_version`` is the revision name (the model server is started with it).

Faults it can show: a model that fails to load (the server process exits, or never answers
ready) gives FailedToLoad with ``lastFailureInfo`` while the previous revision keeps serving;
``status_delay`` keeps the status of a changed spec stale for that many seconds (Ready=True
from before the change: FAULTS D2). ``observedGeneration`` is the Knative Service's generation,
as KServe reports it (kserve#6081): it lags a change until it is processed, and it can also run
ahead of ``metadata.generation``, so comparing the two alone can accept a stale status. Deleting the InferenceService stops
its processes and its router before the object goes away (a graceful deletion, like a
finalizer), and stopping the controller stops every process it started.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrelay.testing.kinds import INFERENCE_SERVICES, Obj
from mlrelay.testing.kserve_revision import (
    FAILED,
    LOADING,
    READY,
    Revision,
    StorageError,
    resolve_storage,
)
from mlrelay.testing.kserve_router import Router
from mlrelay.testing.kserve_status import compute, invalid, is_ready, traffic_targets
from mlrelay.testing.reconciler import Key, Reconciler
from mlrelay.testing.recorder import (
    Clock,
    gone_ok,
    log,
    record_event,
    timestamp,
    utcnow,
)
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store, WatchEvent

_COMPONENT = "v1beta1Controllers"  # the event source KServe's controller records with
_ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # KServe's webhook: a DNS-1035 label


@dataclass
class _Service:
    """What the controller keeps per InferenceService: its revisions (oldest first), its router."""

    uid: str
    router: Router
    revisions: dict[str, Revision] = field(default_factory=dict)
    ksvc: Any = None  # the Knative Service KServe would write: (template, traffic targets)
    ksvc_generation: int = 0

    @property
    def latest(self) -> Revision | None:
        return next(reversed(self.revisions.values()), None)

    def observe(self, generation: int, template: Any, targets: Any) -> int:
        """``status.observedGeneration`` as KServe reports it: the Knative Service's generation,
        which moves when KServe rewrites that Service (kserve#6081), so it can run ahead of the
        InferenceService's (a canary requested on the first deploy, the rollback path). Never
        behind a generation already processed, so an emulated client is never stuck."""
        if (template, targets) != self.ksvc:
            self.ksvc, self.ksvc_generation = (template, targets), self.ksvc_generation + 1
        return max(self.ksvc_generation, generation)


class InferenceServiceController(Reconciler):
    """Reconciles InferenceServices into model server processes, a router and KServe's status.

    Args:
        pvc_root: directory holding one sub-directory per PersistentVolumeClaim, for
            ``pvc://<claim>/<path>`` storage URIs.
        storage_roots: further URI prefixes mapped to local directories
            (``{"s3://mlflow/": "/srv/mlflow-artifacts"}``).
        python: the interpreter that runs the model server (needs ``mlrelay[serve]``).
        ready_timeout: seconds a revision may take to answer ready before it counts as failed
            (a start takes 12-19 s on two cores, more when they are busy).
        status_delay: seconds a changed spec waits before the controller looks at it; until
            then the status (Ready, observedGeneration) is the old one.
        activation_timeout: seconds the router waits for a revision that is starting again.
        log_dir: where the model servers' logs go (default: a temporary directory).
        clock: monotonic seconds, for ``status_delay``; ``wall_clock`` stamps conditions.
    """

    name = "kserve-controller"

    def __init__(
        self,
        store: Store,
        *,
        pvc_root: Path | str | None = None,
        storage_roots: Mapping[str, Path | str] | None = None,
        python: str = sys.executable,
        ready_timeout: float = 180.0,
        status_delay: float = 0.0,
        stop_grace: float = 5.0,
        activation_timeout: float = 120.0,
        log_dir: Path | None = None,
        resync: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Clock = utcnow,
    ) -> None:
        super().__init__(store, kinds=[INFERENCE_SERVICES], resync=resync)
        self.pvc_root = Path(pvc_root) if pvc_root is not None else None
        self.storage_roots = {k: Path(v) for k, v in (storage_roots or {}).items()}
        self.python = python
        self.ready_timeout = ready_timeout
        self.status_delay = status_delay
        self.stop_grace = stop_grace
        self.activation_timeout = activation_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.log_dir = log_dir
        self._clock = clock
        self._wall = wall_clock
        self._services: dict[Key, _Service] = {}
        self._seen: dict[Key, dict[int, float]] = {}  # generation -> first seen, per object
        self._processed: dict[Key, int] = {}  # the last generation acted on, per object

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> InferenceServiceController:
        self.store.set_deletion_handler(INFERENCE_SERVICES, lambda obj: self.enqueue(_key(obj)))
        self.start_loop()
        return self

    def stop(self) -> None:
        """Stop reconciling, then every model server and router this controller started."""
        if self._unsubscribe is not None:
            self.store.set_deletion_handler(INFERENCE_SERVICES, None)
        self.stop_loop()
        for key in list(self._services):
            self._teardown(key)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def processes(self, namespace: str, name: str) -> dict[str, int]:
        """Revision name -> pid of the model servers running for one InferenceService."""
        svc = self._services.get((namespace, name))
        if svc is None:
            return {}
        revisions = list(svc.revisions.values())  # the worker thread may be adding one
        return {r.name: r.proc.pid for r in revisions if r.running and r.proc}

    # -- event plumbing ----------------------------------------------------------------------
    def on_event(self, event: WatchEvent) -> None:
        self.enqueue(_key(event.object))

    def resync_keys(self) -> Iterable[Key]:
        """Every InferenceService (delays expire, processes die) and every one we still serve."""
        return {_key(o) for o in self.store.list(INFERENCE_SERVICES)[0]} | set(self._services)

    # -- reconcile ---------------------------------------------------------------------------
    def sync(self, key: Key) -> None:
        try:
            isvc = self.store.get(INFERENCE_SERVICES, *key)
        except ApiError:
            self._teardown(key)  # removed without grace: stop what served it
            return
        meta = isvc["metadata"]
        svc = self._services.get(key)
        if svc is not None and svc.uid != meta["uid"]:
            self._teardown(key)  # deleted and created again under the same name
            svc = None
        if meta.get("deletionTimestamp"):
            self._teardown(key)
            if not meta.get("finalizers"):
                with gone_ok():
                    self.store.remove(INFERENCE_SERVICES, *key)
            return
        if self._delayed(key, isvc):
            return
        predictor = (isvc.get("spec") or {}).get("predictor")
        problem = _problem(meta["name"], predictor)
        if problem is not None:
            self._write(isvc, invalid(isvc, problem, timestamp(self._wall())))
            self._processed[key] = int(meta.get("generation") or 0)
            return
        assert isinstance(predictor, dict)
        if svc is None:
            router = Router(meta["name"], activation_timeout=self.activation_timeout).start()
            svc = self._services[key] = _Service(meta["uid"], router)
        self._reconcile(key, isvc, svc, predictor)

    def _reconcile(self, key: Key, isvc: Obj, svc: _Service, predictor: dict[str, Any]) -> None:
        """Revisions, status and routing for a spec the controller can serve."""
        meta = isvc["metadata"]
        template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
        if svc.latest is None or svc.latest.template != template:
            self._new_revision(isvc, svc, template)
        for revision in svc.revisions.values():
            revision.check()
        generation = int(meta.get("generation") or 0)
        rolled_out = _component(isvc).get("latestRolledoutRevision")
        targets = traffic_targets(predictor, meta.get("annotations") or {}, rolled_out)
        outcome = compute(
            isvc,
            [r.view() for r in svc.revisions.values()],
            url=svc.router.url,
            tag_urls=svc.router.tag_urls,
            now=timestamp(self._wall()),
            observed_generation=svc.observe(generation, template, targets),
        )
        self._processed[key] = generation
        idle = self._scale(key, svc, set(outcome.weights))
        ports = {name: svc.revisions[name].view().port for name in outcome.weights}
        svc.router.update(outcome.weights, ports, outcome.tags)
        for revision in idle:  # only once the router no longer sends them anything
            log.info("stopping revision %s: it has no traffic", revision.name)
            revision.stop(self.stop_grace)
        self._write(isvc, outcome.status)

    def _delayed(self, key: Key, isvc: Obj) -> bool:
        """Whether a new generation is still inside ``status_delay`` (so nothing changes yet)."""
        generation = int(isvc["metadata"].get("generation") or 0)
        if self.status_delay <= 0 or self._processed.get(key) == generation:
            return False
        first = self._seen.setdefault(key, {}).setdefault(generation, self._clock())
        return self._clock() - first < self.status_delay

    def _new_revision(self, isvc: Obj, svc: _Service, template: dict[str, Any]) -> None:
        """The next revision of the predictor; its model is located now, its server started
        by ``_scale`` (the storage initializer runs before the server, as in the pod)."""
        name = f"{isvc['metadata']['name']}-predictor-{len(svc.revisions) + 1:05d}"
        revision = Revision(name, template)
        try:
            revision.model_dir = resolve_storage(
                str(template["model"]["storageUri"]),
                pvc_root=self.pvc_root,
                storage_roots=self.storage_roots,
            )
        except StorageError as exc:
            revision.fail_storage(exc)
            log.warning("revision %s: storage initializer failed: %s", name, exc)
        svc.revisions[name] = revision

    def _scale(self, key: Key, svc: _Service, routed: set[str]) -> list[Revision]:
        """Start what is routed (a ready revision scales up from zero) and the latest while it
        loads; return the others that run, for Knative scales unrouted revisions to zero."""
        latest, idle = svc.latest, []
        for revision in svc.revisions.values():
            view = revision.view()
            wanted = revision.name in routed or (revision is latest and view.state == LOADING)
            if wanted and not view.running and view.state != FAILED:
                if view.state == READY:
                    log.info("scaling revision %s up from zero", revision.name)
                revision.start(
                    isvc=key[1],
                    python=self.python,
                    log_file=self._log_file(key, revision.name),
                    timeout=self.ready_timeout,
                    on_change=lambda: self.enqueue(key),
                )
            elif not wanted and view.running:
                idle.append(revision)
        return idle

    def _log_file(self, key: Key, revision: str) -> Path:
        if self.log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mlrelay-kserve-")
            self.log_dir = Path(self._tmp.name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{key[0]}_{revision}_{time.monotonic_ns()}.log"

    def _write(self, isvc: Obj, status: dict[str, Any]) -> None:
        before = isvc.get("status") or {}
        if status == before:
            return
        with gone_ok():
            self.store.update_status(INFERENCE_SERVICES, *_key(isvc), status)
            name = isvc["metadata"]["name"]
            if is_ready(status) and not is_ready(before):
                message = f"InferenceService [{name}] is Ready"
                self._event(isvc, "Normal", "InferenceServiceReady", message)
            elif is_ready(before) and not is_ready(status):
                failing = [c["type"] for c in status["conditions"] if c["status"] != "True"]
                why = ", ".join(t for t in failing if t not in ("Ready", "Stopped"))
                message = f"InferenceService [{name}] is no longer Ready because of: {why}"
                self._event(isvc, "Warning", "InferenceServiceNotReady", message)

    def _event(self, isvc: Obj, type_: str, reason: str, message: str) -> None:
        record_event(
            self.store, isvc, type_, reason, message, component=_COMPONENT, clock=self._wall
        )

    def _teardown(self, key: Key) -> None:
        self._seen.pop(key, None)
        self._processed.pop(key, None)
        svc = self._services.pop(key, None)
        if svc is None:
            return
        for revision in svc.revisions.values():
            revision.stop(self.stop_grace)
        svc.router.stop()
        log.info("stopped the model servers and the router of %s/%s", *key)


def _problem(name: str, predictor: Any) -> str | None:
    """Why the emulator cannot serve this predictor (KServe's webhook would say it at once)."""
    if not _ISVC_NAME.match(name):
        return (
            f'The InferenceService "{name}" is invalid: a InferenceService name must consist '
            "of lower case alphanumeric characters or '-', and must start with alphabetical "
            'character. (e.g. "my-name" or "abc-123", regex used for validation is '
            "'[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    model = predictor.get("model") if isinstance(predictor, dict) else None
    if not isinstance(model, dict) or not model.get("storageUri"):
        return (
            "spec.predictor.model.storageUri is required: the emulator serves MLflow model "
            "directories (file://, pvc:// or a mapped prefix) with the KServe model server"
        )
    canary = predictor.get("canaryTrafficPercent") if isinstance(predictor, dict) else None
    if canary is not None and (not isinstance(canary, int) or not 0 <= canary <= 100):
        return f"spec.predictor.canaryTrafficPercent must be between 0 and 100 (got {canary!r})"
    return None


def _component(isvc: Obj) -> dict[str, Any]:
    status = isvc.get("status") or {}
    return dict((status.get("components") or {}).get("predictor") or {})


def _key(obj: Obj) -> Key:
    return (str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"]))
