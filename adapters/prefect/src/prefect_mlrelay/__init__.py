"""prefect-mlrelay: the ML lifecycle steps of mlrelay as Prefect 3 tasks, blocks and a flow.

    from prefect import flow
    from prefect_mlrelay import train_model, register_model, promote_model, deploy_model

Tasks (``validate_data``, ``build_training_set``, ``materialize_features``, ``train_model``,
``register_model``, ``promote_model``, ``deploy_model``, ``rollback_deployment``) return the core's
result models and leave artifacts on their runs; blocks (``MLflowCredentials``,
``KubernetesCluster``, ``KServeTarget``) keep connections and secrets out of flow code; the
``train_and_deploy`` flow composes every step. Importing this package imports Prefect and the
core's spec models only: Great Expectations, Feast, MLflow, KServe and the Kubernetes client are
imported when a step runs.
"""

from __future__ import annotations

from prefect_mlrelay._runtime import retry_unless_final, run_identity
from prefect_mlrelay.blocks import (
    KServeTarget,
    KubernetesCluster,
    MLflowCredentials,
    kubernetes_settings,
    mlflow_settings,
)
from prefect_mlrelay.flows import TrainAndDeployResult, train_and_deploy
from prefect_mlrelay.tasks import (
    build_training_set,
    deploy_model,
    materialize_features,
    promote_model,
    register_model,
    rollback_deployment,
    validate_data,
)
from prefect_mlrelay.training import train_model

__version__ = "0.1.0"

__all__ = [
    "KServeTarget",
    "KubernetesCluster",
    "MLflowCredentials",
    "TrainAndDeployResult",
    "build_training_set",
    "deploy_model",
    "kubernetes_settings",
    "materialize_features",
    "mlflow_settings",
    "promote_model",
    "register_model",
    "retry_unless_final",
    "rollback_deployment",
    "run_identity",
    "train_and_deploy",
    "train_model",
    "validate_data",
]
