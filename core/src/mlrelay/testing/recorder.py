"""What the Job controller and the kubelet share: timestamps, Events, and "it is gone" tolerance.

Controllers race with deletions all the time (a pod can vanish between the list and the status
write), so every write they make goes through :func:`gone_ok`, as a real controller ignores
NotFound and re-syncs.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from mlrelay.testing.kinds import EVENTS, Obj
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store

log = logging.getLogger("mlrelay.testing")
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp(when: datetime) -> str:
    """metav1.Time: RFC 3339 with second precision, as every status time is serialised."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp_nano(when: datetime) -> str:
    """RFC3339Nano, the format of ``kubectl logs --timestamps`` (microseconds padded to 9 digits)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def parse_time(value: str) -> datetime:
    """Parse RFC 3339 (with or without fractional seconds, 'Z' or an offset)."""
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most 6 fractional digits: trim nanoseconds, keep the offset.
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@contextlib.contextmanager
def gone_ok() -> Iterator[None]:
    """Swallow 404/409 from a write: the object was deleted or changed; the next sync fixes it."""
    try:
        yield
    except ApiError as e:
        if e.code not in (404, 409):
            raise
        log.debug("write skipped: %s", e.message)


def record_event(
    store: Store,
    obj: Obj,
    type_: str,
    reason: str,
    message: str,
    *,
    component: str,
    host: str | None = None,
    clock: Clock = utcnow,
) -> None:
    """Create a core/v1 Event about ``obj``, named ``<object>.<hex>`` like the event recorder does."""
    meta = obj["metadata"]
    now = timestamp(clock())
    source: dict[str, Any] = {"component": component}
    if host:
        source["host"] = host
    event = {
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "source": source,
        "reportingComponent": component,
        "reportingInstance": host or "",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    with gone_ok():
        store.create(EVENTS, event)
