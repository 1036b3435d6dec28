"""The controller pattern both the Job controller and the kubelet follow, written once.

Store events enqueue the key of the object they concern; one worker thread takes keys off the
queue and syncs them one at a time, and every ``resync`` seconds it also syncs every key the
subclass names (deadlines, TTLs and memory limits need time to pass, not an event). A key that
fails to sync is logged and left for the next event or resync: one bad object must not stop the
loop. Callbacks from the store run under its lock, so ``enqueue`` only queues.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Self

from mlrelay.testing.kinds import ResourceKind
from mlrelay.testing.recorder import log
from mlrelay.testing.store import Store, WatchEvent

Key = tuple[str, str]  # (namespace, name)
_TICK: Key = ("", "")  # "no event, just time passing"


class Reconciler:
    """Base of the emulated controllers: subclasses implement ``on_event``, ``resync_keys`` and
    ``sync``; ``start``/``stop`` run the worker thread."""

    name = "reconciler"

    def __init__(self, store: Store, *, kinds: Sequence[ResourceKind], resync: float) -> None:
        self.store = store
        self.resync = resync
        self._kinds = tuple(kinds)
        self._queue: queue.Queue[Key | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Any = None

    def enqueue(self, key: Key) -> None:
        self._queue.put(key)

    def start_loop(self) -> None:
        self._unsubscribe = self.store.subscribe(self.on_event, kinds=self._kinds)
        self._thread = threading.Thread(target=self._loop, name=f"mlrelay-{self.name}", daemon=True)
        self._thread.start()

    def stop_loop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def start(self) -> Self:
        """Subscribe and start the worker thread (a subclass adds what it needs around it)."""
        self.start_loop()
        return self

    def stop(self) -> None:
        self.stop_loop()

    def enqueue_owner(self, event: WatchEvent, owner: ResourceKind) -> None:
        """Queue an ``owner`` object's own key, or, for a dependent it controls (a pod), the
        owner's key: the usual event routing of a controller of ``owner`` objects."""
        meta = event.object["metadata"]
        namespace = meta.get("namespace", "")
        if event.kind.key == owner.key:
            self.enqueue((namespace, meta["name"]))
            return
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == owner.kind:
                self.enqueue((namespace, ref["name"]))

    # -- for subclasses ----------------------------------------------------------------------
    def on_event(self, event: WatchEvent) -> None:
        raise NotImplementedError

    def resync_keys(self) -> Iterable[Key]:
        raise NotImplementedError

    def sync(self, key: Key) -> None:
        raise NotImplementedError

    # -- the worker --------------------------------------------------------------------------
    def _loop(self) -> None:
        next_resync = 0.0
        while True:
            try:
                key = self._queue.get(timeout=self.resync)
            except queue.Empty:
                key = _TICK
            if key is None:
                return
            keys = {key} - {_TICK}
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + self.resync
                keys |= set(self.resync_keys())
            for k in sorted(keys):
                try:
                    self.sync(k)
                except Exception:
                    log.exception("%s: syncing %s/%s failed", self.name, *k)
