"""The emulated node: a scheduler and a kubelet that run each pod's containers as local processes.

One thread reconciles pods from store events (and a periodic resync), like the kubelet's pod
workers: schedule (or report Unschedulable), resolve images and env (or report the waiting
reason a real kubelet would), start the processes, and turn exits into container states, restarts
and the pod phase. Deletion is graceful: the store's deletion hook queues the pod; its processes
get SIGTERM, SIGKILL after ``deletionGracePeriodSeconds``, and only then is the pod removed.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlrelay.testing.kinds import PODS, Obj
from mlrelay.testing.podstatus import PodRuntime, container_status, pod_status, transition
from mlrelay.testing.reconciler import Key, Reconciler
from mlrelay.testing.recorder import Clock, gone_ok, record_event, utcnow
from mlrelay.testing.runtime import (
    OOM_ANNOTATION,
    OOM_ENV,
    ContainerProcess,
    Images,
    StartError,
    container_argv,
    container_env,
    expand,
    quantity,
)
from mlrelay.testing.scheduler import schedule
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store, WatchEvent

_TERMINAL = ("Succeeded", "Failed")


class Kubelet(Reconciler):
    """Runs bound pods as local process groups and reports their status like a kubelet.

    Args:
        images: see :data:`~mlrelay.testing.runtime.Images`; unmapped images run the
            container's command as is.
        missing_images: images whose pull fails (ErrImagePull, then ImagePullBackOff).
        capacity: the node's allocatable resources; unlisted extended resources (nvidia.com/gpu)
            are 0, unlisted cpu/memory are unbounded.
        restart_backoff: first CrashLoopBackOff delay (doubles per restart; the kubelet uses 10 s).
        image_backoff: seconds between ErrImagePull and ImagePullBackOff.
    """

    name = "kubelet"

    def __init__(
        self,
        store: Store,
        *,
        images: Images | None = None,
        missing_images: Sequence[str] = (),
        capacity: Mapping[str, Any] | None = None,
        node_name: str = "mlrelay-node",
        log_dir: Path | None = None,
        restart_backoff: float = 1.0,
        image_backoff: float = 0.5,
        resync: float = 0.2,
        stop_grace: float = 2.0,
        clock: Clock = utcnow,
    ) -> None:
        super().__init__(store, kinds=[PODS], resync=resync)
        self.images = dict(images or {})
        self.missing_images = set(missing_images)
        self.capacity = {k: quantity(v) for k, v in (capacity or {}).items()}
        self.node_name = node_name
        self._tmp = None if log_dir else tempfile.TemporaryDirectory(prefix="mlrelay-kubelet-")
        self.log_dir = Path(log_dir) if log_dir else Path(self._tmp.name)  # type: ignore[union-attr]
        self.restart_backoff = restart_backoff
        self.image_backoff = image_backoff
        self.stop_grace = stop_grace
        self._clock = clock
        self._pods: dict[Key, PodRuntime] = {}
        self._pulls: dict[Key, float] = {}  # first ErrImagePull time, per pod
        self._lock = threading.RLock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Kubelet:
        self.store.set_deletion_handler(PODS, lambda obj: self.enqueue(_key(obj)))
        self.start_loop()
        return self

    def stop(self) -> None:
        """Stop reconciling and end every process (SIGTERM, SIGKILL after ``stop_grace``)."""
        if self._unsubscribe is not None:
            self.store.set_deletion_handler(PODS, None)
        self.stop_loop()
        with self._lock:
            pods = list(self._pods.values())
        threads = [threading.Thread(target=p.stop, args=(self.stop_grace,)) for p in pods]
        for t in threads:
            t.start()
        for t in threads + [p.stopping for p in pods if p.stopping is not None]:
            t.join(timeout=self.stop_grace + 10)
        if self._tmp is not None:
            self._tmp.cleanup()

    def evict(
        self, namespace: str, name: str, message: str = "The node was low on resource: memory."
    ) -> None:
        """Evict the pod, as node-pressure eviction does: processes stopped, phase Failed/Evicted."""
        with self._lock:
            pod = self._pods.get((namespace, name))
            if pod is None:
                pod = self._pods[(namespace, name)] = PodRuntime(
                    self.store.get(PODS, namespace, name)["metadata"]["uid"]
                )
            pod.evicted = message
            self._stop_async((namespace, name), pod, 0)

    def container(
        self, namespace: str, name: str, container: str, *, previous: bool = False
    ) -> ContainerProcess | None:
        """The current (or previous) run of a container, for the logs endpoint."""
        with self._lock:
            pod = self._pods.get((namespace, name))
            if pod is None:
                return None
            return (pod.previous if previous else pod.runs).get(container)

    # -- event plumbing ----------------------------------------------------------------------
    def on_event(self, event: WatchEvent) -> None:
        self.enqueue(_key(event.object))

    def resync_keys(self) -> set[Key]:
        """Every pod we run or the store holds; memory limits are checked on the same beat."""
        with self._lock:
            keys = set(self._pods)
        keys |= {_key(p) for p in self.store.list(PODS)[0]}
        self._check_memory()
        return keys

    # -- the pod worker ----------------------------------------------------------------------
    def sync(self, key: Key) -> None:
        ns, name = key
        with self._lock:
            state = self._pods.get(key)
            try:
                pod: Obj | None = self.store.get(PODS, ns, name)
            except ApiError:
                pod = None
            if state is not None and (pod is None or state.uid != pod["metadata"]["uid"]):
                self._stop_async(key, state, 0)  # removed without grace (force delete): kill now
                self._pods.pop(key, None)
                state = None
            if pod is None:
                self._pulls.pop(key, None)
                return
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                stopping = (
                    state is not None and state.stopping is not None and state.stopping.is_alive()
                )
                if state is None or (not stopping and all(r.done for r in state.runs.values())):
                    with gone_ok():
                        self.store.remove(PODS, ns, name)
                    self._pods.pop(key, None)
                elif not stopping:
                    for cname, run in state.runs.items():
                        if not run.done:
                            self._event(pod, "Normal", "Killing", f"Stopping container {cname}")
                    self._stop_async(key, state, int(meta.get("deletionGracePeriodSeconds") or 0))
                return
            if (pod.get("status") or {}).get("phase") in _TERMINAL:
                return
            if state is not None and state.evicted is not None:
                self._advance(pod, state)
                return
            if not pod["spec"].get("nodeName"):
                if not schedule(self.store, pod, self.node_name, self.capacity, self._event):
                    return
                pod = self.store.get(PODS, ns, name)
            if state is None:
                state = self._start(pod)
                if state is None:
                    return
            self._advance(pod, state)

    def _event(
        self, pod: Obj, type_: str, reason: str, message: str, component: str = "kubelet"
    ) -> None:
        host = self.node_name if component == "kubelet" else None
        record_event(
            self.store,
            pod,
            type_,
            reason,
            message,
            component=component,
            host=host,
            clock=self._clock,
        )

    def _plan(self, pod: Obj, c: Obj, missing: frozenset[str]) -> tuple[list[str], dict[str, str]]:
        """argv and env of a container, or StartError with the reason the kubelet would give."""
        words = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        container_argv(str(c["image"]), self.images, missing, [])  # pull errors before env errors
        env = container_env(self.store, pod, c)
        argv = container_argv(
            str(c["image"]), self.images, missing, [expand(w, env) for w in words]
        )
        if not argv:
            raise StartError("CreateContainerError", "no command specified")
        return argv, env

    def _start(self, pod: Obj) -> PodRuntime | None:
        """Resolve every container's image and env, then start them all (or report why not)."""
        key = _key(pod)
        plans: list[tuple[Obj, list[str], dict[str, str]]] = []
        for c in pod["spec"]["containers"]:
            try:
                plans.append((c, *self._plan(pod, c, frozenset(self.missing_images))))
            except StartError as e:
                self._waiting(pod, c, e)
                return None
        self._pulls.pop(key, None)
        state = PodRuntime(pod["metadata"]["uid"])
        self._pods[key] = state
        for c, argv, env in plans:
            self._run(pod, state, c, argv, env)
        return state

    def _run(
        self, pod: Obj, state: PodRuntime, c: Obj, argv: list[str], env: dict[str, str]
    ) -> None:
        key, cname = _key(pod), str(c["name"])
        attempt = state.restarts.get(cname, 0)
        path = self.log_dir / f"{key[0]}_{key[1]}_{state.uid}" / cname / f"{attempt}.log"
        proc = ContainerProcess(
            argv,
            env,
            c.get("workingDir"),
            path,
            on_exit=lambda: self.enqueue(key),
            clock=self._clock,
        )
        if cname in state.runs:
            state.previous[cname] = state.runs[cname]
        state.runs[cname] = proc
        marker = (pod["metadata"].get("annotations") or {}).get(OOM_ANNOTATION)
        if env.get(OOM_ENV) == "1" or marker in ("true", cname):
            proc.oom_kill()
        image = c["image"]
        self._event(
            pod, "Normal", "Pulled", f'Container image "{image}" already present on machine'
        )
        self._event(pod, "Normal", "Created", f"Created container: {cname}")
        self._event(pod, "Normal", "Started", f"Started container {cname}")

    def _waiting(self, pod: Obj, c: Obj, error: StartError) -> None:
        """Report a container that cannot start, with the events a kubelet records."""
        key, image = _key(pod), str(c["image"])
        reason, message, events = (
            error.reason,
            error.message,
            [("Failed", f"Error: {error.message}")],
        )
        if reason == "ErrImagePull":
            first = self._pulls.setdefault(key, time.monotonic())
            if time.monotonic() - first >= self.image_backoff:
                reason, message = "ImagePullBackOff", f'Back-off pulling image "{image}"'
                events = [("BackOff", message), ("Failed", "Error: ImagePullBackOff")]
            else:
                events = [("Failed", error.message), ("Failed", "Error: ErrImagePull")]
        elif reason == "InvalidImageName":
            events = [("InspectFailed", error.message), ("Failed", "Error: InvalidImageName")]
        statuses = [container_status(pod, x, None, 0) for x in pod["spec"]["containers"]]
        for s in statuses:
            if s["name"] == c["name"]:
                s["state"] = {"waiting": {"reason": reason, "message": message}}
        old = [s.get("state") for s in (pod.get("status") or {}).get("containerStatuses") or []]
        if old == [s["state"] for s in statuses]:
            return  # already reported
        # Events first: whoever reacts to the waiting state finds its message already recorded.
        for event_reason, event_message in events:
            kind = "Normal" if event_reason == "BackOff" else "Warning"
            self._event(pod, kind, event_reason, event_message)
        self._write_status(pod, pod_status(pod, "Pending", statuses, self._clock()))

    def _advance(self, pod: Obj, state: PodRuntime) -> None:
        """Turn exits into restarts or a terminal phase, and write the status if it changed."""
        policy = pod["spec"].get("restartPolicy", "Always")
        statuses, pending = [], False
        for c in pod["spec"]["containers"]:
            cname = str(c["name"])
            run = state.runs.get(cname)
            if run is None:
                continue
            again = (
                run.done
                and state.evicted is None
                and (policy == "Always" or (policy == "OnFailure" and run.exit_code != 0))
            )
            if again:
                pending = True
                now = time.monotonic()
                restarts = state.restarts.get(cname, 0)
                until = state.backoff_until.setdefault(
                    cname, now + self.restart_backoff * 2**restarts
                )
                if now >= until:
                    state.backoff_until.pop(cname)
                    state.restarts[cname] = restarts + 1
                    try:
                        self._run(pod, state, c, *self._plan(pod, c, frozenset()))
                    except StartError as e:  # e.g. its Secret went away since the first start
                        self._waiting(pod, c, e)
                        return
            statuses.append(container_status(pod, c, state, self.restart_backoff))
        if state.evicted is not None:
            if all(r.done for r in state.runs.values()):
                st = pod_status(pod, "Failed", statuses, self._clock())
                st.update(reason="Evicted", message=state.evicted)
                cond = {"type": "DisruptionTarget", "status": "True"}
                cond |= {"reason": "TerminationByKubelet", "message": state.evicted}
                st["conditions"].insert(0, transition(pod, cond, self._clock()))
                self._write_status(pod, st)
            return
        if not pending and all(r.done for r in state.runs.values()):
            failed = any(r.exit_code != 0 for r in state.runs.values())
            phase = "Failed" if failed else "Succeeded"
        else:
            phase = "Running"
        self._write_status(pod, pod_status(pod, phase, statuses, self._clock()))

    def _write_status(self, pod: Obj, status: dict[str, Any]) -> None:
        if (pod.get("status") or {}) == status:
            return

        def put(obj: Obj) -> Obj:
            obj["status"] = status
            return obj

        with gone_ok():
            self.store.patch(PODS, *_key(pod), put, subresource="status")

    # -- termination -------------------------------------------------------------------------
    def _stop_async(self, key: Key, state: PodRuntime, grace: int) -> None:
        """Stop the pod's processes in the background (grace can be long), then re-sync it."""
        if state.stopping is not None:
            return

        def stop() -> None:
            state.stop(grace)
            self.enqueue(key)

        state.stopping = threading.Thread(target=stop, name=f"stop-{key[1]}", daemon=True)
        state.stopping.start()

    def _check_memory(self) -> None:
        """OOM-kill containers over their memory limit, as the cgroup's OOM killer would."""
        with self._lock:
            items = list(self._pods.items())
        for key, state in items:
            try:
                pod = self.store.get(PODS, *key)
            except ApiError:
                continue
            limits = {
                str(c["name"]): ((c.get("resources") or {}).get("limits") or {}).get("memory")
                for c in pod["spec"]["containers"]
            }
            for cname, run in list(state.runs.items()):
                limit = limits.get(cname)
                if limit is not None and not run.done and run.rss_bytes() > quantity(limit):
                    run.oom_kill()


def _key(obj: Obj) -> Key:
    return (str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"]))
