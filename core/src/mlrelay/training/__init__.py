"""Training: run the user's trainer on a backend, with its MLflow run created beforehand.

``train(job, backend)`` is the step; backends (``LocalBackend`` here, the cluster backends
elsewhere) keep the small ``TrainingBackend`` contract, whose handle API (``submit``, ``status``,
``wait``, ``logs``, ``cancel``) is also what orchestrator triggers and cancellations use.

Importing this package imports no heavy library: MLflow is imported when a run is created.
"""

from __future__ import annotations

from mlrelay.training.api import finish_training, start_training, train
from mlrelay.training.backend import TrainingBackend
from mlrelay.training.local import LocalBackend
from mlrelay.training.spec import (
    EnvVar,
    JobHandle,
    JobState,
    JobStatus,
    Resources,
    RunContext,
    RunIdentity,
    SecretKeyRef,
    Toleration,
    TrainingJob,
    TrainingResult,
)

__all__ = [
    "EnvVar",
    "JobHandle",
    "JobState",
    "JobStatus",
    "LocalBackend",
    "Resources",
    "RunContext",
    "RunIdentity",
    "SecretKeyRef",
    "Toleration",
    "TrainingBackend",
    "TrainingJob",
    "TrainingResult",
    "finish_training",
    "start_training",
    "train",
]
