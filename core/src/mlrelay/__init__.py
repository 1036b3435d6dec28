"""mlrelay: the steps of a production ML lifecycle for the orchestrator you already run.

Validate data (Great Expectations), build training sets (Feast), train (a local process or a
Kubernetes Job), register and promote (MLflow), deploy (the KServe model server) — one core,
with thin Airflow, Prefect and Dagster adapters.

Importing ``mlrelay`` is cheap: names are resolved on first use (PEP 562), and each step imports
its heavy library only when it runs. Airflow parses DAG files in fresh processes, so this keeps
DAG parsing fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # steps
    "validate": "mlrelay.validation",
    "build_training_set": "mlrelay.features",
    "materialize_features": "mlrelay.features",
    "train": "mlrelay.training",
    "register_model": "mlrelay.registry",
    "promote": "mlrelay.registry",
    "get_version": "mlrelay.registry",
    "lineage_of": "mlrelay.registry",
    "deploy": "mlrelay.serving",
    "undeploy": "mlrelay.serving",
    "rollback": "mlrelay.serving",
    "list_deployments": "mlrelay.serving",
    # specs and results
    "ValidationPolicy": "mlrelay.validation.spec",
    "ValidationReport": "mlrelay.validation.spec",
    "FeatureRequest": "mlrelay.features.spec",
    "MaterializeRequest": "mlrelay.features.spec",
    "TrainingSet": "mlrelay.features.spec",
    "MaterializationResult": "mlrelay.features.spec",
    "TrainingJob": "mlrelay.training.spec",
    "TrainingResult": "mlrelay.training.spec",
    "Resources": "mlrelay.training.spec",
    "EnvVar": "mlrelay.training.spec",
    "SecretKeyRef": "mlrelay.training.spec",
    "JobHandle": "mlrelay.training.spec",
    "JobStatus": "mlrelay.training.spec",
    "JobState": "mlrelay.training.spec",
    "RunIdentity": "mlrelay.training.spec",
    "ModelVersionRef": "mlrelay.registry.spec",
    "PromotionGate": "mlrelay.registry.spec",
    "PromotionDecision": "mlrelay.registry.spec",
    "DeploymentSpec": "mlrelay.serving.spec",
    "Deployment": "mlrelay.serving.spec",
    "Replace": "mlrelay.serving.spec",
    "Canary": "mlrelay.serving.spec",
    # backends
    "LocalBackend": "mlrelay.training.local",
    "LocalServingBackend": "mlrelay.serving.local",
    "KubernetesJobBackend": "mlrelay.training.kubernetes",
    "TrainJobBackend": "mlrelay.training.kubeflow",
    "PyTorchJobBackend": "mlrelay.training.kubeflow",
    "KServeBackend": "mlrelay.serving.kserve",
    # settings
    "MLflowSettings": "mlrelay.settings",
    "LocalSettings": "mlrelay.settings",
    "KubernetesSettings": "mlrelay.settings",
    "KServeSettings": "mlrelay.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlrelay' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from mlrelay.features import build_training_set, materialize_features
    from mlrelay.features.spec import (
        FeatureRequest,
        MaterializationResult,
        MaterializeRequest,
        TrainingSet,
    )
    from mlrelay.registry import get_version, lineage_of, promote, register_model
    from mlrelay.registry.spec import ModelVersionRef, PromotionDecision, PromotionGate
    from mlrelay.serving import deploy, list_deployments, rollback, undeploy
    from mlrelay.serving.kserve import KServeBackend
    from mlrelay.serving.local import LocalServingBackend
    from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec, Replace
    from mlrelay.settings import KServeSettings, KubernetesSettings, LocalSettings, MLflowSettings
    from mlrelay.training import train
    from mlrelay.training.kubeflow import PyTorchJobBackend, TrainJobBackend
    from mlrelay.training.kubernetes import KubernetesJobBackend
    from mlrelay.training.local import LocalBackend
    from mlrelay.training.spec import (
        EnvVar,
        JobHandle,
        JobState,
        JobStatus,
        Resources,
        RunIdentity,
        SecretKeyRef,
        TrainingJob,
        TrainingResult,
    )
    from mlrelay.validation import validate
    from mlrelay.validation.spec import ValidationPolicy, ValidationReport
