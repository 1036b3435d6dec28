"""How the features step loads and applies a Feast repo's definitions, each test on its own copy.

Broken, edited or unapplied definitions and missing feature data are ConfigErrors that name the
file or the repo; importing the step stays free of Feast and pandas.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from features_support import (  # noqa: F401 - fixtures
    copy_repo,
    fixture_data_dir,
    fixture_fresh_repo,
    fixture_tx,
    request_for,
)

from mlrelay.errors import ConfigError
from mlrelay.features import build_training_set


def test_missing_feature_data_file_is_config_error_naming_it(
    tmp_path: Path, tx: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "empty"))
    repo = copy_repo(tmp_path / "feature_repo")
    out = tmp_path / "t.parquet"
    with pytest.raises(ConfigError, match=r"customer_stats\.parquet, which does not exist"):
        build_training_set(request_for(repo, out), entity_df=tx)
    assert not out.exists()


def test_definitions_file_that_fails_is_config_error_naming_the_file(
    fresh_repo: Path, tx: pd.DataFrame, tmp_path: Path
) -> None:
    (fresh_repo / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=r"broken\.py .*RuntimeError: boom") as caught:
        build_training_set(request_for(fresh_repo, tmp_path / "t.parquet"), entity_df=tx)
    assert caught.value.field == "repo"


def test_edited_definitions_take_effect_only_when_applied_again(
    fresh_repo: Path, tx: pd.DataFrame, tmp_path: Path
) -> None:
    build_training_set(request_for(fresh_repo, tmp_path / "a.parquet"), entity_df=tx)
    with (fresh_repo / "features.py").open("a") as definitions:
        definitions.write(
            "small = FeatureService(name='small', features=[customer_stats[['tx_count_7d']]])\n"
        )
    small = {"features": [], "feature_service": "small"}
    with pytest.raises(ConfigError, match="no feature service 'small'"):
        build_training_set(request_for(fresh_repo, tmp_path / "b.parquet", **small), entity_df=tx)

    request = request_for(fresh_repo, tmp_path / "c.parquet", apply_definitions="always", **small)
    assert build_training_set(request, entity_df=tx).features == ["customer_stats:tx_count_7d"]


def test_an_empty_registry_is_not_applied_when_told_never(
    fresh_repo: Path, tx: pd.DataFrame, tmp_path: Path
) -> None:
    request = request_for(fresh_repo, tmp_path / "t.parquet", apply_definitions="never")
    with pytest.raises(ConfigError, match="registry of project 'fraud' is empty") as caught:
        build_training_set(request, entity_df=tx)
    assert caught.value.field == "repo"


def test_importing_the_step_imports_neither_feast_nor_pandas() -> None:
    code = "import sys, mlrelay.features; print(sorted({'feast', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
