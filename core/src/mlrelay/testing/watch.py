"""Watch streams: newline-delimited JSON events over a chunked HTTP response.

Semantics follow https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
and #semantics-for-watch: resourceVersion unset or "0" starts with synthetic ADDED events for the
current state; a specific version resumes after it, or gets one ERROR event carrying a 410
Expired Status when that history is gone (the stream is still a 200, as on a real server).
``timeoutSeconds`` ends the stream cleanly; ``allowWatchBookmarks`` adds BOOKMARK events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from mlrelay.testing.kinds import Obj, ResourceKind
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store, WatchEvent


def _line(type_: str, obj: Obj) -> bytes:
    return json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _visible(event: WatchEvent, match: Callable[[Obj], bool]) -> str | None:
    """The event type a selector-filtered watcher sees (None: nothing).

    An object modified into the selection is ADDED for this watcher, one modified out of it is
    DELETED, as the watch cache does.
    """
    now = match(event.object)
    if event.type != "MODIFIED" or event.previous is None:
        return event.type if now else None
    before = match(event.previous)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    return "DELETED" if before else None


def open_watch(
    store: Store,
    kind: ResourceKind,
    namespace: str | None,
    since: int | None,
    match: Callable[[Obj], bool],
    *,
    timeout: float | None,
    bookmarks: bool,
    bookmark_interval: float,
    render: Callable[[Obj], Obj] | None = None,
) -> AsyncIterator[bytes]:
    """Subscribe now (so nothing committed after the request is missed) and stream lazily.

    ``render`` turns each object into what the client asked for (a Table for kubectl).
    """
    show = render or (lambda obj: obj)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[WatchEvent | ApiError | None] = asyncio.Queue()

    def sink(item: WatchEvent | ApiError | None) -> None:
        # RuntimeError: the server's loop is gone, nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    try:
        sub, initial, start_rv = store.watch(kind, namespace, since, sink)
    except ApiError as error:
        return _single(error.status())

    async def stream() -> AsyncIterator[bytes]:
        last_rv = start_rv
        deadline = loop.time() + timeout if timeout else None
        try:
            for event in initial:
                shown = _visible(event, match)
                if shown:
                    yield _line(shown, show(event.object))
            while True:
                wait = bookmark_interval if bookmarks else None
                if deadline is not None:
                    left = deadline - loop.time()
                    if left <= 0:
                        return
                    wait = left if wait is None else min(wait, left)
                try:
                    item = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if bookmarks:
                        # The rv of the last event this stream delivered (or subscribed at): a
                        # client resuming from it misses nothing still in flight.
                        yield _line("BOOKMARK", _bookmark(kind, last_rv))
                    continue
                if item is None:
                    return
                if isinstance(item, ApiError):
                    yield _line("ERROR", item.status())
                    return
                last_rv = max(last_rv, item.resource_version)
                shown = _visible(item, match)
                if shown:
                    yield _line(shown, show(item.object))
        finally:
            sub.cancel()

    return stream()


def _bookmark(kind: ResourceKind, rv: int) -> dict[str, Any]:
    return {
        "kind": kind.kind,
        "apiVersion": kind.api_version,
        "metadata": {"resourceVersion": str(rv)},
    }


async def _single_gen(status: dict[str, Any]) -> AsyncIterator[bytes]:
    yield _line("ERROR", status)


def _single(status: dict[str, Any]) -> AsyncIterator[bytes]:
    return _single_gen(status)
