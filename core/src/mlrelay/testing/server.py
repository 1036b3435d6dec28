"""Run the emulator: uvicorn on 127.0.0.1 in a background thread, a kubeconfig, client factories.

``KubeEmulator`` owns every resource it starts: stopping ends the open watches and held
requests first (so uvicorn has no connection to wait for), then the server, then joins the
thread and closes the listening socket and every ApiClient it handed out.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from mlrelay.testing.app import Api, build_app
from mlrelay.testing.auth import Authenticator, Rule
from mlrelay.testing.cluster import Cluster
from mlrelay.testing.counters import RequestCounter
from mlrelay.testing.faults import Faults
from mlrelay.testing.kinds import INFERENCE_SERVICES, PYTORCH_JOBS, TRAIN_JOBS, ResourceKind
from mlrelay.testing.store import Store
from mlrelay.testing.tls import localhost_certificate

log = logging.getLogger("mlrelay.testing")


# Images mapped to this machine's interpreter: a manifest's ``command: [python, train.py]`` with
# one of these images runs ``sys.executable train.py`` (the image itself is never pulled).
PYTHON_IMAGES = (
    "python:3.11",
    "python:3.12",
    "python:3.13",
    "python:3.11-slim",
    "python:3.12-slim",
)


def default_emulator(**options: Any) -> KubeEmulator:
    """The emulator users get from the fixture and ``mlrelay emulator``: KServe and Kubeflow kinds
    served, and a cluster whose pods with a ``python:*`` image above run the local interpreter."""
    import sys

    images = {image: {"python": sys.executable} for image in PYTHON_IMAGES}
    options.setdefault("kinds", (INFERENCE_SERVICES, TRAIN_JOBS, PYTORCH_JOBS))
    options.setdefault("cluster", {"images": images})
    return KubeEmulator(**options)


def kubeconfig(
    server: str,
    token: str,
    namespace: str = "default",
    name: str = "mlrelay-emulator",
    ca_pem: bytes | None = None,
) -> dict[str, Any]:
    """A kubeconfig document pointing at ``server`` with a bearer token (and the CA for https)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }


class KubeEmulator:
    """An emulated Kubernetes API server (see the package docstring).

    Args:
        history: watch events kept; resuming from before the oldest one is 410 Expired.
        bookmark_interval: seconds between BOOKMARK events on idle watches that allow them.
        kinds: extra (custom) kinds to serve from the start; ``store.register`` adds more later.
        tls: serve https with a throwaway self-signed certificate (kubectl sends bearer tokens
            only over TLS); ``False`` serves plain http for clients that do not care.
        cluster: also run a Job controller and a kubelet whose pods are local processes
            (``True``, or a mapping of :class:`~mlrelay.testing.cluster.Cluster` options such as
            ``images`` and ``node_capacity``).
    """

    def __init__(
        self,
        *,
        history: int = 1000,
        bookmark_interval: float = 1.0,
        kinds: tuple[ResourceKind, ...] = (),
        port: int = 0,
        tls: bool = True,
        cluster: bool | Mapping[str, Any] = False,
    ) -> None:
        self.store = Store(history=history)
        for kind in kinds:
            self.store.register(kind)
        #: The Job controller and kubelet that run pods as local processes, when asked for.
        #: Off by default: without them pods are only objects, deleted at once.
        #: ``cluster`` may be a mapping of :class:`Cluster` options (``images``, ``node_capacity``...).
        self.cluster: Cluster | None = None
        if cluster:
            options = cluster if isinstance(cluster, Mapping) else {}
            self.cluster = Cluster(self.store, **options)
        self.auth = Authenticator()
        self.faults = Faults(self.store)
        self.api = Api(self.store, self.auth, bookmark_interval=bookmark_interval)
        if self.cluster is not None:
            self.api.log_source = self.cluster.logs  # behind the API's authentication and RBAC
        #: Requests served and watch connections open, by verb and resource (for measurements).
        self.counter = RequestCounter()
        self._app = self.counter.middleware(self.faults.middleware(build_app(self.api)))
        self._port = port
        self._tls = tls
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file: Path | None = None
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: list[Any] = []
        #: The first kubeconfig written (the pytest fixture writes one per test).
        self.kubeconfig: Path | None = None

    @property
    def token(self) -> str:
        """The admin token (all verbs on all resources)."""
        return self.auth.admin_token

    @property
    def url(self) -> str:
        if self._sock is None:
            raise RuntimeError("the emulator is not running")
        host, port = self._sock.getsockname()[:2]
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def add_token(self, user: str, rules: tuple[Rule, ...], token: str | None = None) -> str:
        return self.auth.add(user, rules, token)

    def start(self, timeout: float = 10.0) -> KubeEmulator:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._sock = sock
        ssl: dict[str, Any] = {}
        if self._tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="mlrelay-kube-")
            cert, key = localhost_certificate().write(Path(self._tmp.name))
            self.ca_file = cert
            ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            http="h11",
            ws="none",
            lifespan="off",
            timeout_graceful_shutdown=2,
            access_log=False,
            **ssl,
        )
        server = uvicorn.Server(config)
        self._server = server

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        thread = threading.Thread(
            target=lambda: asyncio.run(serve()), name="mlrelay-kube-emulator", daemon=True
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Kubernetes emulator did not start")
            time.sleep(0.01)
        if self.cluster is not None:
            self.cluster.start()
        log.info("kubernetes emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()  # first: no pod process outlives the emulator
        for client in self._clients:
            client.close()
        self._clients.clear()
        self.store.close_watches()
        self.faults.abort_hangs()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=0.5)
            if self._thread.is_alive() and self._loop is not None and self._server is not None:
                # A TLS close waits for the peer's close_notify, which never comes from a client
                # still holding the socket (e.g. an ApiException kept by a test): abort instead.
                connections = list(self._server.server_state.connections)
                self._loop.call_soon_threadsafe(lambda: [c.transport.abort() for c in connections])
            self._thread.join(timeout=15)
            self._thread = None
        self._loop = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        path = Path(path)
        ca = localhost_certificate().cert_pem if self._tls else None
        path.write_text(
            yaml.safe_dump(kubeconfig(self.url, token or self.token, namespace, ca_pem=ca))
        )
        path.chmod(0o600)
        if self.kubeconfig is None:
            self.kubeconfig = path
        return path

    def api_client(self, token: str | None = None, *, retries: int | None = None) -> Any:
        """A configured ``kubernetes.client.ApiClient``; closed when the emulator stops."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        # kubernetes < 36 reads the "authorization" key, 36+ "BearerToken": set both.
        cfg.api_key = dict.fromkeys(("authorization", "BearerToken"), token or self.token)
        cfg.api_key_prefix = dict.fromkeys(("authorization", "BearerToken"), "Bearer")
        cfg.retries = retries
        if self.ca_file is not None:
            cfg.ssl_ca_cert = str(self.ca_file)
        api = client.ApiClient(cfg)
        self._clients.append(api)
        return api
