"""get_version and lineage_of: the trail version -> run -> job -> data read back from MLflow."""

from __future__ import annotations

import json

import pytest
from registry_support import register_champion

from mlrelay.errors import ConfigError
from mlrelay.registry import get_version, lineage_of, register_model

pytestmark = pytest.mark.slow


def test_lineage_of_reads_the_trail_back_by_alias_or_number(
    runs, model_name, mlflow_settings
) -> None:
    register_champion(runs, model_name, mlflow_settings)

    trail = lineage_of(model_name, "@champion", settings=mlflow_settings)

    assert trail["model"]["version"] == "1"
    assert trail["model"]["aliases"] == ["champion"]
    assert trail["run"]["id"] == runs["base"].run_id
    assert trail["run"]["status"] == "FINISHED"
    assert trail["run"]["metrics"]["roc_auc"] == 0.80
    assert trail["job"] == {"name": "fraud-train-1", "backend": "local"}
    assert trail["dataset"] == {"uri": "file:///data/transactions.parquet", "hash": "sha256:abc123"}
    assert trail["validation"]["success"] is True
    assert trail["validation"]["statistics"]["evaluated_expectations"] == 8
    assert trail["promotions"]["champion"]["promoted"] is True
    assert lineage_of(model_name, 1, settings=mlflow_settings) == trail
    json.dumps(trail)  # JSON-ready as documented
    assert get_version(model_name, "champion", settings=mlflow_settings).version == "1"


def test_lineage_of_unknown_alias_is_config_error(runs, model_name, mlflow_settings) -> None:
    register_model(runs["base"], model_name, settings=mlflow_settings)

    with pytest.raises(ConfigError, match="@staging"):
        lineage_of(model_name, "staging", settings=mlflow_settings)
