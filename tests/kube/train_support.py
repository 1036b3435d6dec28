"""What the cluster-training tests share: settings for the emulator, a backend, tiny trainers."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any

from mlrelay.settings import KubernetesSettings
from mlrelay.testing import KubeEmulator
from mlrelay.testing.kinds import JOBS, PODS
from mlrelay.training import RunContext, TrainingJob
from mlrelay.training.kubernetes import KubernetesJobBackend
from mlrelay.training.podstate import Limits

REPO = Path(__file__).resolve().parents[2]
TRAIN_PY = REPO / "examples" / "training" / "train.py"
IMAGE = "python:3.11"


def settings_for(emulator: KubeEmulator, **options: Any) -> KubernetesSettings:
    assert emulator.kubeconfig is not None
    options.setdefault("kubeconfig", emulator.kubeconfig)
    return KubernetesSettings(**options)


def backend_for(emulator: KubeEmulator, **options: Any) -> KubernetesJobBackend:
    options.setdefault("relist_interval", 5.0)
    options.setdefault("grace_period", 2)
    options.setdefault("log_linger", 1.0)
    options.setdefault("limits", Limits(scheduling=3.0, config_error=1.0))
    return KubernetesJobBackend(settings_for(emulator), **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def py_job(code: str, **fields: Any) -> TrainingJob:
    """A job whose pod runs ``python -c code`` (the emulator maps python:* to this interpreter)."""
    fields.setdefault("name", unique("job"))
    fields.setdefault("experiment", unique("kube"))
    return TrainingJob(image=IMAGE, command=["python", "-c", textwrap.dedent(code)], **fields)


def fake_run() -> RunContext:
    """A run context for backend-only tests (the backend never talks to MLflow itself)."""
    return RunContext(
        run_id=uuid.uuid4().hex,
        experiment_id="0",
        experiment_name="t",
        tracking_uri="http://127.0.0.1:9",
    )


class Sleeps(list[float]):
    """An injected ``sleep`` that records the waits instead of waiting them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def jobs(emulator: KubeEmulator, namespace: str = "default") -> list[dict[str, Any]]:
    return emulator.store.list(JOBS, namespace)[0]


def pods(emulator: KubeEmulator, namespace: str = "default") -> list[dict[str, Any]]:
    return emulator.store.list(PODS, namespace)[0]
