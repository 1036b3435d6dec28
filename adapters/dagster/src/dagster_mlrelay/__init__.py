"""mlrelay for Dagster: resources, asset factories and blocking validation checks.

    transactions_suite = build_validation_check(transactions, "expectations/transactions.json")
    training_set = build_training_set_asset("training_set", entities=transactions,
                                            feature_service="fraud_model_v1")
    model = build_model_asset("fraud_model", training_set=training_set, job=TrainingJob(...),
                              model_name="fraud-detector", gate=PromotionGate(metric="roc_auc"))
    endpoint = build_deployment_asset("fraud_endpoint", model=model, model_name="fraud-detector")

Every asset builds a core spec, calls the core (``mlrelay``) and records the core's result: as
the asset's value (``model_dump(mode="json")``) and as ``MaterializeResult`` metadata (links to
MLflow, metrics as numbers, the promotion decision, the lineage trail). Resource keys:
``mlflow`` (``MLflowResource``), ``feast`` (``FeastResource``), and for cluster backends
``kubernetes`` (``KubernetesResource``) and ``kserve`` (``KServeResource``).

Importing this package imports Dagster and the core's specs, but no heavy library (MLflow,
Great Expectations, Feast, KServe, pandas, the Kubernetes client): a step imports what it
runs, so a code location loads in the time Dagster itself takes.
"""

from dagster_mlrelay.checks import build_validation_check
from dagster_mlrelay.deployments import build_deployment_asset
from dagster_mlrelay.features import build_feature_materialization_asset, build_training_set_asset
from dagster_mlrelay.models import build_model_asset
from dagster_mlrelay.resources import (
    FeastResource,
    KServeResource,
    KubernetesResource,
    MLflowResource,
)

__all__ = [
    "FeastResource",
    "KServeResource",
    "KubernetesResource",
    "MLflowResource",
    "build_deployment_asset",
    "build_feature_materialization_asset",
    "build_model_asset",
    "build_training_set_asset",
    "build_validation_check",
]
