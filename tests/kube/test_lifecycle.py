"""Starting and stopping the emulator, the import rule, the foreground command, small REST details."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from mlrelay.testing import KubeEmulator
from mlrelay.testing.__main__ import main


def test_import_mlrelay_does_not_import_the_testing_extra():
    code = (
        "import sys, mlrelay; "
        "print([m for m in ('starlette', 'uvicorn', 'kubernetes') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stop_leaves_no_thread_and_no_listening_socket():
    before = set(threading.enumerate())
    emu = KubeEmulator().start()
    host, port = emu.url.removeprefix("https://").split(":")
    core = client.CoreV1Api(emu.api_client())
    core.list_namespace()
    emu.stop()
    time.sleep(0.1)
    assert set(threading.enumerate()) - before == set()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((host, int(port)), timeout=2),
    ):
        pass


def test_kubeconfig_written_by_fixture_loads_in_the_official_client(kube_emulator):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kube_emulator.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    try:
        assert client.CoreV1Api(api).read_namespace("default").status.phase == "Active"
    finally:
        api.close()
    doc = yaml.safe_load(kube_emulator.kubeconfig.read_text())
    assert doc["contexts"][0]["context"]["namespace"] == "default"


def test_foreground_command_writes_kubeconfig_and_serves_until_stopped(tmp_path):
    stop = threading.Event()
    path = tmp_path / "kubeconfig"
    thread = threading.Thread(
        target=main, args=(["--kubeconfig", str(path)],), kwargs={"stop": stop}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=cfg)
        api = client.ApiClient(cfg)
        try:
            names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        finally:
            api.close()
        assert "default" in names
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_generate_name_gets_a_unique_suffix(kube_emulator):
    core = client.CoreV1Api(kube_emulator.api_client())
    a = core.create_namespaced_config_map("default", {"metadata": {"generateName": "run-"}})
    b = core.create_namespaced_config_map("default", {"metadata": {"generateName": "run-"}})
    assert a.metadata.name.startswith("run-")
    assert a.metadata.name != b.metadata.name


def test_body_namespace_must_match_url_namespace(kube_emulator):
    core = client.CoreV1Api(kube_emulator.api_client())
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "cm", "namespace": "kube-system"}}
        )
    assert e.value.status == 400


def test_pod_log_without_a_kubelet_says_waiting_to_start(kube_emulator):
    core = client.CoreV1Api(kube_emulator.api_client())
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "x"}]}},
    )
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log("p", "default", _preload_content=False).data.decode()
    assert json.loads(e.value.body)["message"] == (
        'container "main" in pod "p" is waiting to start: ContainerCreating'
    )


def test_pod_log_streams_from_the_log_source_hook(kube_emulator):
    async def source(namespace, name, query):
        yield f"{namespace}/{name} tail={query.get('tailLines')}\n".encode()

    kube_emulator.api.log_source = source
    core = client.CoreV1Api(kube_emulator.api_client())
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "x"}]}},
    )
    assert (
        core.read_namespaced_pod_log(
            "p", "default", tail_lines=5, _preload_content=False
        ).data.decode()
        == "default/p tail=5\n"
    )
