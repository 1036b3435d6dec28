"""Register trained models in the MLflow 3 Model Registry and promote them through a gate.

    mv  = register_model(result, name="fraud-detector")          # idempotent under retry
    dec = promote(mv, PromotionGate(metric="roc_auc", min_delta=0.005), alias="champion")
    lineage_of("fraud-detector", "champion")                      # version -> run -> job -> data

Importing this package does not import ``mlflow``: the functions do, when they run.
"""

from __future__ import annotations

from mlrelay.errors import PromotionConflict
from mlrelay.registry.gate import decide
from mlrelay.registry.mlflow import register_model
from mlrelay.registry.promotion import promote
from mlrelay.registry.spec import ModelVersionRef, PromotionDecision, PromotionGate
from mlrelay.registry.trail import get_version, lineage_of

__all__ = [
    "ModelVersionRef",
    "PromotionConflict",
    "PromotionDecision",
    "PromotionGate",
    "decide",
    "get_version",
    "lineage_of",
    "promote",
    "register_model",
]
