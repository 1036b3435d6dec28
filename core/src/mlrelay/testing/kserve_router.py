"""The ingress of one emulated InferenceService: an HTTP proxy on 127.0.0.1 that splits traffic.

On a cluster, Istio (or Kourier) and Knative's Route send each request for ``status.url`` to a
revision according to ``status.traffic``. This router does the same for the revisions' local
model servers:

- **Split**: smooth weighted round-robin (the algorithm of nginx's ``upstream``), so the split is
  exact and deterministic: of any 100 consecutive requests, a 10 % canary answers exactly 10,
  spread evenly (a test that sends 20 requests sees exactly 2 canary answers, not "about 2").
- **Tags**: a tagged traffic target (``prev`` always, ``latest`` with
  ``serving.kserve.io/enable-tag-routing: "true"``) has its own URL, as Knative gives it one
  (``http://prev-<route>.<namespace>.<domain>`` there, a port of its own here), published as
  ``status.components.predictor.traffic[].url``. A request on the main URL with the header
  ``Knative-Serving-Tag: <tag>`` goes to that tag's revision too (Knative's tag-header-based
  routing; an unknown tag falls back to the split, as there).
- **Which revision answered**: every proxied response carries ``X-Mlrelay-Revision: <revision>``
  (an emulator addition; a real ingress does not say).
- **Cold revisions**: a routed revision whose server is (re)starting is waited for, like
  Knative's activator buffers requests to a revision scaled to zero; 503 after
  ``activation_timeout`` or when nothing is routed ("no healthy upstream"), 502 when the server
  does not answer.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mlrelay.testing.recorder import log

HOST = "127.0.0.1"
TAG_HEADER = "knative-serving-tag"
REVISION_HEADER = "x-mlrelay-revision"
TAGS = ("latest", "prev")
# Hop-by-hop headers, and those the proxy recomputes (httpx decodes compressed bodies).
_DROP = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length"}
    | {"content-encoding", "proxy-connection", "date", "server", TAG_HEADER}
)


@dataclass
class _Table:
    """One routing decision set: percent and port per revision, revision per tag."""

    weights: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int | None] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)

    def pick(self) -> str | None:
        """Smooth weighted round-robin; runs on the event loop only, so needs no lock."""
        live = {r: w for r, w in self.weights.items() if w > 0}
        if not live:
            return None
        total = sum(live.values())
        for revision, weight in live.items():
            self.current[revision] = self.current.get(revision, 0) + weight
        best = max(live, key=lambda r: self.current[r])
        self.current[best] -= total
        return best


class Router:
    """The traffic-splitting proxy of one InferenceService (``start``, ``update``, ``stop``)."""

    def __init__(self, name: str, *, activation_timeout: float = 120.0) -> None:
        self.name = name
        self.activation_timeout = activation_timeout
        self._table = _Table()
        self._sockets: dict[str, socket.socket] = {}
        self._tag_ports: dict[int, str] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return self._url("")

    @property
    def tag_urls(self) -> dict[str, str]:
        return {tag: self._url(tag) for tag in TAGS}

    def _url(self, tag: str) -> str:
        return f"http://{HOST}:{self._sockets[tag].getsockname()[1]}"

    def update(
        self, weights: Mapping[str, int], ports: Mapping[str, int | None], tags: Mapping[str, str]
    ) -> None:
        """Apply a new traffic split (from any thread); the round-robin restarts if it changed."""
        old = self._table
        if (old.weights, old.ports, old.tags) == (dict(weights), dict(ports), dict(tags)):
            return
        current = old.current if old.weights == dict(weights) else {}
        self._table = _Table(dict(weights), dict(ports), dict(tags), current)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Router:
        for tag in ("", *TAGS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, 0))
            self._sockets[tag] = sock
            if tag:
                self._tag_ports[sock.getsockname()[1]] = tag
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            proxy_headers=False,
            log_level="warning",
            http="h11",
            ws="none",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)

        async def serve() -> None:
            async with httpx.AsyncClient(trust_env=False, timeout=60.0) as client:
                self._client = client
                await server.serve(sockets=list(self._sockets.values()))

        self._thread = threading.Thread(
            target=lambda: asyncio.run(serve()), name=f"mlrelay-router-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the router of {self.name!r} did not start")
            time.sleep(0.01)
        log.info("router of %s listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for sock in self._sockets.values():
            sock.close()
        self._server = None

    # -- the proxy ---------------------------------------------------------------------------
    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        response = await self._handle(Request(scope, receive))
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        table = self._table
        tag = self._tag_ports.get(request.scope["server"][1])
        if tag is not None:
            revision = table.tags.get(tag)
            if revision is None:
                return PlainTextResponse(f"no traffic target is tagged {tag!r}\n", 404)
        else:
            asked = request.headers.get(TAG_HEADER)
            revision = (table.tags.get(asked) if asked else None) or table.pick()
            if revision is None:
                return PlainTextResponse("no healthy upstream\n", 503)
        port = await self._port(revision)
        if port is None:
            return PlainTextResponse(f"revision {revision} is not available\n", 503)
        path = request.scope.get("raw_path", b"").decode() or request.url.path
        query = request.url.query
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP]
        assert self._client is not None
        try:
            upstream = await self._client.request(
                request.method,
                f"http://{HOST}:{port}{path}" + (f"?{query}" if query else ""),
                content=await request.body(),
                headers=headers,
            )
        except httpx.HTTPError as exc:
            return PlainTextResponse(f"upstream connect error: {exc}\n", 502)
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
        out[REVISION_HEADER] = revision
        return Response(upstream.content, upstream.status_code, headers=out)

    async def _port(self, revision: str) -> int | None:
        """The revision's port, waiting while it (re)starts; None if it is no longer routed."""
        deadline = time.monotonic() + self.activation_timeout
        while time.monotonic() < deadline:
            ports = self._table.ports
            if revision not in ports:
                return None
            if ports[revision] is not None:
                return ports[revision]
            await asyncio.sleep(0.1)
        return None
