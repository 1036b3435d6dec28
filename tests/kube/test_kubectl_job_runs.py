"""The emulator's promise end to end with kubectl: a Job whose pod runs a real Python command,
`kubectl wait` sees it complete and `kubectl logs` shows what it printed."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from mlrelay import _proc

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed (Debian: apt-get install kubernetes-client)"
)

JOB = """\
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


def kubectl(kubeconfig, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_job_runs_a_real_python_command_kubectl_waits_and_shows_its_logs(kube_cluster, tmp_path):
    kubeconfig = kube_cluster.kubeconfig
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB)
    assert kubectl(kubeconfig, "apply", "-f", str(manifest)).returncode == 0

    waited = kubectl(kubeconfig, "wait", "--for=condition=complete", "job/train", "--timeout=60s")
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout

    logs = kubectl(kubeconfig, "logs", "job/train")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert lines[0].startswith("trained on transactions-2026-01 pid ")
    pid = int(lines[0].rsplit(" ", 1)[1])
    assert pid != os.getpid()
    assert not _proc.alive(pid)  # the container's process really ran, and has exited
    assert lines[1] == __import__("sys").executable  # python:3.11 ran this machine's interpreter

    job = kubectl(kubeconfig, "get", "job", "train", "-o", "jsonpath={.status.succeeded}")
    assert job.stdout == "1"
