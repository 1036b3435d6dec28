"""Apache Airflow 3 provider for mlrelay: one operator per ML lifecycle step.

Every operator builds the core's spec from its (templated) arguments, calls the core, and
returns the core's result as JSON, which Airflow pushes to XCom. Nothing else lives here: the
behaviour — retries that adopt, cancellation that cleans up, errors that say why — is the
core's, so a pipeline behaves the same under Airflow, Prefect and Dagster.

Importing this package, or a DAG file that uses its operators, imports no heavy library
(mlflow, great_expectations, feast, kserve, kubernetes, pandas): the scheduler parses DAG files
in fresh processes and would pay for every such import on every parse. The names below are
resolved on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ValidateDataOperator": "airflow_mlrelay.operators.validate",
    "BuildTrainingSetOperator": "airflow_mlrelay.operators.training_set",
    "MaterializeFeaturesOperator": "airflow_mlrelay.operators.materialize",
    "TrainModelOperator": "airflow_mlrelay.operators.train",
    "RegisterModelOperator": "airflow_mlrelay.operators.register",
    "PromoteModelOperator": "airflow_mlrelay.operators.promote",
    "DeployModelOperator": "airflow_mlrelay.operators.deploy",
    "RollbackDeploymentOperator": "airflow_mlrelay.operators.rollback",
    "MLflowHook": "airflow_mlrelay.hooks.mlflow",
    "KubernetesSettingsHook": "airflow_mlrelay.hooks.kubernetes",
    "TrainingJobTrigger": "airflow_mlrelay.triggers.training",
}

__all__ = [
    "BuildTrainingSetOperator",
    "DeployModelOperator",
    "KubernetesSettingsHook",
    "MLflowHook",
    "MaterializeFeaturesOperator",
    "PromoteModelOperator",
    "RegisterModelOperator",
    "RollbackDeploymentOperator",
    "TrainModelOperator",
    "TrainingJobTrigger",
    "ValidateDataOperator",
]

if TYPE_CHECKING:
    from airflow_mlrelay.hooks.kubernetes import KubernetesSettingsHook
    from airflow_mlrelay.hooks.mlflow import MLflowHook
    from airflow_mlrelay.operators.deploy import DeployModelOperator
    from airflow_mlrelay.operators.materialize import MaterializeFeaturesOperator
    from airflow_mlrelay.operators.promote import PromoteModelOperator
    from airflow_mlrelay.operators.register import RegisterModelOperator
    from airflow_mlrelay.operators.rollback import RollbackDeploymentOperator
    from airflow_mlrelay.operators.train import TrainModelOperator
    from airflow_mlrelay.operators.training_set import BuildTrainingSetOperator
    from airflow_mlrelay.operators.validate import ValidateDataOperator
    from airflow_mlrelay.triggers.training import TrainingJobTrigger


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_mlrelay' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
