"""Deterministic fault injection: the failures a real API server and network produce.

Request faults are an ASGI middleware in front of the API: each rule matches the HTTP method and a
regular expression searched in the path, fires for the next ``times`` matching requests, then is
gone. Watch faults act on the store's open watch streams, log faults on its open ``follow`` log
streams. Everything is programmatic and ordered, so a test states exactly which request fails
and how.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlrelay.testing.podlogs import log_cuts
from mlrelay.testing.status import ApiError, expired
from mlrelay.testing.store import Store, WatchEvent

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class _Rule:
    action: str  # "fail" | "latency" | "hang" | "lose"
    method: str | None
    path: re.Pattern[str]
    times: int
    error: ApiError | None = None
    seconds: float = 0.0
    hang: Hang | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.path.search(path))


@dataclass
class Hang:
    """A request held open without an answer (half-open from the client's point of view)."""

    started: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    aborted: bool = False

    def release(self) -> None:
        """Let the held request proceed normally."""
        self.released.set()

    def abort(self) -> None:
        """Close the held connection without a response."""
        self.aborted = True
        self.released.set()


class Faults:
    """The programmatic fault API (``emulator.faults``)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._hangs: list[Hang] = []
        self._drops: list[Callable[[WatchEvent], bool]] = []
        #: (method, path, action) for every fault that fired, in order; tests assert on it.
        self.fired: list[tuple[str, str, str]] = []
        store.event_filter = self._drop_event
        self._log_cuts = log_cuts(store)
        self._log_cuts.on_cut = self._log_cut

    # -- request faults ----------------------------------------------------------------------
    def fail_next(
        self,
        times: int = 1,
        *,
        method: str | None = None,
        path: str = "",
        status: int = 500,
        reason: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with a ``Status`` of ``status``.

        ``reason`` defaults to the API server's for the code (409 -> ``Conflict``, which is NOT
        ``AlreadyExists``); ``retry_after`` adds the ``Retry-After`` header (429/503).
        """
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        error = ApiError(
            status,
            reason or _REASONS.get(status, "InternalError"),
            message or f"injected fault: {status}",
            headers=headers,
        )
        self._add(_Rule("fail", method, re.compile(path), times, error=error))

    def add_latency(
        self, seconds: float, *, method: str | None = None, path: str = "", times: int = 1
    ) -> None:
        """Delay the next ``times`` matching requests by ``seconds`` before handling them."""
        self._add(_Rule("latency", method, re.compile(path), times, seconds=seconds))

    def hang_next(self, *, method: str | None = None, path: str = "") -> Hang:
        """Accept the next matching request and never answer until released or the server stops."""
        hang = Hang()
        with self._lock:
            self._hangs.append(hang)
        self._add(_Rule("hang", method, re.compile(path), 1, hang=hang))
        return hang

    def lose_response_next(self, *, method: str | None = "POST", path: str = "") -> None:
        """Commit the next matching request, then close the connection instead of answering."""
        self._add(_Rule("lose", method, re.compile(path), 1))

    # -- watch faults ------------------------------------------------------------------------
    def expire_watches(self, namespace: str | None = None) -> int:
        """Send ``ERROR`` 410 Expired to every open watch (as after etcd compaction), then close;
        with ``namespace``, only to the watches scoped to it. Returns how many."""
        rv = self._store.resource_version
        return self._store.close_watches(expired(rv, rv + 1), namespace)

    def close_watches(self, namespace: str | None = None) -> int:
        """End every open watch stream cleanly, with no event (a load-balancer idle timeout);
        with ``namespace``, only the watches scoped to it. Returns how many."""
        return self._store.close_watches(None, namespace)

    def drop_next_event(self, predicate: Callable[[WatchEvent], bool]) -> None:
        """Keep the next event matching ``predicate`` from every live watch (history keeps it)."""
        with self._lock:
            self._drops.append(predicate)

    # -- log faults (T11) ----------------------------------------------------------------------
    def cut_log_streams(self, namespace: str | None = None) -> int:
        """End every open ``follow`` log stream (of ``namespace``'s pods, if given) now, cleanly
        after its last whole line (a kubelet log rotation, a proxy idle timeout); the client must
        resume with ``sinceTime``. Returns how many."""
        scope = f"/namespaces/{re.escape(namespace)}/" if namespace else ""
        return self._log_cuts.cut_open(scope)

    def cut_logs_next(self, *, after_lines: int = 0, path: str = "", times: int = 1) -> None:
        """End the next ``times`` ``follow`` log streams whose path matches ``path`` (a regex,
        e.g. ``"/pods/train-0/log"``) after ``after_lines`` lines."""
        self._log_cuts.cut_next(after_lines=after_lines, path=path, times=times)

    def _log_cut(self, path: str) -> None:
        with self._lock:
            self.fired.append(("GET", path, "cut-logs"))

    def discard(self, namespace: str) -> int:
        """Remove the pending request faults aimed at one namespace (their path names
        ``/namespaces/<namespace>/``) that never fired; other faults and held requests stay.

        Lets runs that share one emulator, each in its own namespace, clean up after themselves
        without ``clear()`` releasing another run's holds. Returns how many were removed.
        """
        marker = f"/namespaces/{namespace}/"
        with self._lock:
            # A caller may have passed the namespace through re.escape ("a\\-b"): compare unescaped.
            mine = [r for r in self._rules if marker in r.path.pattern.replace("\\", "")]
            for rule in mine:
                self._rules.remove(rule)
        return len(mine)

    def clear(self) -> None:
        """Remove pending faults and release held requests."""
        with self._lock:
            self._rules.clear()
            self._drops.clear()
            hangs, self._hangs = self._hangs, []
        for hang in hangs:
            hang.release()

    def abort_hangs(self) -> None:
        """Close every held connection (the server calls this when stopping)."""
        with self._lock:
            hangs, self._hangs = self._hangs, []
        for hang in hangs:
            hang.abort()

    # -- machinery ---------------------------------------------------------------------------
    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _take(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    self.fired.append((method, path, rule.action))
                    return rule
        return None

    def _drop_event(self, event: WatchEvent) -> bool:
        with self._lock:
            for predicate in self._drops:
                if predicate(event):
                    self._drops.remove(predicate)
                    self.fired.append(("WATCH", event.object["metadata"]["name"], "drop"))
                    return True
        return False

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap the API app; only layers that pass ``send`` on unchanged may wrap it (it drops
        connections through ``send``)."""

        async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            rule = self._take(scope["method"], scope["path"])
            if rule is None:
                await app(scope, receive, send)
            elif rule.action == "fail" and rule.error is not None:
                await _send_status(send, rule.error)
            elif rule.action == "latency":
                await asyncio.sleep(rule.seconds)
                await app(scope, receive, send)
            elif rule.action == "hang" and rule.hang is not None:
                rule.hang.started.set()
                while not rule.hang.released.is_set():
                    await asyncio.sleep(0.02)
                if rule.hang.aborted:
                    await _drop_connection(send)
                else:
                    await app(scope, receive, send)
            else:  # lose: let the app commit, swallow its answer, close the socket

                async def swallow(_message: Any) -> None:
                    return None

                await app(scope, receive, swallow)
                await _drop_connection(send)

        return wrapped


async def _send_status(send: Any, error: ApiError) -> None:
    body = json.dumps(error.status()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop_connection(send: Any) -> None:
    # uvicorn's ``send`` is a bound method of the request cycle, which owns the transport:
    # closing it is the only way ASGI lets us end a connection without any response bytes.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("injected fault: connection dropped")
    transport.close()
    for _ in range(3):
        await asyncio.sleep(0)
