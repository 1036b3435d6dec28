"""Start one model server process and wait until it answers: the child's side of a rollout.

The server runs in its own process group (stopped as a group, never by name), with its output
in a log file whose tail goes into the error when it fails. It binds its port itself (port 0
picks a free one, without the race of probing a port first) and reports it through a file next
to the log. Readiness is KServe's own ``/v2/models/<name>/ready``, polled with an injected
clock and sleep.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mlrelay import _proc
from mlrelay._model import safe_name
from mlrelay.errors import OperationTimeout
from mlrelay.serving.spec import DeploymentSpec
from mlrelay.serving.state import SERVER_MODULE

log = logging.getLogger("mlrelay.serving")

HOST = "127.0.0.1"
# The server needs no MLflow access (it loads a local directory): keep credentials out of it.
_SECRET_ENV = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME")


class ServerFailed(Exception):
    """The new server exited or never became ready; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def new_log_file(state_dir: Path, spec: DeploymentSpec) -> Path:
    """A new log file for one server start of ``spec`` (never reused, so never mixed)."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return logs / f"{spec.name}-v{safe_name(spec.model.version)}-{stamp}.log"


def spawn(
    python: str, spec: DeploymentSpec, model_dir: Path, output: Path
) -> subprocess.Popen[bytes]:
    """Start ``python -m mlrelay.serving.server`` for ``spec`` on 127.0.0.1."""
    flags = {
        "--model-dir": str(model_dir),
        "--name": spec.name,
        "--model-version": spec.model.version,
        "--host": HOST,
        "--port": str(spec.port or 0),
        "--port-file": str(output.with_suffix(".port")),
    }
    argv = [python, "-m", SERVER_MODULE, *(part for flag in flags.items() for part in flag)]
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
    with open(output, "ab") as out:
        proc = _proc.spawn(argv, env=env, stdout=out.fileno(), stderr=subprocess.STDOUT)
    log.info(
        "starting the model server for %r (%s version %s, pid %d), log: %s",
        spec.name,
        spec.model.name,
        spec.model.version,
        proc.pid,
        output,
    )
    return proc


def wait_ready(
    proc: subprocess.Popen[bytes],
    spec: DeploymentSpec,
    output: Path,
    *,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    poll_interval: float = 0.25,
) -> int:
    """Poll until the server says its model is ready; return the port it bound.

    Raises:
        ServerFailed: ``ServerExited`` (the child died: a taken port, a model that does not
            load) or ``ReadyTimeout`` (chained from an ``OperationTimeout``).
    """
    deadline = clock() + timeout
    port_file = output.with_suffix(".port")
    port: int | None = None
    # trust_env=False: a proxy from HTTP_PROXY must not sit between us and 127.0.0.1.
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            if proc.poll() is not None:
                raise ServerFailed(
                    "ServerExited", f"the model server exited with code {proc.returncode}"
                )
            if port is None and port_file.is_file():
                port = int(port_file.read_text())
                port_file.unlink()
            if port is not None and _ready(http, f"http://{HOST}:{port}", spec.name):
                return port
            if clock() >= deadline:
                expired = OperationTimeout(
                    f"model {spec.name!r} did not report ready",
                    operation="model server start",
                    timeout=timeout,
                )
                raise ServerFailed("ReadyTimeout", str(expired)) from expired
            sleep(poll_interval)


def _ready(http: httpx.Client, url: str, name: str) -> bool:
    try:
        response = http.get(f"{url}/v2/models/{name}/ready")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and bool(response.json().get("ready"))


def tail(path: Path, lines: int = 30) -> list[str]:
    """The last lines of a server log (read from the end: logs can be long)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
