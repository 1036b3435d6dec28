"""Follow the logs of every container of a set of pods, as pods appear, without loss or repeats.

A training job's pods come and go: workers start together, a failed pod is replaced, an evicted
one is retried. ``follow_pods`` reads the pods from the caller's (shared) informers and streams
each container once it has started, prefixing lines with the pod name, until the caller says the
job is over and every stream has ended. Nothing polls: the loop sleeps until a line, the end of a
stream or a change of the job's objects wakes it (a tick only while an ended container's stream
may still linger). Two faults are handled (FAULTS T11, T12):

- a stream cut while its container still runs (API server restart, log rotation) is reopened
  with ``sinceTime`` = the last line's timestamp. ``sinceTime`` has second precision and is
  inclusive, so the lines already seen at that timestamp are skipped by their full
  (nanosecond) timestamp and text: nothing lost, nothing twice;
- a stream that stays open after its container terminated is closed ``linger`` seconds later.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlrelay.errors import ConfigError
from mlrelay.kube.client import PODS, Kube, Obj
from mlrelay.kube.shared import NotYet
from mlrelay.kube.watch import Watch

IDLE = 5.0  # seconds between looks when nothing happens (a time-based verdict, a missed wake-up)

log = logging.getLogger("mlrelay.kube")

Stamp = tuple[str, int]  # (seconds part "2026-11-22T20:40:00", nanoseconds)
_END = object()
QUIET = 0.3  # seconds without output after a container ended before its stream is closed


def parse_stamp(text: str) -> Stamp:
    """An RFC3339(Nano) timestamp as a sortable pair (the kubelet trims trailing zeros)."""
    base, _, frac = text.rstrip("Z").partition(".")
    return base, int((frac + "000000000")[:9]) if frac else 0


class _Follower(threading.Thread):
    """One container's log, reopened from its last timestamp until the container has ended."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        pod: str,
        container: str,
        prefix: str,
        out: queue.SimpleQueue[Any],
    ) -> None:
        super().__init__(name=f"logs-{pod}-{container}", daemon=True)
        self.kube, self.namespace, self.pod, self.container = kube, namespace, pod, container
        self.prefix, self.out = prefix, out
        self.terminated_at: float | None = None  # set by the owner from the pod's status
        self.stopping = threading.Event()
        self.response: Any = None
        self.last: Stamp | None = None
        self.seen_at_last: set[str] = set()
        self.reopened = 0
        self.last_data = float("inf")  # quiet is counted from the stream's opening
        self.error: ConfigError | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                ended_before = self.terminated_at is not None
                self._stream()
                if self.stopping.is_set() or ended_before or self.terminated_at is not None:
                    return
                self.reopened += 1  # cut while running (T11): resume from the last timestamp
                log.info("log stream of %s/%s was cut; resuming", self.pod, self.container)
                self.stopping.wait(min(0.2 * self.reopened, 2.0))
        except ConfigError as exc:  # an answer (403): the caller must see it
            self.error = exc
        except Exception as exc:
            if not self.stopping.is_set():
                log.warning(
                    "following %s/%s failed: %s", self.pod, self.container, type(exc).__name__
                )
        finally:
            self.out.put((self, _END))

    def _stream(self) -> None:
        query: list[tuple[str, Any]] = [
            ("container", self.container),
            ("follow", "true"),
            ("timestamps", "true"),
        ]
        if self.last is not None:
            query.append(("sinceTime", self.last[0] + "Z"))
        try:
            response = self.kube.open(
                "GET", PODS.path(self.namespace, self.pod, "log"), query=query, read_timeout=300
            )
        except Exception as exc:
            if getattr(exc, "status", None) in (400, 404):  # not started yet / gone
                return
            raise self.kube.answer(exc, f"read the log of pod {self.pod}") from exc
        self.response = response
        self.last_data = time.monotonic()
        pending = b""
        try:
            for chunk in response.stream(amt=None, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._emit(raw.decode("utf-8", errors="replace"))
            if pending:
                self._emit(pending.decode("utf-8", errors="replace"))
        except Exception:
            if not (self.stopping.is_set() or self.terminated_at is not None):
                raise
        finally:
            self.response = None
            with contextlib.suppress(Exception):
                response.release_conn()

    def _emit(self, raw: str) -> None:
        stamp_text, _, text = raw.partition(" ")
        stamp = parse_stamp(stamp_text)
        if self.last is not None and (
            stamp < self.last or (stamp == self.last and raw in self.seen_at_last)
        ):
            return  # sent again after a resume
        if stamp != self.last:
            self.last, self.seen_at_last = stamp, set()
        self.seen_at_last.add(raw)
        self.last_data = time.monotonic()
        self.out.put((self, f"{self.prefix}{text.rstrip(chr(13))}"))

    def close(self) -> None:
        self.stopping.set()
        response = self.response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown() if hasattr(response, "shutdown") else response.close()


def follow_pods(
    kube: Kube,
    namespace: str,
    *,
    watch: Watch,
    pods: Callable[[], list[Obj]],
    finished: Callable[[list[Obj]], bool],
    linger: float = 3.0,
    tick: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """Lines of every container of ``pods()``, prefixed ``[pod] ``.

    ``watch`` holds the informers ``pods`` and ``finished`` read (their changes wake this loop;
    the streams' lines travel through its queue too). Ends once ``finished(pods)`` is true and
    every stream has ended (a stream still open ``linger`` seconds after its container
    terminated is closed).
    """
    out = watch.changed
    followers: dict[tuple[str, str], _Follower] = {}
    try:
        while True:
            ready = watch.synced()  # raises what an informer was answered (403)
            now = clock()
            current = {p["metadata"]["name"]: p for p in pods()} if ready else {}
            for pod in current.values():
                _start_or_mark(kube, namespace, pod, followers, out, now, linger)
            for (pod_name, _), follower in followers.items():
                if ready and pod_name not in current:
                    follower.close()  # the pod is gone (the job was deleted): so is its log
            lingering = any(
                f.terminated_at is not None and f.is_alive() for f in followers.values()
            )
            with contextlib.suppress(queue.Empty):
                item = out.get(timeout=tick if lingering else IDLE)
                while True:  # everything that arrived meanwhile, then decide once
                    if item is not None:
                        follower, line = item
                        if line is _END:
                            follower.join(timeout=1)
                            if follower.error is not None:
                                raise follower.error
                        else:
                            yield line
                    item = out.get_nowait()
            alive = [f for f in followers.values() if f.is_alive()]
            # The last look at the pods: one created just before the end (a retry) has lines too.
            if not alive and out.empty() and watch.synced():
                last = pods()
                with contextlib.suppress(NotYet):  # the job joined just now: not known yet
                    if finished(last) and all(_seen(p, followers) for p in last):
                        return
    finally:
        for follower in followers.values():
            follower.close()


def _start_or_mark(
    kube: Kube,
    namespace: str,
    pod: Mapping[str, Any],
    followers: dict[tuple[str, str], _Follower],
    out: queue.SimpleQueue[Any],
    now: float,
    linger: float,
) -> None:
    name = pod["metadata"]["name"]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    several = len((pod.get("spec") or {}).get("containers") or []) > 1
    for c in statuses:
        state = c.get("state") or {}
        key = (name, c["name"])
        if key not in followers and ("running" in state or "terminated" in state):
            prefix = f"[{name}/{c['name']}] " if several else f"[{name}] "
            followers[key] = _Follower(kube, namespace, name, c["name"], prefix, out)
            followers[key].start()
        follower = followers.get(key)
        if follower is None:
            continue
        if "terminated" in state and follower.terminated_at is None:
            follower.terminated_at = now
        if follower.terminated_at is None:
            continue
        # The container has ended: all it wrote is in its log file. A stream that stays open
        # (T12) is closed once it has been quiet for QUIET seconds, and after ``linger`` anyway.
        since_end, quiet = now - follower.terminated_at, time.monotonic() - follower.last_data
        if since_end > linger or (since_end > QUIET and quiet > QUIET):
            follower.close()


def _seen(pod: Mapping[str, Any], followers: dict[tuple[str, str], _Follower]) -> bool:
    """Whether every started container of ``pod`` has (had) a follower."""
    name = pod["metadata"]["name"]
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        state = c.get("state") or {}
        if ("running" in state or "terminated" in state) and (name, c["name"]) not in followers:
            return False
    return True


def tail(
    kube: Kube, namespace: str, pod: str, container: str, *, lines: int = 20, previous: bool = False
) -> list[str]:
    """The last ``lines`` lines of a container's log (``previous``: of its last run); [] if none."""
    query: list[tuple[str, Any]] = [("container", container), ("tailLines", lines)]
    if previous:
        query.append(("previous", "true"))
    try:
        response = kube.open("GET", PODS.path(namespace, pod, "log"), query=query)
        try:
            text = str(response.data.decode("utf-8", errors="replace"))
        finally:
            response.release_conn()
    except Exception:
        return []
    return text.splitlines()
