"""One informer per connection, kind, namespace and selector, shared by every waiter of a process.

A triggerer runs hundreds of deferred training tasks in one process; so does a Dagster or Prefect
worker with many runs. Each waiter opening its own watches costs the API server two long-lived
connections and a list per job and per re-list interval. Sharing makes that one watch per
namespace and kind however many jobs wait (the jobs and their pods are watched namespace-wide
by a label every object we create carries, ``app.kubernetes.io/managed-by=mlrelay``), and each
waiter picks its own objects out of the cache:

- :data:`INFORMERS` counts its borrowers: the first one starts an informer, the last one stops it;
  an informer that got a final answer (a 403) is not handed out again, a new one is started.
- Connections with the same identity (server, credentials) share; different credentials never
  do, so one user's permissions never serve another's waiter.
- :class:`Followed` closes the race sharing opens: a waiter that joins a running informer right
  after creating its job may find the job not in the cache yet (its ADDED event is on its way).
  Absence is only read as "gone" once the object was seen and left, once a list started after
  the waiter joined says so, or once a GET says 404. The event usually arrives within
  milliseconds, so the waiter first gives it ``grace`` seconds (``NotYet``: no decision yet);
  only then does one GET settle it, and its answer stands in until the cache has the object.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from mlrelay.kube.client import Kind, Kube, NotFound, Obj
from mlrelay.kube.watch import Informer

log = logging.getLogger("mlrelay.kube")

GRACE = 2.0  # seconds a joining waiter waits for its object's event before asking the server


class NotYet(Exception):
    """The object's state is not known yet (see :class:`Followed`): decide nothing now."""


class Informers:
    """The process's informers, started on first use and stopped when nobody uses them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[tuple[Any, ...], tuple[Informer, int]] = {}

    def acquire(
        self,
        kube: Kube,
        kind: Kind,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        relist_interval: float = 300.0,
    ) -> tuple[Informer, int]:
        """The running informer for these objects (started if there is none), and the number of
        its last list started before now (see :class:`Followed`); give it back with
        :meth:`release`. The shortest ``relist_interval`` asked for wins from the next re-list."""
        key = (kube.identity, kind, namespace, label_selector, field_selector)
        with self._lock:
            informer, users = self._running.get(key, (None, 0))
            mark = informer.lists_started if informer is not None else 0
            if informer is None or informer.error is not None:
                users = 0
                informer = Informer(
                    kube,
                    kind,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    relist_interval=relist_interval,
                )
                informer.start()
                mark = 0  # every list of a new informer starts after this waiter's objects exist
                log.debug("started the shared informer on %s in %s", kind.plural, namespace)
            informer.relist_interval = min(informer.relist_interval, relist_interval)
            self._running[key] = (informer, users + 1)
            return informer, mark

    def release(self, informer: Informer) -> None:
        """One borrower less; the last one stops the informer (its watch connection closes)."""
        with self._lock:
            for key, (running, users) in list(self._running.items()):
                if running is informer:
                    if users > 1:
                        self._running[key] = (running, users - 1)
                        return
                    del self._running[key]
                    break
            else:  # replaced after a final error: its borrowers are the last ones
                informer.stop()
                return
        informer.stop()

    def borrowers(self, host: str | None = None) -> int:
        """Waiters holding an informer now (of the server at ``host``), all informers together."""
        with self._lock:
            return sum(n for i, n in self._running.values() if host in (None, i.kube.host))

    def running(self, host: str | None = None) -> Counter[tuple[str, str]]:
        """Informers running (on the server at ``host``), by (namespace, plural): one each is
        the goal (for measurements)."""
        with self._lock:
            return Counter(
                (i.namespace, i.kind.plural)
                for i, _ in self._running.values()
                if host in (None, i.kube.host)
            )


#: The informers of this process.
INFORMERS = Informers()


class Followed:
    """One object of a shared cache as a waiter that has just joined sees it (module docstring).

    Args:
        informer: the shared informer of the object's kind and namespace.
        name: the object.
        kube: the waiter's connection, for the one GET that settles an absence.
        joined_at: the number of the informer's last list started before the waiter joined.
        grace: seconds to wait for the object's event before one GET settles its absence.
        clock: injectable (the grace).
    """

    def __init__(
        self,
        informer: Informer,
        name: str,
        kube: Kube,
        joined_at: int,
        *,
        grace: float = GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.informer, self.name, self.kube = informer, name, kube
        self._joined_at = joined_at
        self._clock = clock
        self._ask_after = clock() + grace
        self._seen = False
        self._fetched: Obj | None = None
        self._asked = False

    def get(self) -> Obj | None:
        """The object now; None once it is known to be gone (or never existed).

        Raises:
            NotYet: during the grace, while neither the cache nor the server has answered.
        """
        obj = self.informer.get(self.name)
        if obj is not None:
            self._seen = True
            return obj
        if self._seen or self.informer.listed_from > self._joined_at:
            return None
        if not self._asked:
            if self._clock() < self._ask_after:
                raise NotYet(self.name)
            self._asked = True
            try:
                self._fetched = self.kube.get(
                    self.informer.kind, self.name, self.informer.namespace
                )
            except NotFound:
                self._fetched = None
        return self._fetched
