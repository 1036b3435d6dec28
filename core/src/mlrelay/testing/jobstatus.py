"""Job status vocabulary: conditions, completed-index ranges and podFailurePolicy matching.

Messages and reasons are the job controller's own (pkg/controller/job), because clients match
on them; see https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from mlrelay.testing.kinds import Obj
from mlrelay.testing.recorder import timestamp

INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def owned(pod: Obj, uid: str) -> bool:
    return any(
        r.get("uid") == uid and r.get("controller")
        for r in pod["metadata"].get("ownerReferences") or []
    )


def completion_index(pod: Obj) -> int | None:
    raw = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(raw) if raw is not None else None


def is_ready(pod: Obj) -> int:
    conds = (pod.get("status") or {}).get("conditions") or []
    return int(any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds))


def true_condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_ and (c.get("status") == "True" or type_ == "Suspended"):
            return c  # type: ignore[no-any-return]
    return None


def new_condition(type_: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    stamp = timestamp(now)
    return {
        "type": type_,
        "status": "True",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def index_ranges(indexes: Iterable[int]) -> str:
    """``completedIndexes`` format: "1,3-5,7"."""
    out: list[str] = []
    for i in sorted(indexes):
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) == i - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        elif out and "-" not in out[-1] and int(out[-1]) == i - 1:
            out[-1] = f"{out[-1]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)


def failure_policy(job: Obj, pod: Obj) -> tuple[str, str]:
    """The first matching podFailurePolicy rule's action (Count when none matches), and why."""
    rules = (job["spec"].get("podFailurePolicy") or {}).get("rules") or []
    meta = pod["metadata"]
    for i, rule in enumerate(rules):
        action = str(rule.get("action", "Count"))
        codes = rule.get("onExitCodes")
        if codes:
            values = set(codes.get("values") or [])
            for s in (pod.get("status") or {}).get("containerStatuses") or []:
                code = ((s.get("state") or {}).get("terminated") or {}).get("exitCode")
                if code in (None, 0) or (codes.get("containerName") not in (None, s.get("name"))):
                    continue
                if (code in values) == (codes.get("operator", "In") == "In"):
                    return action, (
                        f"Container {s['name']} for pod {meta['namespace']}/{meta['name']} failed "
                        f"with exit code {code} matching {action} rule at index {i}"
                    )
        for want in rule.get("onPodConditions") or []:
            for c in (pod.get("status") or {}).get("conditions") or []:
                if c.get("type") == want.get("type") and c.get("status") == want.get(
                    "status", "True"
                ):
                    return action, (
                        f"Pod {meta['namespace']}/{meta['name']} has condition {c['type']} "
                        f"matching {action} rule at index {i}"
                    )
    return "Count", ""
