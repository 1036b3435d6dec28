"""kubectl (a client nobody here wrote) against the emulator, through the fixture's kubeconfig."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from kube_support import wait_for_watches
from kubernetes import client

from mlrelay import _proc
from mlrelay.testing import READ_ONLY

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed (Debian: apt-get install kubernetes-client)"
)

JOB_YAML = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: python:3.11
        command: ["python", "-c", "print('hi')"]
"""


RUNNING_JOB_YAML = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: train
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: trainer
        image: python:3.11
        command: ["python", "-c"]
        args: ["import os, sys; print('trained on', os.environ['DATASET'], 'pid', os.getpid()); print(sys.executable)"]
        env:
        - name: DATASET
          value: transactions-2026-01
"""


def kubectl(kubeconfig, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_kubectl_get_namespaces(kubeconfig_path):
    r = kubectl(kubeconfig_path, "get", "ns", "-o", "name")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "namespace/default",
        "namespace/kube-public",
        "namespace/kube-system",
    ]


def test_kubectl_apply_then_get_job_json_then_delete(kubeconfig_path, tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB_YAML)
    applied = kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "job.batch/hello created"
    got = kubectl(kubeconfig_path, "get", "job", "hello", "-o", "json")
    job = json.loads(got.stdout)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "print('hi')"
    assert "kubectl.kubernetes.io/last-applied-configuration" in job["metadata"]["annotations"]
    again = kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    assert again.stdout.strip() == "job.batch/hello unchanged"
    deleted = kubectl(kubeconfig_path, "delete", "job", "hello")
    assert deleted.stdout.strip() == 'job.batch "hello" deleted'
    missing = kubectl(kubeconfig_path, "get", "job", "hello")
    assert missing.returncode == 1
    assert 'jobs.batch "hello" not found' in missing.stderr


def test_kubectl_get_pods_watch_shows_pod_created_by_client(kube_emulator, kubeconfig_path):
    assert KUBECTL is not None
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig_path),
            "get",
            "pods",
            "-w",
            "--request-timeout=10s",
            "-o",
            "name",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_watches(kube_emulator)  # kubectl listed and opened its watch
        core = client.CoreV1Api(kube_emulator.api_client())
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "watched"},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by --request-timeout
    finally:
        proc.kill()
        proc.communicate()
    assert line.strip() == "pod/watched"


def test_kubectl_auth_can_i_for_admin_and_read_only_tokens(kube_emulator, tmp_path):
    viewer = kube_emulator.add_token("viewer", READ_ONLY)
    admin_cfg = kube_emulator.write_kubeconfig(tmp_path / "admin")
    viewer_cfg = kube_emulator.write_kubeconfig(tmp_path / "viewer", token=viewer)
    assert kubectl(admin_cfg, "auth", "can-i", "create", "jobs").stdout.strip() == "yes"
    denied = kubectl(viewer_cfg, "auth", "can-i", "create", "jobs")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    assert kubectl(viewer_cfg, "auth", "can-i", "list", "pods").stdout.strip() == "yes"
    forbidden = kubectl(viewer_cfg, "delete", "ns", "default")
    assert 'User "viewer" cannot delete resource "namespaces"' in forbidden.stderr


def test_kubectl_wait_for_complete_returns_when_the_condition_is_set(
    kube_emulator, kubeconfig_path, tmp_path
):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB_YAML)
    assert kubectl(kubeconfig_path, "apply", "-f", str(manifest)).returncode == 0
    assert KUBECTL is not None
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig_path),
            "wait",
            "--for=condition=complete",
            "job/hello",
            "--timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_watches(kube_emulator)
        # What the Job controller of the next round will write; here the test plays it.
        kube_emulator.store.update_status(
            "jobs.batch",
            "default",
            "hello",
            {
                "succeeded": 1,
                "conditions": [
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
                ],
            },
        )
        out, err = proc.communicate(timeout=25)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == "job.batch/hello condition met"


def test_kubectl_server_dry_run_is_refused_not_persisted(kubeconfig_path, tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB_YAML)
    r = kubectl(kubeconfig_path, "apply", "--dry-run=server", "-f", str(manifest))
    assert r.returncode == 1
    assert "dryRun is not supported" in r.stderr
    assert kubectl(kubeconfig_path, "get", "job", "hello").returncode == 1


def test_kubectl_get_prints_server_side_table_columns(kube_emulator, kubeconfig_path, tmp_path):
    core = client.CoreV1Api(kube_emulator.api_client())
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    kube_emulator.store.update_status("pods", "default", "p", {"phase": "Running"})
    pods = kubectl(kubeconfig_path, "get", "pods").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:4] == ["p", "0/1", "Running", "0"]
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB_YAML)
    kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    jobs = kubectl(kubeconfig_path, "get", "jobs").stdout.splitlines()
    assert jobs[0].split() == ["NAME", "STATUS", "COMPLETIONS", "AGE"]
    assert jobs[1].split()[:3] == ["hello", "Running", "0/1"]


def test_job_runs_a_real_python_command_kubectl_waits_and_shows_its_logs(kube_cluster, tmp_path):
    kubeconfig = kube_cluster.kubeconfig
    manifest = tmp_path / "job.yaml"
    manifest.write_text(RUNNING_JOB_YAML)
    assert kubectl(kubeconfig, "apply", "-f", str(manifest)).returncode == 0

    waited = kubectl(kubeconfig, "wait", "--for=condition=complete", "job/train", "--timeout=60s")
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout

    logs = kubectl(kubeconfig, "logs", "-f", "job/train")  # follow ends once the pod has exited
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert lines[0].startswith("trained on transactions-2026-01 pid ")
    pid = int(lines[0].rsplit(" ", 1)[1])
    assert pid != os.getpid()
    assert not _proc.alive(pid)  # the container's process really ran, and has exited
    assert lines[1] == sys.executable  # python:3.11 ran this machine's interpreter

    job = kubectl(kubeconfig, "get", "job", "train", "-o", "jsonpath={.status.succeeded}")
    assert job.stdout == "1"
