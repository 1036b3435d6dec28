"""One operator per ML lifecycle step; each builds the core's spec, calls it, returns its JSON.

Importing this package imports Airflow's ``BaseOperator`` and nothing heavy: the core steps and
their libraries are imported when a task runs.
"""

from airflow_mlrelay.operators.deploy import DeployModelOperator
from airflow_mlrelay.operators.materialize import MaterializeFeaturesOperator
from airflow_mlrelay.operators.promote import PromoteModelOperator
from airflow_mlrelay.operators.register import RegisterModelOperator
from airflow_mlrelay.operators.rollback import RollbackDeploymentOperator
from airflow_mlrelay.operators.train import TrainModelOperator
from airflow_mlrelay.operators.training_set import BuildTrainingSetOperator
from airflow_mlrelay.operators.validate import ValidateDataOperator

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
