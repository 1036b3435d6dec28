"""Helpers of the Dagster tests: paths, small assets, and reading a run's results."""

import sys
from pathlib import Path
from typing import Any

import dagster as dg

from mlrelay.features.spec import TrainingSet

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the example is imported as examples.dagster.fraud_detector
    sys.path.insert(0, str(ROOT))

TRAIN_PY = ROOT / "examples" / "training" / "train.py"
SUITE = ROOT / "examples" / "expectations" / "transactions.json"
PARTITION = "2026-03-01"


def training_set_asset(path: Path, name: str = "training_set") -> dg.AssetsDefinition:
    """An asset whose value is a ``TrainingSet`` over an existing file, without Feast.

    The example trainer also trains on the plain transactions file, so the tests of the model
    asset need no feature store.
    """
    value = TrainingSet(
        path=str(path), rows_in=1, rows_out=1, dropped_count=0, data_hash="sha256:test"
    ).model_dump(mode="json")

    @dg.asset(name=name)
    def given_training_set() -> dg.MaterializeResult:  # type: ignore[type-arg]
        return dg.MaterializeResult(value=value)

    return given_training_set


def materializations(result: Any, node: str) -> list[dg.AssetMaterialization]:
    return list(result.asset_materializations_for_node(node))
