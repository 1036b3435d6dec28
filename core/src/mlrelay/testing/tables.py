"""Server-side printing: ``meta.k8s.io/v1`` Tables, which kubectl asks for on ``get``.

Without them kubectl can only print NAME and AGE; with them ``kubectl get pods`` shows READY,
STATUS and RESTARTS as on a real cluster (columns as the API server's printers define them in
``pkg/printers/internalversion/printers.go``, simplified).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlrelay.testing.kinds import Obj, ResourceKind

Column = tuple[str, str, Callable[[Obj], Any]]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(obj: Obj) -> str:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    then = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _pod_status(pod: Obj) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            reason = (
                state["terminated"].get("reason")
                or f"ExitCode:{state['terminated'].get('exitCode')}"
            )
    return str(reason)


def _pod_ready(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _job_status(job: Obj) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed", "Suspended"):
            return str(cond["type"])
    return "Running"


POD_COLUMNS: list[Column] = [
    ("Ready", "string", _pod_ready),
    ("Status", "string", _pod_status),
    (
        "Restarts",
        "string",
        lambda p: str(
            sum(
                c.get("restartCount", 0)
                for c in (p.get("status") or {}).get("containerStatuses") or []
            )
        ),
    ),
]
JOB_COLUMNS: list[Column] = [
    ("Status", "string", _job_status),
    (
        "Completions",
        "string",
        lambda j: (
            f"{(j.get('status') or {}).get('succeeded', 0)}/{(j.get('spec') or {}).get('completions', 1)}"
        ),
    ),
]
_EXTRA = {("", "pods"): POD_COLUMNS, ("batch", "jobs"): JOB_COLUMNS}


def table(kind: ResourceKind, items: list[Obj], resource_version: str | None) -> dict[str, Any]:
    """A Table with one row per object (``includeObject=Metadata``, kubectl's default)."""
    columns: list[Column] = [("Name", "string", lambda o: o["metadata"]["name"])]
    columns += _EXTRA.get(kind.key, [])
    columns.append(("Age", "string", _age))
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": 0,
            }
            for name, type_, _ in columns
        ],
        "rows": [
            {
                "cells": [render(obj) for _, _, render in columns],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
            for obj in items
        ],
    }
