"""Materialization into the example's SQLite online store, each test on its own repo copy.

Online values are read back through Feast and checked against each customer's latest
statistics computed with pandas.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from features_support import (  # noqa: F401 - fixtures
    FEATURES,
    fixture_data_dir,
    fixture_fresh_repo,
    fixture_stats,
)

from mlrelay.errors import ConfigError
from mlrelay.features import MaterializeRequest, materialize_features


def online_values(repo: Path, customer_ids: list[int]) -> dict[str, list[object]]:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    rows = [{"customer_id": c} for c in customer_ids]
    refs = [f"customer_stats:{f}" for f in FEATURES]
    return store.get_online_features(features=refs, entity_rows=rows).to_dict()


def window(stats: pd.DataFrame) -> tuple[datetime, datetime]:
    """From the first statistics row to a day past the last one."""
    start = stats["event_timestamp"].min().to_pydatetime()
    end = stats["event_timestamp"].max().to_pydatetime() + timedelta(days=1)
    return start, end


def test_materialized_online_values_are_each_customers_latest_statistics(
    fresh_repo: Path, stats: pd.DataFrame
) -> None:
    start, end = window(stats)
    result = materialize_features(MaterializeRequest(repo=str(fresh_repo), start=start, end=end))
    assert result.feature_views == ["customer_stats"]
    assert result.intervals == {"customer_stats": (start, end)}

    latest = stats.sort_values("event_timestamp").groupby("customer_id").last()
    known = int(latest.index[0])
    online = online_values(fresh_repo, [known, 999_999])
    for feature in FEATURES:
        assert online[feature][0] == pytest.approx(latest.loc[known, feature])
        assert online[feature][1] is None


def test_incremental_materialization_continues_where_the_last_ended_and_retries_are_noops(
    fresh_repo: Path, stats: pd.DataFrame
) -> None:
    start, end = window(stats)
    middle = start + timedelta(days=20)
    materialize_features(MaterializeRequest(repo=str(fresh_repo), start=start, end=middle))

    resumed = materialize_features(MaterializeRequest(repo=str(fresh_repo), end=end))
    assert resumed.intervals == {"customer_stats": (middle, end)}
    retried = materialize_features(MaterializeRequest(repo=str(fresh_repo), end=end))
    assert (retried.feature_views, retried.skipped) == ([], ["customer_stats"])


def test_first_incremental_run_over_old_data_is_config_error_not_an_empty_load(
    fresh_repo: Path,
) -> None:
    request = MaterializeRequest(repo=str(fresh_repo), end=datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(ConfigError, match="give 'start'") as caught:
        materialize_features(request)
    assert caught.value.field == "start"
    assert online_values(fresh_repo, [1001])["avg_amount_30d"] == [None]


def test_materializing_an_unknown_view_is_config_error(fresh_repo: Path) -> None:
    request = MaterializeRequest(
        repo=str(fresh_repo),
        start=datetime(2026, 1, 1),
        end=datetime(2026, 3, 2),
        feature_views=["customer_stats", "nope"],
    )
    with pytest.raises(ConfigError, match=r"\['nope'\]") as caught:
        materialize_features(request)
    assert caught.value.field == "feature_views"


def test_materialize_window_must_not_be_inverted() -> None:
    with pytest.raises(ConfigError, match="'start' must be before 'end'"):
        MaterializeRequest(repo="r", start=datetime(2026, 3, 2), end=datetime(2026, 1, 1))
