"""The object store behind the emulated API server: etcd plus the generic registry, in memory.

Every write gets the next value of ONE global, monotonically increasing resourceVersion (as etcd
revisions are global), is appended to a bounded event history and is handed to subscribers under
the store lock, so watchers and controllers see events in commit order. When the history is full
the oldest event is dropped and its resourceVersion becomes "compacted": a watch asking to
resume from before it gets 410 Expired, exactly what a client sees after etcd compaction.

Controllers and the kubelet of later rounds use this class directly (no HTTP): ``create``,
``get``, ``list``, ``replace``, ``update_status``, ``patch``, ``delete``/``remove`` and
``subscribe``, plus ``set_deletion_handler`` for graceful pod termination.
"""

from __future__ import annotations

import builtins
import copy
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlrelay.testing import kinds as k
from mlrelay.testing.deletion import DeletionMixin, Key, now
from mlrelay.testing.kinds import Obj, ResourceKind
from mlrelay.testing.status import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    expired,
    invalid,
    not_found,
)

KindRef = ResourceKind | str


@dataclass(frozen=True)
class WatchEvent:
    """One committed change. ``previous`` is the object before a MODIFIED (for selector moves)."""

    type: str
    kind: ResourceKind
    object: Obj
    resource_version: int
    previous: Obj | None = None


# A sink receives events; ``None`` means "close the stream cleanly"; an ApiError means "send it
# as an ERROR event, then close" (used for expiry).
Sink = Callable[[WatchEvent | ApiError | None], None]


@dataclass(eq=False)
class Subscription:
    kind: ResourceKind | None
    namespace: str | None
    sink: Sink
    store: Store = field(repr=False)

    def cancel(self) -> None:
        self.store._unsubscribe(self)


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _spec_part(obj: Obj) -> Obj:
    return {
        key: v for key, v in obj.items() if key not in ("metadata", "status", "kind", "apiVersion")
    }


