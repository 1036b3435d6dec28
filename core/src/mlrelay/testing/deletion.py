"""Deletion: finalizers, graceful deletion and owner-reference garbage collection.

Split from ``store.py`` to keep each module readable; :class:`DeletionMixin` is only ever used as
a base of :class:`~mlrelay.testing.store.Store` and works on its state under its lock.
"""

from __future__ import annotations

import builtins
import copy
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlrelay.testing import kinds as k
from mlrelay.testing.kinds import Obj, ResourceKind
from mlrelay.testing.status import bad_request, conflict, not_found

if TYPE_CHECKING:
    from mlrelay.testing.store import KindRef

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
FOREGROUND = "foregroundDeletion"


def now(clock: Callable[[], datetime]) -> str:
    return clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DeletionMixin:
    _lock: threading.RLock
    _clock: Callable[[], datetime]
    _kinds: dict[tuple[str, str], ResourceKind]
    _objects: dict[tuple[str, str], dict[Key, Obj]]
    _deletion_handlers: dict[tuple[str, str], Callable[[Obj], None]]
    _terminating: set[tuple[tuple[str, str], Key]]

    if TYPE_CHECKING:

        def kind(self, ref: KindRef) -> ResourceKind: ...
        def _key(self, kind: ResourceKind, namespace: str | None, name: str) -> Key: ...
        def _commit(
            self, kind: ResourceKind, type_: str, obj: Obj, previous: Obj | None
        ) -> None: ...

    def delete(
        self,
        ref: KindRef,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        grace_period: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> Obj:
        """DELETE: finalizers, graceful deletion (if a handler is set) and owner-reference GC.

        Foreground sets ``deletionTimestamp`` and the ``foregroundDeletion`` finalizer, deletes
        the dependents and removes the owner when the last one is gone; Background removes the
        owner then its dependents; Orphan strips the owner reference from the dependents.
        """
        kind = self.kind(ref)
        with self._lock:
            key = self._key(kind, namespace, name)
            obj = self._objects[kind.key].get(key)
            if obj is None:
                raise not_found(kind.group, kind.plural, name)
            meta = obj["metadata"]
            for field_name in ("uid", "resourceVersion"):
                want = (preconditions or {}).get(field_name)
                if want is not None and str(want) != str(meta.get(field_name)):
                    raise conflict(
                        kind.group,
                        kind.plural,
                        name,
                        f"Precondition failed: {field_name}: {want}, {field_name} in object meta: {meta.get(field_name)}",
                    )
            policy = propagation or kind.default_propagation
            if policy not in ("Foreground", "Background", "Orphan"):
                raise bad_request(f"propagationPolicy: Unsupported value: {policy!r}")
            uid = meta["uid"]
            if policy == "Orphan":
                self._orphan(uid)
            if meta.get("deletionTimestamp"):
                # A second DELETE can only force (grace 0) an object that waits for its grace.
                if grace_period == 0 and not meta.get("finalizers"):
                    return self.remove(kind, namespace, name)
                return copy.deepcopy(obj)
            finalizers = list(meta.get("finalizers") or [])
            if policy == "Foreground" and self._dependents(uid):
                finalizers.append(FOREGROUND)
            handler = self._deletion_handlers.get(kind.key)
            grace = grace_period
            if grace is None:
                grace = int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30) or 0)
            graceful = handler is not None and grace > 0
            if not finalizers and not graceful:
                removed = self._remove(kind, key)
                if policy == "Background":
                    self._delete_dependents(uid)
                return removed
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now(self._clock)
            if finalizers:
                new["metadata"]["finalizers"] = finalizers
            if graceful:
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                self._terminating.add((kind.key, key))
            self._commit(kind, "MODIFIED", new, obj)
            if policy != "Orphan":
                self._delete_dependents(uid)
            if graceful and handler is not None:
                handler(copy.deepcopy(new))
            self._maybe_finish_deletion(kind, key)
            found = self._objects[kind.key].get(key)
            return copy.deepcopy(found if found is not None else new)

    def remove(self, ref: KindRef, namespace: str | None, name: str) -> Obj:
        """Remove now, ignoring grace (the kubelet calls this once the containers are gone)."""
        kind = self.kind(ref)
        with self._lock:
            key = self._key(kind, namespace, name)
            if key not in self._objects[kind.key]:
                raise not_found(kind.group, kind.plural, name)
            uid = self._objects[kind.key][key]["metadata"]["uid"]
            removed = self._remove(kind, key)
            self._delete_dependents(uid)
            return removed

    def set_deletion_handler(self, ref: KindRef, handler: Callable[[Obj], None] | None) -> None:
        """Make deletes of ``ref`` graceful: ``handler(obj)`` runs (under the store lock, so it must
        only enqueue work) and the object stays, with deletionTimestamp, until ``remove``."""
        kind = self.kind(ref)
        with self._lock:
            if handler is None:
                self._deletion_handlers.pop(kind.key, None)
            else:
                self._deletion_handlers[kind.key] = handler

    def _remove(self, kind: ResourceKind, key: Key) -> Obj:
        obj = copy.deepcopy(self._objects[kind.key][key])
        self._terminating.discard((kind.key, key))
        self._commit(kind, "DELETED", obj, None)
        if kind.key == k.NAMESPACES.key:
            for other in self._kinds.values():
                if other.namespaced:
                    for other_key in [x for x in self._objects[other.key] if x[0] == key[1]]:
                        self._remove(other, other_key)
        self._collect_foreground()
        return copy.deepcopy(obj)

    def _all(self) -> builtins.list[tuple[ResourceKind, Key, Obj]]:
        return [
            (self._kinds[kk], key, obj)
            for kk, objs in self._objects.items()
            for key, obj in objs.items()
        ]

    def _dependents(self, uid: str) -> builtins.list[tuple[ResourceKind, Key, Obj]]:
        return [
            (kind, key, obj)
            for kind, key, obj in self._all()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def _delete_dependents(self, uid: str) -> None:
        for kind, key, _ in self._dependents(uid):
            if key in self._objects[kind.key]:
                self.delete(kind, key[0] or None, key[1], propagation="Background")

    def _orphan(self, uid: str) -> None:
        for kind, _, obj in self._dependents(uid):
            new = copy.deepcopy(obj)
            refs = [r for r in new["metadata"]["ownerReferences"] if r.get("uid") != uid]
            new["metadata"]["ownerReferences"] = refs
            if not refs:
                del new["metadata"]["ownerReferences"]
            self._commit(kind, "MODIFIED", new, obj)

    def _collect_foreground(self) -> None:
        for kind, key, obj in self._all():
            meta = obj["metadata"]
            if FOREGROUND in (meta.get("finalizers") or []) and not self._dependents(meta["uid"]):
                new = copy.deepcopy(obj)
                new["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != FOREGROUND]
                self._commit(kind, "MODIFIED", new, obj)
                self._maybe_finish_deletion(kind, key)

    def _maybe_finish_deletion(self, kind: ResourceKind, key: Key) -> None:
        obj = self._objects[kind.key].get(key)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        if obj["metadata"].get("finalizers") or (kind.key, key) in self._terminating:
            return
        self._remove(kind, key)
