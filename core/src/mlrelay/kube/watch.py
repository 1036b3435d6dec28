"""The one watch loop every waiter uses: list, watch from there, re-list when the stream says so.

The official client's ``Watch`` gets the hard cases wrong for a waiter (see DEPENDENCIES.md):
after an ERROR 410 it retries once from the same stale resourceVersion and then raises; a
stream that closes before any event ends the iteration as if the job were done; a dropped
event is never noticed. So an :class:`Informer` owns the protocol (FAULTS K9-K11):

- list, then watch from the list's resourceVersion, with bookmarks (which move the
  resourceVersion on without events, so a reconnect rarely needs a re-list);
- a watch that closes cleanly (its ``timeoutSeconds`` ran out, the server restarted), or goes
  quiet (nothing for ``QUIET`` seconds, not even a bookmark: a half-open connection), is
  reopened from the last resourceVersion; never read as "done";
- ERROR 410 Gone (the resourceVersion is too old) -> re-list and resume from the new one;
- a re-list every ``relist_interval`` seconds whatever happens: the bound on how long a dropped
  completion event can hide a job's end;
- errors are retried with the client's policy; an error that is an answer (403, a bad
  selector) is handed to the waiter, which raises it.

The informer keeps the objects in a cache (name -> object, plain JSON dicts) and tells its
listeners after each change (each listener only of the objects it is interested in);
:meth:`Watch.until` re-decides on each notification and on a tick (so decisions that depend on
time, like a scheduling timeout, are taken without an event). Informers are shared by every
waiter of the process (:mod:`mlrelay.kube.shared`): a :class:`Watch` borrows them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from mlrelay.errors import ConfigError, OperationTimeout
from mlrelay.kube.client import Kind, Kube, Obj

if TYPE_CHECKING:
    from mlrelay.kube.shared import Followed

log = logging.getLogger("mlrelay.kube")

T = TypeVar("T")

MAX_WATCH = 300.0  # seconds one watch request lasts at most (the server's timeoutSeconds)
QUIET = 75.0  # seconds a live watch may send nothing at all (servers send bookmarks more often)


Interest = Callable[[Obj], bool]


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
        relist_interval: float = 300.0,
        notify: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.kind, self.namespace = kube, kind, namespace
        self.label_selector, self.field_selector = label_selector, field_selector
        self.relist_interval = relist_interval
        self.clock = clock
        self.objects: dict[str, Obj] = {}
        self.synced = threading.Event()
        self.error: BaseException | None = None
        self.lists = 0  # how many times it listed (for tests and measurements)
        self.lists_started = 0  # numbered: which list the cache comes from (see ``listed_from``)
        self.listed_from = 0  # the number of the list the cache was last rebuilt from
        self._listeners: dict[int, tuple[Callable[[], None], Interest | None]] = {}
        self._next_listener = 0
        if notify is not None:
            self.listen(notify)
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

    def get(self, name: str) -> Obj | None:
        with self._lock:
            return self.objects.get(name)

    def select(self, key: str, value: str) -> list[Obj]:
        """The cached objects labelled ``key=value`` (one job's pods in a namespace-wide cache)."""
        with self._lock:
            return [o for o in self.objects.values() if _labels(o).get(key) == value]

    def listen(self, callback: Callable[[], None], interest: Interest | None = None) -> int:
        """Call ``callback`` after each change of an object ``interest`` accepts (every change
        without one, and after every re-list); a token for :meth:`unlisten`."""
        with self._lock:
            self._next_listener += 1
            self._listeners[self._next_listener] = (callback, interest)
            return self._next_listener

    def unlisten(self, token: int) -> None:
        with self._lock:
            self._listeners.pop(token, None)

    def notify(self, *objects: Obj) -> None:
        """Tell the listeners interested in any of ``objects`` (all of them when none given)."""
        with self._lock:
            listeners = list(self._listeners.values())
        for callback, interest in listeners:
            if not objects or interest is None or any(interest(o) for o in objects):
                callback()

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
        self.lists_started += 1
        number = self.lists_started
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
            self.listed_from = number
        self.synced.set()
        if changed or self.lists == 1:
            self.notify()
        return str(listed.get("metadata", {}).get("resourceVersion", ""))

    def _watch_until_relist(self, version: str) -> None:
        relist_at = self.clock() + self.relist_interval
        while not self._stop.is_set() and (left := relist_at - self.clock()) > 0:
            version = self._watch_once(version, max(1, int(min(left, MAX_WATCH))))

    def _watch_once(self, version: str, seconds: int) -> str:
        """One watch request from ``version``; the resourceVersion to resume from."""
        query = [
            *self._query(),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", seconds),
        ]
        # A stream that sends nothing, not even a bookmark, for QUIET seconds (or past its
        # timeoutSeconds) is a half-open connection (K8, K10): the read times out and the watch
        # is reopened from the same resourceVersion; a server that is really gone fails the
        # reconnect, which re-lists.
        from urllib3.exceptions import ReadTimeoutError

        quiet = f"watch on {self.kind.plural} was silent for %.0fs: reconnecting"
        read_timeout = min(seconds + 15.0, QUIET)
        try:
            response = self.kube.open(
                "GET", self.kind.path(self.namespace), query=query, read_timeout=read_timeout
            )
        except ReadTimeoutError:
            log.info(quiet, read_timeout)
            return version
        except Exception as exc:
            raise self.kube.answer(exc, f"watch {self.kind.plural}") from exc
        self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    break
                event = json.loads(line)
                version = self._apply(event, version)
        except ReadTimeoutError:
            log.info(quiet, read_timeout)
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
                before = self.objects.pop(name, None)
            else:
                before = self.objects.get(name)
                self.objects[name] = _typed(obj, self.kind)
        # Both versions: a pod relabelled out of a job's selection concerns that job too.
        self.notify(*(o for o in (obj, before) if o is not None))
        return new_version


def _labels(obj: Obj) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


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
    """What one waiter borrows: shared informers, and a wake-up whenever one of them changes.

    ``add`` borrows the process's informer for that connection, kind, namespace and selector
    (:data:`mlrelay.kube.shared.INFORMERS`), starting it if nobody runs it yet; leaving the
    ``with`` block gives it back (the last user stops it). With ``interest`` the waiter is only
    woken by changes of the objects it cares about (its job, its pods), not by every object of
    a namespace-wide cache.

    Args:
        wake: what a change does; by default it puts ``None`` in :attr:`changed`, which
            :meth:`until` waits on. Log followers put their lines in the same queue.
    """

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self.changed: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.informers: list[Informer] = []
        self._wake = wake or (lambda: self.changed.put(None))
        self._borrowed: list[tuple[Informer, int]] = []
        self._joined: dict[int, int] = {}

    def add(
        self,
        kube: Kube,
        kind: Kind,
        namespace: str,
        *,
        interest: Interest | None = None,
        **options: Any,
    ) -> Informer:
        from mlrelay.kube.shared import INFORMERS

        informer, mark = INFORMERS.acquire(kube, kind, namespace, **options)
        self._borrowed.append((informer, informer.listen(self._wake, interest)))
        self.informers.append(informer)
        self._joined[id(informer)] = mark
        return informer

    def follow(self, informer: Informer, name: str, kube: Kube) -> Followed:
        """One object of ``informer`` (added by :meth:`add`), safe from the join race."""
        from mlrelay.kube.shared import Followed

        return Followed(informer, name, kube, self._joined[id(informer)])

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        from mlrelay.kube.shared import INFORMERS

        for informer, token in self._borrowed:
            informer.unlisten(token)
            INFORMERS.release(informer)
        self._borrowed.clear()

    def synced(self) -> bool:
        """Whether every informer has listed once; raises the answer one of them got (403...)."""
        for informer in self.informers:
            if informer.error is not None:
                raise informer.error
        return all(i.synced.is_set() for i in self.informers)

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
        from mlrelay.kube.shared import NotYet

        deadline = None if timeout is None else clock() + timeout
        while True:
            if self.synced():
                with contextlib.suppress(NotYet):  # an object joined just now: not known yet
                    result = decide()
                    if result is not None:
                        return result
            left = None if deadline is None else deadline - clock()
            if left is not None and left <= 0:
                raise OperationTimeout(
                    f"{what} did not finish", operation=what, timeout=timeout or 0
                )
            try:
                self.changed.get(timeout=tick if left is None else min(tick, left))
                while not self.changed.empty():  # a burst of events: decide once
                    self.changed.get_nowait()
            except queue.Empty:
                pass