class Store(DeletionMixin):
    """Thread-safe in-memory API object store with watch history and owner-reference GC."""

    def __init__(self, *, history: int = 1000, clock: Callable[[], datetime] | None = None) -> None:
        self._lock = threading.RLock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._kinds: dict[tuple[str, str], ResourceKind] = {}
        self._objects: dict[tuple[str, str], dict[Key, Obj]] = {}
        self._rv = 0
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._compacted = 0
        self._subs: builtins.list[Subscription] = []
        self._deletion_handlers: dict[tuple[str, str], Callable[[Obj], None]] = {}
        self._terminating: set[tuple[tuple[str, str], Key]] = set()
        #: Faults hook: return True to keep an event from live watchers (history keeps it).
        self.event_filter: Callable[[WatchEvent], bool] | None = None
        for kind in k.BUILTIN_KINDS:
            self.register(kind)
        for ns in ("default", "kube-system", "kube-public"):
            self.create(k.NAMESPACES, {"metadata": {"name": ns}})

    # -- kinds -------------------------------------------------------------------------------
    def register(self, kind: ResourceKind) -> ResourceKind:
        """Serve a new resource kind (what installing a CRD does). Idempotent."""
        with self._lock:
            self._kinds[kind.key] = kind
            self._objects.setdefault(kind.key, {})
        return kind

    def kinds(self) -> builtins.list[ResourceKind]:
        with self._lock:
            return list(self._kinds.values())

    def kind(self, ref: KindRef) -> ResourceKind:
        """Resolve ``"pods"``, ``"jobs.batch"``, ``"job"`` or a ResourceKind, as kubectl does."""
        if isinstance(ref, ResourceKind):
            return self._kinds.get(ref.key) or self.register(ref)
        plural, _, group = ref.partition(".")
        with self._lock:
            candidates = list(self._kinds.values())
        for kind in candidates:
            names = (kind.plural, kind.singular, kind.kind.lower(), *kind.short_names)
            if plural.lower() in names and (not group or kind.group == group):
                return kind
        raise KeyError(f"unknown resource {ref!r}")

    def find(self, group: str, version: str, plural: str) -> ResourceKind | None:
        kind = self._kinds.get((group, plural))
        return kind if kind is not None and kind.version == version else None

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- reads -------------------------------------------------------------------------------
    def get(self, ref: KindRef, namespace: str | None, name: str) -> Obj:
        kind = self.kind(ref)
        with self._lock:
            obj = self._objects[kind.key].get(self._key(kind, namespace, name))
            if obj is None:
                raise not_found(kind.group, kind.plural, name)
            return copy.deepcopy(obj)

    def list(
        self,
        ref: KindRef,
        namespace: str | None = None,
        match: Callable[[Obj], bool] | None = None,
    ) -> tuple[builtins.list[Obj], int]:
        """Objects (sorted by namespace/name, like etcd keys) and the list's resourceVersion."""
        kind = self.kind(ref)
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._objects[kind.key].items())
                if (namespace is None or ns == namespace) and (match is None or match(obj))
            ]
            return items, self._rv

    # -- writes ------------------------------------------------------------------------------
    def create(self, ref: KindRef, obj: Obj, namespace: str | None = None) -> Obj:
        """Create (201 semantics): uid, timestamps, generation, defaulting, validation."""
        kind = self.kind(ref)
        obj = copy.deepcopy(obj)
        meta = _meta(obj)
        with self._lock:
            ns = self._namespace_for(kind, meta, namespace)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = str(meta["generateName"]) + secrets.token_hex(3)[:5]
            name = meta.get("name")
            causes = k.validate_name(kind, name)
            if kind.namespaced and ("", ns) not in self._objects[k.NAMESPACES.key]:
                raise not_found("", "namespaces", ns)
            if not causes and self._key(kind, ns, str(name)) in self._objects[kind.key]:
                raise already_exists(kind.group, kind.plural, str(name))
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            for drop in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(drop, None)
            meta["uid"] = k.new_uid()
            meta["creationTimestamp"] = now(self._clock)
            meta["generation"] = 1
            if kind.namespaced:
                meta["namespace"] = ns
            if not causes:
                if kind.defaulter:
                    kind.defaulter(obj)
                causes = kind.validator(obj) if kind.validator else []
            if causes:
                raise invalid(kind.kind, kind.group, str(name or ""), causes)
            self._commit(kind, "ADDED", obj, None)
            return copy.deepcopy(obj)

    def replace(
        self,
        ref: KindRef,
        namespace: str | None,
        name: str,
        obj: Obj,
        *,
        subresource: str | None = None,
    ) -> Obj:
        """PUT semantics: optimistic concurrency on resourceVersion, status via its subresource only."""
        kind = self.kind(ref)
        obj = copy.deepcopy(obj)
        meta = _meta(obj)
        with self._lock:
            key = self._key(kind, namespace, name)
            old = self._objects[kind.key].get(key)
            if old is None:
                raise not_found(kind.group, kind.plural, name)
            if meta.get("name", name) != name:
                raise bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            if kind.namespaced and meta.get("namespace", namespace) != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            rv = meta.get("resourceVersion")
            if rv not in (None, "") and str(rv) != old["metadata"]["resourceVersion"]:
                raise conflict(kind.group, kind.plural, name)
            if subresource == "status":
                new = copy.deepcopy(old)
                new["status"] = obj.get("status", {})
            elif subresource is not None:
                raise not_found(kind.group, f"{kind.plural}/{subresource}", name)
            else:
                new = obj
                new["apiVersion"], new["kind"] = kind.api_version, kind.kind
                keep = (
                    "uid",
                    "creationTimestamp",
                    "name",
                    "namespace",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                )
                for field_name in keep:
                    if field_name in old["metadata"]:
                        meta[field_name] = old["metadata"][field_name]
                    else:
                        meta.pop(field_name, None)
                if kind.status_subresource:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                causes = kind.validator(new) if kind.validator else []
                if causes:
                    raise invalid(kind.kind, kind.group, name, causes)
                if _spec_part(new) != _spec_part(old):
                    meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            self._commit(kind, "MODIFIED", new, old)
            self._maybe_finish_deletion(kind, key)
            return copy.deepcopy(new)

    def update_status(self, ref: KindRef, namespace: str | None, name: str, status: Obj) -> Obj:
        """Set ``status`` unconditionally (what a controller's status writer does)."""
        return self.replace(ref, namespace, name, {"status": status}, subresource="status")

    def patch(
        self,
        ref: KindRef,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], Obj],
        *,
        subresource: str | None = None,
    ) -> Obj:
        """Read-modify-write atomically: ``mutate`` gets a copy of the object, returns the new one."""
        kind = self.kind(ref)
        with self._lock:
            current = self.get(kind, namespace, name)
            rv = current["metadata"]["resourceVersion"]
            new = mutate(copy.deepcopy(current))
            meta = _meta(new)
            if meta.get("resourceVersion") in (None, "", rv):
                meta["resourceVersion"] = rv  # a patch without a precondition never conflicts
            return self.replace(kind, namespace, name, new, subresource=subresource)

    # -- watch -------------------------------------------------------------------------------
    def watch(
        self, ref: KindRef, namespace: str | None, since: int | None, sink: Sink
    ) -> tuple[Subscription, builtins.list[WatchEvent], int]:
        """Subscribe; returns the subscription, the events to replay first and the current rv.

        ``since=None`` ("Get State and Start at Most Recent", also used for "0") replays the
        current objects as synthetic ADDED events; a number replays history after it, or raises
        410 Expired if that part of history was compacted. See
        https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-watch
        """
        kind = self.kind(ref)
        with self._lock:
            if since is None:
                items, _ = self.list(kind, namespace)
                initial = [
                    WatchEvent("ADDED", kind, obj, int(obj["metadata"]["resourceVersion"]))
                    for obj in items
                ]
            else:
                if since < self._compacted:
                    raise expired(since, self._compacted + 1)
                initial = [
                    e
                    for e in self._history
                    if e.resource_version > since
                    and e.kind.key == kind.key
                    and (namespace is None or e.object["metadata"].get("namespace") == namespace)
                ]
            sub = Subscription(kind, namespace, sink, self)
            self._subs.append(sub)
            return sub, initial, self._rv

    def subscribe(
        self, callback: Callable[[WatchEvent], None], kinds: Iterable[KindRef] = ()
    ) -> Callable[[], None]:
        """Call ``callback`` for every committed event (of ``kinds``, or all); returns unsubscribe.

        The callback runs under the store lock, in commit order: it must enqueue, not block.
        """
        wanted = {self.kind(r).key for r in kinds}

        def sink(item: WatchEvent | ApiError | None) -> None:
            if isinstance(item, WatchEvent) and (not wanted or item.kind.key in wanted):
                callback(item)

        sub = Subscription(None, None, sink, self)
        with self._lock:
            self._subs.append(sub)
        return sub.cancel

    def close_watches(self, error: ApiError | None = None, namespace: str | None = None) -> int:
        """End every open API watch stream (cleanly, or with ``error`` as an ERROR event); with
        ``namespace``, only the watches scoped to it (cluster-wide watches stay open)."""
        with self._lock:
            subs = [
                s
                for s in self._subs
                if s.kind is not None and (namespace is None or s.namespace == namespace)
            ]
            for sub in subs:
                sub.sink(error)
                self._subs.remove(sub)  # ended now: no later event, not counted as open
            return len(subs)

    @property
    def open_watches(self) -> int:
        """API watch streams currently subscribed (tests wait for a client's watch to be open)."""
        with self._lock:
            return sum(1 for s in self._subs if s.kind is not None)

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    # -- internals ---------------------------------------------------------------------------
    def _key(self, kind: ResourceKind, namespace: str | None, name: str) -> Key:
        return ((namespace or "") if kind.namespaced else "", name)

    def _namespace_for(
        self, kind: ResourceKind, meta: dict[str, Any], namespace: str | None
    ) -> str:
        if not kind.namespaced:
            meta.pop("namespace", None)
            return ""
        body_ns = meta.get("namespace")
        if namespace and body_ns and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return str(namespace or body_ns or "default")

    def _commit(self, kind: ResourceKind, type_: str, obj: Obj, previous: Obj | None) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = self._key(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if type_ == "DELETED":
            self._objects[kind.key].pop(key, None)
        else:
            self._objects[kind.key][key] = obj
        event = WatchEvent(
            type_, kind, copy.deepcopy(obj), self._rv, previous and copy.deepcopy(previous)
        )
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].resource_version
        self._history.append(event)
        if self.event_filter is not None and self.event_filter(event):
            return
        for sub in list(self._subs):
            if sub.kind is not None and sub.kind.key != kind.key:
                continue
            if sub.namespace is not None and obj["metadata"].get("namespace") != sub.namespace:
                continue
            sub.sink(event)
