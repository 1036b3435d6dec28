"""Everything a chaos run stands on, started once and stopped by the runner (``World``).

One Kubernetes API emulator in this process (Job controller, kubelet and KServe controller
running; pods and model servers are local processes), one real ``mlflow server``, one
``prefect server`` when Prefect runs, a migrated Airflow home and a Dagster home. Servers are
started in their own process groups on 127.0.0.1 and stopped by group; nothing else listens.
``env`` is what every chaos child gets: the same settings a deployment of the example reads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mlrelay import _proc
from mlrelay.testing.server import KubeEmulator, default_emulator

ROOT = Path(__file__).resolve().parents[1]
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "FEAST_USAGE": "False",
    "SCARF_ANALYTICS": "false",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "DAGSTER_DISABLE_TELEMETRY": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # 127.0.0.1 only
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{url} did not become healthy:\n{tail}")
        time.sleep(0.5)


class World:
    """The emulator, the servers and the homes for one chaos session (a context manager)."""

    def __init__(self, adapters: list[str], workdir: Path | None = None) -> None:
        self.adapters = adapters
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="mlrelay-chaos-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stack = ExitStack()
        self.servers: dict[str, subprocess.Popen[bytes]] = {}  # name -> process group leader
        self.emulator: KubeEmulator | None = None
        self.mlflow_uri = ""
        self.env: dict[str, str] = {}

    def __enter__(self) -> World:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PREFECT_"))}
        env = {**base, **TELEMETRY_OFF, "PYTHONPATH": str(ROOT)}
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "3"
        env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        # The servers start side by side (MLflow's first start migrates its store: ~40 s).
        self.mlflow_uri, mlflow_up = self._start_mlflow(env)
        prefect_up = self._start_prefect(env) if "prefect" in self.adapters else None
        # A lost response (K2) is the emulator closing the connection on purpose: not an error.
        logging.getLogger("uvicorn.error").addFilter(
            lambda record: "without starting response" not in record.getMessage()
        )
        emulator = default_emulator(bookmark_interval=0.5, cluster={"log_dir": self.dir / "pods"})
        self.emulator = emulator.start()
        self._stack.callback(emulator.stop)
        kubeconfig = emulator.write_kubeconfig(self.dir / "kubeconfig")
        self._namespaces(emulator)
        artifacts = self.dir / "mlflow" / "artifacts"
        destinations = {"mlflow-artifacts:/": f"file://{artifacts}/"}  # KServe reads files
        env.update(
            MLFLOW_TRACKING_URI=self.mlflow_uri,
            MLRELAY_ARTIFACT_DESTINATIONS=json.dumps(destinations),
            MLRELAY_K8S_KUBECONFIG=str(kubeconfig),
            MLRELAY_KSERVE_READY_TIMEOUT="240",
        )
        if "airflow" in self.adapters:
            env.update(self._airflow_home(env, kubeconfig))
        if prefect_up is not None:
            env.update(prefect_up())
        if "dagster" in self.adapters:
            home = self.dir / "dagster-home"
            home.mkdir()
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            env["DAGSTER_HOME"] = str(home)
        mlflow_up()
        self.env = env

    def _namespaces(self, emulator: KubeEmulator) -> None:
        """One namespace per adapter: a fault armed for a run matches only its requests."""
        from kubernetes import client

        core = client.CoreV1Api(emulator.api_client())
        for adapter in self.adapters:
            core.create_namespace({"metadata": {"name": f"chaos-{adapter}"}})

    def _spawn_server(
        self, name: str, argv: list[str], env: dict[str, str], health: str, timeout: float
    ) -> Callable[[], None]:
        """Start a server in its own process group; the returned call waits until it is healthy."""
        log = self.dir / f"{name}.log"
        with log.open("wb") as out:
            proc = _proc.spawn(argv, env=env, stdout=out, stderr=out)
        self.servers[name] = proc
        self._stack.callback(_proc.stop_group, proc.pid, grace=10, proc=proc)
        return lambda: wait_healthy(health, proc, log, timeout)

    def _start_mlflow(self, env: dict[str, str]) -> tuple[str, Callable[[], None]]:
        root, port = self.dir / "mlflow", free_port()
        root.mkdir()
        argv = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ]  # fmt: skip
        server_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        uri = f"http://127.0.0.1:{port}"
        return uri, self._spawn_server("mlflow", argv, server_env, f"{uri}/health", 240)

    def _start_prefect(self, env: dict[str, str]) -> Callable[[], dict[str, str]]:
        home, port = self.dir / "prefect-home", free_port()
        home.mkdir()
        prefect = {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
        }
        argv = [
            str(Path(sys.executable).with_name("prefect")), "server", "start",
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        api = f"http://127.0.0.1:{port}/api"
        healthy = self._spawn_server("prefect", argv, {**env, **prefect}, f"{api}/health", 240)

        def up() -> dict[str, str]:
            healthy()
            return {**prefect, "PREFECT_API_URL": api}

        return up

    def _airflow_home(self, env: dict[str, str], kubeconfig: Path) -> dict[str, str]:
        home = self.dir / "airflow-home"
        home.mkdir()
        airflow = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "chaos" / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(
                {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}
            ),
        }
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env={**env, **airflow},
            check=True,
            capture_output=True,
            timeout=600,
        )
        return airflow

    def server_groups(self) -> set[int]:
        return {proc.pid for proc in self.servers.values()}

    def close(self) -> None:
        self._stack.close()
        self.emulator = None
        if self._own_dir and not os.environ.get("CHAOS_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "mlflow": self.mlflow_uri, "servers": sorted(self.servers)}
