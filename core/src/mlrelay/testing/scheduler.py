"""The emulated scheduler: one node, resource fit only (no affinity, taints or preemption).

A pod that does not fit stays Pending with ``PodScheduled=False/Unschedulable`` and one
``FailedScheduling`` event carrying the scheduler's message, which is what T5 is about; a pod
that fits is bound by setting ``spec.nodeName`` (the Binding subresource's effect) and gets a
``Scheduled`` event.
"""

from __future__ import annotations

from collections.abc import Callable

from mlrelay.testing.kinds import PODS, Obj
from mlrelay.testing.podstatus import condition, transition
from mlrelay.testing.recorder import gone_ok, utcnow
from mlrelay.testing.runtime import quantity
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store

#: ``event(pod, type, reason, message, component)``
EventSink = Callable[[Obj, str, str, str, str], None]
_TERMINAL = ("Succeeded", "Failed")
# Resources a node has "enough" of unless its capacity says otherwise; extended ones default to 0.
_UNBOUNDED = ("cpu", "memory", "ephemeral-storage", "pods")


def requests(pod: Obj) -> dict[str, float]:
    """Summed container requests; limits stand in where requests are absent (API defaulting)."""
    total: dict[str, float] = {}
    for c in pod["spec"]["containers"]:
        res = c.get("resources") or {}
        for name, value in {**(res.get("limits") or {}), **(res.get("requests") or {})}.items():
            total[name] = total.get(name, 0.0) + quantity(value)
    return total


def unschedulable(pod: Obj, bound: list[Obj], capacity: dict[str, float]) -> str | None:
    """The scheduler's FailedScheduling message if ``pod`` does not fit next to ``bound``."""
    used: dict[str, float] = {}
    for other in bound:
        for res, amount in requests(other).items():
            used[res] = used.get(res, 0.0) + amount
    short = sorted(
        res
        for res, amount in requests(pod).items()
        if amount + used.get(res, 0.0)
        > capacity.get(res, float("inf") if res in _UNBOUNDED else 0.0)
    )
    if not short:
        return None
    reasons = ", ".join(f"1 Insufficient {res}" for res in short)
    return (
        f"0/1 nodes are available: {reasons}. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )


def schedule(
    store: Store, pod: Obj, node: str, capacity: dict[str, float], event: EventSink
) -> bool:
    """Bind the pod if the node can fit its requests; else report it Unschedulable once."""
    ns, name = str(pod["metadata"]["namespace"]), str(pod["metadata"]["name"])
    bound = [
        p
        for p in store.list(PODS)[0]
        if p["spec"].get("nodeName") == node
        and (p.get("status") or {}).get("phase") not in _TERMINAL
    ]
    message = unschedulable(pod, bound, capacity)
    if message is not None:
        if condition(pod, "PodScheduled").get("message") != message:
            cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            cond = transition(pod, {**cond, "message": message}, utcnow())
            qos = (pod.get("status") or {}).get("qosClass", "BestEffort")
            status = {"phase": "Pending", "conditions": [cond], "qosClass": qos}
            event(pod, "Warning", "FailedScheduling", message, "default-scheduler")
            with gone_ok():
                store.patch(PODS, ns, name, lambda o: {**o, "status": status}, subresource="status")
        return False

    def bind(obj: Obj) -> Obj:
        obj["spec"]["nodeName"] = node
        return obj

    try:
        store.patch(PODS, ns, name, bind)
    except ApiError:
        return False
    assigned = f"Successfully assigned {ns}/{name} to {node}"
    event(pod, "Normal", "Scheduled", assigned, "default-scheduler")
    return True
