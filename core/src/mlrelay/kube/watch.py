"""The one watch loop every waiter uses: list, watch from there, re-list when the stream says so.

The official client's ``Watch`` gets the hard cases wrong for a waiter (see DEPENDENCIES.md):
after an ERROR 410 it retries once from the same stale resourceVersion and then raises; a
stream that closes before any event ends the iteration as if the job were done; a dropped
event is never noticed. So an :class:`Informer` owns the protocol (FAULTS K9-K11):

- list, then watch from the list's resourceVersion, with bookmarks (which move the
  resourceVersion on without events, so a reconnect rarely needs a re-list);
- a watch that closes cleanly (its ``timeoutSeconds`` ran out, the server restarted) is
  reopened from the last resourceVersion; never read as "done";
- ERROR 410 Gone (the resourceVersion is too old) -> re-list and resume from the new one;
- a re-list every ``relist_interval`` seconds whatever happens: the bound on how long a dropped
  completion event can hide a job's end;
- errors are retried with the client's policy; an error that is an answer (403, a bad
  selector) is handed to the waiter, which raises it.

The informer keeps the objects in a cache (name -> object, plain JSON dicts) and calls
``notify`` after each change; :func:`wait_until` re-decides on each notification and on a tick
(so decisions that depend on time, like a scheduling timeout, are taken without an event).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mlrelay.errors import ConfigError, OperationTimeout
from mlrelay.kube.client import Kind, Kube, Obj

log = logging.getLogger("mlrelay.kube")

T = TypeVar("T")


class _Expired(Exception):
    """ERROR 410 on the watch: re-list."""


class Informer:
    """A live cache of the objects of one kind in one namespace that match a selector.

    Args:
        kube: the connection.
        kind, namespace: what to watch.
        label_selector, field_selector: which objects (``metadata.name=NAME`` for one object).
        relist_interval: seconds between full re-lists (bounds a dropped event, K11).
        notify: called (from the informer's thread) after every change of the cache.
    """

    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        relist_interval: float = 30.0,
        notify: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.kind, self.namespace = kube, kind, namespace
        self.label_selector, self.field_selector = label_selector, field_selector
        self.relist_interval = relist_interval
        self.notify = notify
        self.clock = clock
        self.objects: dict[str, Obj] = {}
        self.synced = threading.Event()
        self.error: BaseException | None = None
        self.lists = 0  # how many times it listed (for tests and measurements)
        self._stop = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{kind.plural}", daemon=True
        )

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            # Unblocks the read in the informer's thread; it is being torn down either way.
            with contextlib.suppress(Exception):
                response.shutdown() if hasattr(response, "shutdown") else response.close()
        # Not waited for long: a thread still opening its watch ends by itself right after
        # (it checks the flag), and the waiter must not pay for that.
        self._thread.join(timeout=0.05)

    def snapshot(self) -> dict[str, Obj]:
        with self._lock:
            return dict(self.objects)

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._relist()
                failures = 0
                self._watch_until_relist(version)
            except _Expired:
                log.info("watch on %s expired (410 Gone): re-listing", self.kind.plural)
            except ConfigError as exc:  # an answer (403, bad selector): the waiter raises it
                self.error = exc
                self.notify()
                return
            except Exception as exc:
                if self._stop.is_set():
                    return
                failures += 1
                delay = min(self.kube.retry.maximum, self.kube.retry.initial * 2**failures)
                log.warning(
                    "watch on %s failed (%s); re-listing in %.1fs",
                    self.kind.plural,
                    type(exc).__name__,
                    delay,
                )
                self._stop.wait(delay)

    def _query(self) -> list[tuple[str, Any]]:
        query: list[tuple[str, Any]] = []
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        return query

    def _relist(self) -> str:
        listed = self.kube.request(
            "GET",
            self.kind.path(self.namespace),
            query=self._query(),
            what=f"list {self.kind.plural}",
            cancel=self._stop,
        )
        self.lists += 1
        items = {o["metadata"]["name"]: _typed(o, self.kind) for o in listed.get("items") or []}
        with self._lock:
            changed = items != self.objects
            self.objects = items
        self.synced.set()
        if changed or self.lists == 1:
            self.notify()
        return str(listed.get("metadata", {}).get("resourceVersion", ""))

    def _watch_until_relist(self, version: str) -> None:
        relist_at = self.clock() + self.relist_interval
        while not self._stop.is_set() and (left := relist_at - self.clock()) > 0:
            version = self._watch_once(version, max(1, int(left)))

    def _watch_once(self, version: str, seconds: int) -> str:
        """One watch request from ``version``; the resourceVersion to resume from."""
        query = [
            *self._query(),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", seconds),
        ]
        # The read timeout outlasts the server's timeoutSeconds: a stream silent for longer is
        # a half-open connection (K8), raised as a read timeout and answered by a re-list.
        try:
            response = self.kube.open(
                "GET", self.kind.path(self.namespace), query=query, read_timeout=seconds + 15
            )
        except Exception as exc:
            raise self.kube.answer(exc, f"watch {self.kind.plural}") from exc
        self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    break
                event = json.loads(line)
                version = self._apply(event, version)
        finally:
            self._response = None
            response.release_conn()
        return version

    def _apply(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Expired
            raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('reason')}")
        new_version = str(obj.get("metadata", {}).get("resourceVersion") or version)
        if kind == "BOOKMARK":
            return new_version
        name = obj["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self.objects.pop(name, None)
            else:
                self.objects[name] = _typed(obj, self.kind)
        self.notify()
        return new_version


def _typed(obj: Obj, kind: Kind) -> Obj:
    """List items come without apiVersion/kind; put them back (owner references need them)."""
    obj.setdefault("apiVersion", kind.api_version)
    obj.setdefault("kind", kind.kind)
    return obj


def _lines(response: Any) -> Any:
    """The newline-delimited JSON of a watch stream, one complete line at a time."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


class Watch:
    """Informers that feed one waiter: start them, wait on them, stop them (a context manager)."""

    def __init__(self) -> None:
        self.changed: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.informers: list[Informer] = []

    def add(self, kube: Kube, kind: Kind, namespace: str, **options: Any) -> Informer:
        informer = Informer(kube, kind, namespace, notify=lambda: self.changed.put(None), **options)
        self.informers.append(informer.start())
        return informer

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        for informer in self.informers:
            informer.stop()

    def until(
        self,
        decide: Callable[[], T | None],
        *,
        timeout: float | None,
        what: str,
        tick: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """Call ``decide`` after each change (and every ``tick``) until it returns a result.

        Raises:
            OperationTimeout: ``timeout`` seconds passed first.
            ConfigError: an informer got an answer that retrying cannot change (403, ...).
        """
        return wait_until(self.informers, self.changed, decide, timeout, what, tick, clock)


def wait_until(
    informers: Sequence[Informer],
    changed: queue.SimpleQueue[None],
    decide: Callable[[], T | None],
    timeout: float | None,
    what: str,
    tick: float,
    clock: Callable[[], float],
) -> T:
    deadline = None if timeout is None else clock() + timeout
    while True:
        for informer in informers:
            if informer.error is not None:
                raise informer.error
        if all(i.synced.is_set() for i in informers):
            result = decide()
            if result is not None:
                return result
        left = None if deadline is None else deadline - clock()
        if left is not None and left <= 0:
            raise OperationTimeout(f"{what} did not finish", operation=what, timeout=timeout or 0)
        try:
            changed.get(timeout=tick if left is None else min(tick, left))
            while not changed.empty():  # a burst of events: decide once
                changed.get_nowait()
        except queue.Empty:
            pass
