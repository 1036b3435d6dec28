"""A flow that ``test_prefect_cancel.py`` serves with ``flow.serve()`` in a subprocess, so that
Prefect's own runner cancels it the way it cancels any deployed flow run (SIGTERM)."""

from __future__ import annotations

import sys

from prefect import flow

from mlrelay.training.spec import TrainingJob
from prefect_mlrelay import KubernetesCluster, train_model

# Writes its pid (so the test can see it stop), then trains "forever".
TRAINER = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
print("training...", flush=True)
time.sleep(600)
"""


@flow
def long_training(
    experiment: str, pid_file: str, submit: bool = False, kubeconfig: str | None = None
) -> None:
    """Train "forever", locally or (with ``kubeconfig``) as a Job of the emulated cluster."""
    job = TrainingJob(
        name="long",
        image="python:3.11",  # the emulator's kubelet runs python:* images with this interpreter
        command=["python" if kubeconfig else sys.executable, "-c", TRAINER],
        args=[pid_file],
        experiment=experiment,
    )
    options = (
        {"backend": "kubernetes", "kubernetes": KubernetesCluster(kubeconfig=kubeconfig)}
        if kubeconfig
        else {}
    )
    if submit:  # in a worker thread of the task runner, out of the signal's reach
        train_model.submit(job, **options).result()
    else:  # in the flow's main thread
        train_model(job, **options)


if __name__ == "__main__":
    long_training.serve(name="o1", limit=4)
