"""One operator per ML lifecycle step; each builds the core's spec, calls it, returns its JSON.

A name is imported on first use (PEP 562): a DAG file importing two operators pays for two
modules, not eight, on every parse. No operator module imports the core or a heavy library at
import time: they are imported when a task runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "BuildTrainingSetOperator": "training_set",
    "DeployModelOperator": "deploy",
    "MaterializeFeaturesOperator": "materialize",
    "PromoteModelOperator": "promote",
    "RegisterModelOperator": "register",
    "RollbackDeploymentOperator": "rollback",
    "TrainModelOperator": "train",
    "ValidateDataOperator": "validate",
}

__all__ = [
    "BuildTrainingSetOperator",
    "DeployModelOperator",
    "MaterializeFeaturesOperator",
    "PromoteModelOperator",
    "RegisterModelOperator",
    "RollbackDeploymentOperator",
    "TrainModelOperator",
    "ValidateDataOperator",
]

if TYPE_CHECKING:
    from airflow_mlrelay.operators.deploy import DeployModelOperator
    from airflow_mlrelay.operators.materialize import MaterializeFeaturesOperator
    from airflow_mlrelay.operators.promote import PromoteModelOperator
    from airflow_mlrelay.operators.register import RegisterModelOperator
    from airflow_mlrelay.operators.rollback import RollbackDeploymentOperator
    from airflow_mlrelay.operators.train import TrainModelOperator
    from airflow_mlrelay.operators.training_set import BuildTrainingSetOperator
    from airflow_mlrelay.operators.validate import ValidateDataOperator


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain one
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
