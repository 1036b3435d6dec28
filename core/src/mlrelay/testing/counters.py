"""What clients cost the API server: requests by verb and resource, watch connections open.

The benchmarks and the informer-sharing tests read these instead of trusting a client's own
count: a request is counted when it reaches the server (an injected fault included), a watch
connection from the moment its request arrives until its stream ends.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from mlrelay.testing.app import parse_path

ASGIApp = Callable[..., Any]
Where = tuple[str, str]  # (namespace or "", plural)


class RequestCounter:
    """Counts the requests an emulator serves (``emulator.counter``).

    Attributes:
        requests: requests by (verb, namespace, plural); verbs as the API server names them for
            audit: get, list, watch, create, update, patch, delete, log (``pods/log``).
        watches_open: watch connections open now, by (namespace, plural).
        watches_peak: the most open at once, by (namespace, plural).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.watches_open: Counter[Where] = Counter()
        self.watches_peak: Counter[Where] = Counter()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def snapshot(self) -> Counter[tuple[str, str, str]]:
        with self._lock:
            return Counter(self.requests)

    def reset(self) -> None:
        """Forget the counts (not the open watches: they are still open); peaks restart from now."""
        with self._lock:
            self.requests.clear()
            self.watches_peak = Counter(+self.watches_open)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            verb, where = _classify(scope)
            with self._lock:
                self.requests[(verb, *where)] += 1
                if verb == "watch":
                    self.watches_open[where] += 1
                    self.watches_peak[where] = max(
                        self.watches_peak[where], self.watches_open[where]
                    )
            try:
                await app(scope, receive, send)
            finally:
                if verb == "watch":
                    with self._lock:
                        self.watches_open[where] -= 1

        return counted


def _classify(scope: dict[str, Any]) -> tuple[str, Where]:
    method = str(scope["method"])
    query = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
    target = parse_path(str(scope["path"]))
    if target is None:
        return method.lower(), ("", str(scope["path"]))
    where = (target.namespace or "", target.plural)
    if target.subresource == "log":
        return "log", where
    if method == "GET":
        if query.get("watch", [""])[0] in ("true", "1"):
            return "watch", where
        return ("get" if target.name else "list"), where
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    return verbs.get(method, method.lower()), where
