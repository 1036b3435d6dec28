"""``GET /api/v1/namespaces/{ns}/pods/{name}/log``: the kubelet's container logs, as the API serves them.

Query parameters follow https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-of-the-specified-pod-http-request:
``container``, ``follow``, ``previous``, ``timestamps``, ``sinceTime``, ``sinceSeconds``,
``tailLines`` and ``limitBytes``. Everything that can be refused (unknown pod or container, a
container still waiting, a bad parameter) is refused when the source is called, before the
response starts, so it becomes a proper 400/404 Status rather than a broken stream.

``follow`` streams until the container has exited and ``linger`` more seconds passed without
output (a real kubelet closes at once; ``linger=None`` never closes, for the T12 fault), or until
a :class:`LogCuts` fault ends it early (T11), cleanly and after a whole line, as a kubelet log
rotation or a proxy's idle timeout does: the client sees an ordinary end of stream.

``sinceTime`` is RFC 3339 and has whole-second precision by the time it reaches the kubelet: the
API server forwards it as ``opts.SinceTime.Format(time.RFC3339)`` (``LogLocation`` in
``pkg/registry/core/pod/strategy.go``), and the kubelet skips only lines stamped *before* it
(``msg.timestamp.Before(opts.since)`` in ``pkg/kubelet/kuberuntime/logs/logs.go``). So resuming
from the last ``timestamps=true`` stamp a client saw repeats that line and every earlier line of
the same second: the client must drop lines stamped at or before its last one. ``tailLines`` is
applied before ``sinceTime``, as the kubelet seeks to the tail first.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mlrelay.testing.kinds import PODS
from mlrelay.testing.kubelet import Kubelet
from mlrelay.testing.recorder import parse_time, timestamp_nano, utcnow
from mlrelay.testing.runtime import ContainerProcess
from mlrelay.testing.status import ApiError, bad_request
from mlrelay.testing.store import Store

#: What ``Api.log_source`` expects: ``(namespace, pod, query) -> chunks``.
LogSource = Callable[[str, str, Mapping[str, str]], AsyncIterator[bytes]]


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise bad_request(f"{name}: Invalid value: {raw!r}: must be an integer") from None
    if value < 0:
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than or equal to 0")
    return value


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


@dataclass(eq=False)
class _OpenStream:
    path: str
    left: float = math.inf  # lines still to send before a cut_logs_next cut (stream's own)
    cut: bool = False  # set by cut_log_streams from another thread

    @property
    def over(self) -> bool:
        return self.cut or self.left <= 0


@dataclass
class _CutRule:
    path: re.Pattern[str]
    after_lines: int
    times: int


@dataclass
class LogCuts:
    """Open ``follow`` streams of one store and the cuts pending for them (``emulator.faults``
    drives it: ``cut_log_streams()``, ``cut_logs_next(...)``)."""

    on_cut: Callable[[str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: set[_OpenStream] = field(default_factory=set)
    _rules: list[_CutRule] = field(default_factory=list)

    def cut_open(self, path: str = "") -> int:
        """End every open follow stream whose API path matches ``path`` (a regex) at its next
        line boundary; returns how many."""
        pattern = re.compile(path)
        with self._lock:
            streams = [s for s in self._open if pattern.search(s.path)]
            for stream in streams:
                stream.cut = True
            return len(streams)

    def cut_next(self, *, after_lines: int = 0, path: str = "", times: int = 1) -> None:
        """The next ``times`` follow streams whose API path matches ``path`` end after
        ``after_lines`` lines."""
        with self._lock:
            self._rules.append(_CutRule(re.compile(path), after_lines, times))

    def attach(self, path: str) -> _OpenStream:
        stream = _OpenStream(path)
        with self._lock:
            for rule in self._rules:
                if rule.path.search(path):
                    stream.left, rule.times = rule.after_lines, rule.times - 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    break
            self._open.add(stream)
        return stream

    def detach(self, stream: _OpenStream) -> None:
        with self._lock:
            self._open.discard(stream)

    def cut(self, stream: _OpenStream) -> None:
        if self.on_cut is not None:
            self.on_cut(stream.path)


_CUTS: weakref.WeakKeyDictionary[Store, LogCuts] = weakref.WeakKeyDictionary()
_CUTS_LOCK = threading.Lock()


def log_cuts(store: Store) -> LogCuts:
    """The :class:`LogCuts` of ``store`` (one per store, shared by its log sources and faults)."""
    with _CUTS_LOCK:
        return _CUTS.setdefault(store, LogCuts())


def _complete_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Whole lines written after ``offset`` (a line still being written waits), and the new offset."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(keepends=True), offset + end


def pod_logs(
    store: Store, kubelet: Kubelet, *, linger: float | None = 1.0, poll: float = 0.1
) -> LogSource:
    """A log source for ``Api.log_source`` (and :func:`pod_log_route`)."""
    cuts = log_cuts(store)

    def source(namespace: str, name: str, query: Mapping[str, str]) -> AsyncIterator[bytes]:
        pod = store.get(PODS, namespace, name)
        names = [str(c["name"]) for c in pod["spec"]["containers"]]
        container = query.get("container") or ""
        if not container:
            if len(names) > 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        elif container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        previous = _truthy(query.get("previous"))
        tail, limit = _int(query, "tailLines"), _int(query, "limitBytes")
        since = None
        if query.get("sinceTime"):
            try:
                since = timestamp_nano(parse_time(str(query["sinceTime"])).replace(microsecond=0))
            except ValueError:
                raise bad_request(f"sinceTime: Invalid value: {query['sinceTime']!r}") from None
        seconds = _int(query, "sinceSeconds")
        if seconds is not None:
            since = timestamp_nano(utcnow() - timedelta(seconds=seconds))
        run = kubelet.container(namespace, name, container, previous=previous)
        if run is None:
            if previous:
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            reason = "ContainerCreating"
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                if status.get("name") == container and "waiting" in (status.get("state") or {}):
                    reason = status["state"]["waiting"].get("reason", reason)
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        follow = _truthy(query.get("follow")) and not previous
        stamps = _truthy(query.get("timestamps"))
        return _stream(
            run,
            follow=follow,
            stamps=stamps,
            since=since,
            tail=tail,
            limit=limit,
            linger=linger,
            poll=poll,
            cuts=cuts if follow else None,
            path=f"/api/v1/namespaces/{namespace}/pods/{name}/log",
        )

    return source


async def _stream(
    run: ContainerProcess,
    *,
    follow: bool,
    stamps: bool,
    since: str | None,
    tail: int | None,
    limit: int | None,
    linger: float | None,
    poll: float,
    cuts: LogCuts | None = None,
    path: str = "",
) -> AsyncIterator[bytes]:
    lines, offset = _complete_lines(run.log_path, 0)
    if tail is not None:
        lines = lines[len(lines) - tail :] if tail else []
    if since is not None:  # RFC3339Nano stamps of equal width compare as strings
        lines = [line for line in lines if line[: len(since)].decode() >= since]
    sent = 0
    quiet_since: float | None = None
    stream = cuts.attach(path) if cuts is not None else None
    try:
        while True:
            for line in lines:
                if stream is not None and stream.over and cuts is not None:
                    cuts.cut(stream)
                    return
                out = line if stamps else line.split(b" ", 1)[-1]
                if limit is not None and sent + len(out) > limit:
                    yield out[: limit - sent]
                    return
                sent += len(out)
                yield out
                if stream is not None:
                    stream.left -= 1
            if not follow:
                return
            if stream is not None and stream.over and cuts is not None:
                cuts.cut(stream)
                return
            if run.done and not lines:
                quiet_since = quiet_since or time.monotonic()
                if linger is not None and time.monotonic() - quiet_since >= linger:
                    return
            await asyncio.sleep(poll)
            lines, offset = _complete_lines(run.log_path, offset)
    finally:
        if stream is not None and cuts is not None:
            cuts.detach(stream)


def pod_log_route(store: Store, kubelet: Kubelet, *, linger: float | None = 1.0) -> Route:
    """A Starlette route serving pod logs on their API path (no authentication of its own)."""
    source = pod_logs(store, kubelet, linger=linger)

    async def endpoint(request: Request) -> Response:
        params = request.path_params
        try:
            chunks = source(params["namespace"], params["name"], dict(request.query_params))
        except ApiError as error:
            return JSONResponse(error.status(), status_code=error.code, headers=error.headers)
        return StreamingResponse(chunks, media_type="text/plain")

    return Route("/api/v1/namespaces/{namespace}/pods/{name}/log", endpoint, methods=["GET"])
