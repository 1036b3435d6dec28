"""Local servers bind 127.0.0.1 only: with the MLflow server, a local KServe model server and
the Kubernetes emulator (with its kubelet and KServe controller) running, no process of this
test session listens on any other interface (0.0.0.0, ::, a LAN address)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from models_support import FEATURES, pipeline, register

from mlrelay import _mlflow
from mlrelay.serving import deploy
from mlrelay.serving.local import LocalServingBackend
from mlrelay.serving.spec import DeploymentSpec
from mlrelay.settings import LocalSettings, MLflowSettings
from mlrelay.testing import KubeEmulator

pytestmark = pytest.mark.slow


def listening() -> dict[tuple[int, str], str]:
    """(pid, command) -> address of every TCP socket listening in this process and below it."""
    me = psutil.Process(os.getpid())
    found: dict[tuple[int, str], str] = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
            name = " ".join(proc.cmdline()[:4])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                found[(proc.pid, f"{name} :{c.laddr.port}")] = c.laddr.ip
    return found


@pytest.fixture
def model_server(mlflow_server: str, fraud_data: dict[str, Path], tmp_path: Path) -> Iterator[Any]:
    settings = MLflowSettings(tracking_uri=mlflow_server)
    frame = pd.read_parquet(fraud_data["transactions"])
    x, y = frame[FEATURES], frame["is_fraud"]
    version = register(
        _mlflow.client(settings), pipeline(1.0).fit(x, y), x.head(3), tmp_path, "listeners"
    )
    backend = LocalServingBackend(settings, LocalSettings(home=tmp_path / "home"))
    deployment = deploy(
        DeploymentSpec(name="listeners", model=version, smoke_test=False), backend=backend
    )
    try:
        yield deployment
    finally:
        backend.undeploy("listeners")


def test_every_local_server_listens_on_loopback_only(
    kube_cluster: KubeEmulator, model_server: Any, mlflow_server: str
) -> None:
    found = listening()
    pids = {pid for pid, _ in found}
    # each server is up and seen: the model server, MLflow's (a child of this process), the
    # emulator (a thread of this process)
    assert model_server.pid in pids, found
    ports = {int(where.rsplit(":", 1)[1]) for _, where in found}
    assert int(mlflow_server.rsplit(":", 1)[1]) in ports, found
    assert int(kube_cluster.url.rsplit(":", 1)[1]) in ports, found
    elsewhere = {who: ip for who, ip in found.items() if ip != "127.0.0.1"}
    assert not elsewhere, f"listening beyond loopback: {elsewhere}"
