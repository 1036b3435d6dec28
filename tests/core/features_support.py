"""What the features-step tests share: copies of the example Feast repo, the data, requests.

Plain helpers and fixtures, imported explicitly by each ``test_features_*`` module: a fixture
imported into a module is a fixture of that module. The fixture functions are named
``fixture_<name>`` so that a test's ``<name>`` argument does not shadow an import.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlrelay.features import FeatureRequest

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "examples" / "feature_repo"
FEATURES = ["avg_amount_30d", "tx_count_7d", "chargeback_rate", "account_age_days"]


def copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("data", "__pycache__")
    return Path(shutil.copytree(EXAMPLE_REPO, dest, ignore=ignore))


def request_for(repo: Path, out: Path, /, **changes: object) -> FeatureRequest:
    """A request for the four example features from ``repo``, written to ``out``."""
    fields: dict[str, object] = {
        "repo": str(repo),
        "features": [f"customer_stats:{f}" for f in FEATURES],
        "output": str(out),
    }
    return FeatureRequest(**(fields | changes))


@pytest.fixture(name="data_dir", scope="module")
def fixture_data_dir(fraud_data: dict[str, Path]) -> Iterator[Path]:
    """The generated data, named to the example's definitions as the README says."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUD_DATA_DIR", str(fraud_data["customer_stats"].parent))
        yield fraud_data["customer_stats"].parent


@pytest.fixture(name="fresh_repo")
def fixture_fresh_repo(tmp_path: Path, data_dir: Path) -> Path:
    """A repo copy of its own, for tests that change the registry or the online store."""
    return copy_repo(tmp_path / "feature_repo")


@pytest.fixture(name="tx", scope="module")
def fixture_tx(fraud_data: dict[str, Path]) -> pd.DataFrame:
    return pd.read_parquet(fraud_data["transactions"])


@pytest.fixture(name="stats", scope="module")
def fixture_stats(fraud_data: dict[str, Path]) -> pd.DataFrame:
    return pd.read_parquet(fraud_data["customer_stats"])
