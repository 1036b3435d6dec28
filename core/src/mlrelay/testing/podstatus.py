"""Pod status as a kubelet and the scheduler write it: container states, conditions, fit.

Shapes follow https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/ (phases,
container states, pod conditions); clients branch on these exact reasons (Completed, Error,
OOMKilled, CrashLoopBackOff, PodCompleted, ContainersNotReady, Unschedulable).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlrelay.testing.kinds import Obj
from mlrelay.testing.recorder import timestamp
from mlrelay.testing.runtime import ContainerProcess


@dataclass
class PodRuntime:
    """What the kubelet knows about a pod it started (processes, restarts, how it is ending)."""

    uid: str
    runs: dict[str, ContainerProcess] = field(default_factory=dict)
    previous: dict[str, ContainerProcess] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    backoff_until: dict[str, float] = field(default_factory=dict)
    evicted: str | None = None
    stopping: threading.Thread | None = None

    def stop(self, grace: float) -> None:
        """Stop every container at once (each gets the full grace period), and wait."""
        threads = [threading.Thread(target=r.stop, args=(grace,)) for r in self.runs.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def condition(pod: Obj, type_: str) -> dict[str, Any]:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def transition(pod: Obj, cond: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A condition whose lastTransitionTime moves only when its status does."""
    old = condition(pod, cond["type"])
    since = old.get("lastTransitionTime") if old.get("status") == cond["status"] else None
    return {**cond, "lastProbeTime": None, "lastTransitionTime": since or timestamp(now)}


def terminated(run: ContainerProcess) -> dict[str, Any]:
    code = run.exit_code if run.exit_code is not None else 0
    reason = "OOMKilled" if run.oom_killed else ("Completed" if code == 0 else "Error")
    out: dict[str, Any] = {
        "exitCode": code,
        "reason": "StartError" if run.start_error else reason,
        "startedAt": timestamp(run.started_at),
        "finishedAt": timestamp(run.finished_at or run.started_at),
    }
    if run.start_error:
        out["message"] = run.start_error
    return out


def container_status(pod: Obj, c: Obj, state: PodRuntime | None, backoff: float) -> dict[str, Any]:
    """One ``containerStatuses`` entry: waiting (ContainerCreating), running, terminated, or
    waiting in CrashLoopBackOff with the last run in ``lastState``."""
    cname = str(c["name"])
    restarts = state.restarts.get(cname, 0) if state else 0
    run = state.runs.get(cname) if state else None
    status: dict[str, Any] = {
        "name": cname,
        "image": c["image"],
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "lastState": {},
        "state": {"waiting": {"reason": "ContainerCreating"}},
    }
    if run is None or state is None:
        return status
    status["imageID"] = f"mlrelay.local/{c['image']}"
    status["containerID"] = f"mlrelay://{getattr(run, 'pid', 0)}"
    if not run.done:
        running = {"running": {"startedAt": timestamp(run.started_at)}}
        status.update(ready=True, started=True, state=running)
    elif cname in state.backoff_until:
        meta = pod["metadata"]
        message = (
            f"back-off {backoff * 2**restarts:g}s restarting failed container={cname} "
            f"pod={meta['name']}_{meta.get('namespace')}({state.uid})"
        )
        status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        status["lastState"] = {"terminated": terminated(run)}
    else:
        status["state"] = {"terminated": terminated(run)}
    if cname in state.previous and "terminated" not in status["lastState"]:
        status["lastState"] = {"terminated": terminated(state.previous[cname])}
    return status


def pod_status(
    pod: Obj, phase: str, statuses: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """The whole status of a bound pod, conditions in the order a kubelet lists them."""
    unready = [s["name"] for s in statuses if not s["ready"]]
    ready: dict[str, Any] = {"status": "True"}
    if phase == "Succeeded":
        ready = {"status": "False", "reason": "PodCompleted"}
    elif unready:
        message = f"containers with unready status: [{' '.join(unready)}]"
        ready = {"status": "False", "reason": "ContainersNotReady", "message": message}
    conditions = [
        {"type": "PodReadyToStartContainers", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", **ready},
        {"type": "ContainersReady", **ready},
        {"type": "PodScheduled", "status": "True"},
    ]
    old = pod.get("status") or {}
    return {
        "phase": phase,
        "conditions": [transition(pod, c, now) for c in conditions],
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": old.get("startTime") or timestamp(now),
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass", "BestEffort"),
    }
