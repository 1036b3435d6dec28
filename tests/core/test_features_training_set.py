"""Training sets from real Feast (local provider, file offline store): content and refused input.

The tests read one copy of ``examples/feature_repo`` pointed at the session's generated data
through ``FRAUD_DATA_DIR`` (the way the README tells users to), built and applied once for this
module, and check Feast's answers against values computed independently with pandas.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from features_support import (  # noqa: F401 - fixtures
    FEATURES,
    copy_repo,
    fixture_data_dir,
    fixture_stats,
    fixture_tx,
    request_for,
)

from mlrelay.errors import ConfigError, TrainingSetIncomplete
from mlrelay.features import FeatureRequest, TrainingSet, build_training_set
from mlrelay.features.frames import content_hash

TTL = pd.Timedelta(days=2)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One repo copy for the read-only tests; its registry is filled on first use."""
    return copy_repo(tmp_path_factory.mktemp("features") / "feature_repo")


@pytest.fixture
def tx_request(
    repo: Path, fraud_data: dict[str, Path], tmp_path: Path
) -> Callable[..., FeatureRequest]:
    """Requests with the example's transactions as entity rows, plus the changes given."""

    def request(**changes: object) -> FeatureRequest:
        tx = str(fraud_data["transactions"])
        return request_for(repo, tmp_path / "t.parquet", **({"entity_source": tx} | changes))

    return request


@pytest.fixture(scope="module")
def expected(tx: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """For every transaction, its customer's latest statistics at or before it, within the TTL."""
    right = stats.drop(columns="created").rename(columns={"event_timestamp": "stats_at"})
    asof = pd.merge_asof(
        tx.sort_values("event_timestamp"),
        right.sort_values("stats_at"),
        left_on="event_timestamp",
        right_on="stats_at",
        by="customer_id",
        direction="backward",
        tolerance=TTL,
    )
    return asof.set_index("transaction_id")


@pytest.fixture(scope="module")
def example_set(
    repo: Path, fraud_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> TrainingSet:
    out = tmp_path_factory.mktemp("training-set") / "train.parquet"
    request = FeatureRequest(
        repo=str(repo),
        entity_source=str(fraud_data["transactions"]),
        feature_service="fraud_model_v1",
        output=str(out),
    )
    return build_training_set(request)


# -- training sets -------------------------------------------------------------------------


def test_training_set_has_entity_columns_then_features_in_entity_order(
    example_set: TrainingSet, tx: pd.DataFrame
) -> None:
    written = pd.read_parquet(example_set.path)
    assert list(written.columns) == [*tx.columns, *FEATURES] == example_set.columns
    assert example_set.features == [f"customer_stats:{f}" for f in FEATURES]
    kept = tx["transaction_id"][tx["transaction_id"].isin(written["transaction_id"])]
    assert written["transaction_id"].tolist() == kept.tolist()


def test_feature_values_are_point_in_time_correct(
    example_set: TrainingSet, expected: pd.DataFrame
) -> None:
    written = pd.read_parquet(example_set.path).set_index("transaction_id")
    want = expected.loc[written.index]
    assert (want["stats_at"] <= written["event_timestamp"]).all()
    for feature in FEATURES:
        np.testing.assert_allclose(written[feature], want[feature], err_msg=feature)


def test_customers_without_statistics_are_reported_as_dropped(
    example_set: TrainingSet, tx: pd.DataFrame, stats: pd.DataFrame, expected: pd.DataFrame
) -> None:
    new_customers = set(tx["customer_id"]) - set(stats["customer_id"])
    unmatched = expected[expected["avg_amount_30d"].isna()]
    assert len(new_customers) == 5
    assert set(unmatched["customer_id"]) == new_customers
    assert example_set.rows_in == len(tx)
    assert example_set.dropped_count == len(unmatched) > 0
    assert example_set.rows_out == len(tx) - len(unmatched)
    assert example_set.dropped_by_view == {"customer_stats": len(unmatched)}
    assert len(example_set.dropped) == min(100, len(unmatched))
    assert {row["customer_id"] for row in example_set.dropped} <= new_customers
    first = unmatched.sort_values("event_timestamp").iloc[0]
    assert example_set.dropped[0] == {
        "customer_id": int(first["customer_id"]),
        "event_timestamp": first["event_timestamp"].isoformat(),
    }


def test_dropped_rows_are_logged_as_a_warning_with_their_count(
    tx_request: Callable[..., FeatureRequest], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlrelay.features"):
        result = build_training_set(tx_request())
    [record] = [r for r in caplog.records if r.name == "mlrelay.features"]
    assert record.levelno == logging.WARNING
    assert f"{result.dropped_count} of {result.rows_in} entity rows" in record.getMessage()


def test_on_dropped_fail_raises_training_set_incomplete_carrying_the_set(
    tx_request: Callable[..., FeatureRequest], example_set: TrainingSet
) -> None:
    with pytest.raises(TrainingSetIncomplete) as caught:
        build_training_set(tx_request(on_dropped="fail"))
    got = caught.value.training_set
    assert isinstance(got, TrainingSet)
    assert got.dropped_count == example_set.dropped_count
    assert str(got.dropped_count) in str(caught.value)


def test_dropped_share_above_max_dropped_fraction_fails_even_when_warning(
    tx_request: Callable[..., FeatureRequest],
) -> None:
    with pytest.raises(TrainingSetIncomplete, match="max_dropped_fraction"):
        build_training_set(tx_request(max_dropped_fraction=0.001))


def test_stale_and_unknown_keys_are_dropped_and_duplicates_keep_their_own_labels(
    repo: Path, stats: pd.DataFrame, tmp_path: Path
) -> None:
    """Feast drops the stale row, nulls the unknown key and keeps one duplicate: none of that."""
    known = int(stats["customer_id"].iloc[0])
    last = stats.loc[stats["customer_id"] == known, "event_timestamp"].max()
    day = pd.Timestamp("2026-01-10 12:00")  # naive: read as UTC
    entities = pd.DataFrame(
        {
            "customer_id": [known, 999_999, known, known, known],
            "event_timestamp": [
                day,
                day,
                last.tz_localize(None) + 3 * TTL,
                day,
                day - pd.Timedelta("1h"),
            ],
            "label": [1, 2, 3, 4, 5],
        }
    )
    result = build_training_set(request_for(repo, tmp_path / "t.parquet"), entity_df=entities)
    written = pd.read_parquet(result.path)
    assert written["label"].tolist() == [1, 4, 5]
    assert written["event_timestamp"].dt.tz is not None
    assert written["avg_amount_30d"].iloc[0] == written["avg_amount_30d"].iloc[1]
    assert (result.rows_in, result.rows_out, result.dropped_count) == (5, 3, 2)
    assert [r["customer_id"] for r in result.dropped] == [999_999, known]


def test_csv_and_parquet_entity_sources_give_the_same_training_set(
    tx_request: Callable[..., FeatureRequest],
    fraud_data: dict[str, Path],
    example_set: TrainingSet,
) -> None:
    request = tx_request(entity_source=str(fraud_data["transactions_csv"]))
    assert build_training_set(request).data_hash == example_set.data_hash


def test_data_hash_is_the_hash_of_the_written_content_and_stable(
    example_set: TrainingSet,
) -> None:
    assert example_set.data_hash.startswith("sha256:")
    assert content_hash(pd.read_parquet(example_set.path)) == example_set.data_hash


def test_full_feature_names_prefix_the_view(
    tx_request: Callable[..., FeatureRequest], example_set: TrainingSet
) -> None:
    request = tx_request(full_feature_names=True, features=["customer_stats:tx_count_7d"])
    result = build_training_set(request)
    assert result.columns[-1] == "customer_stats__tx_count_7d"
    assert result.rows_out == example_set.rows_out


def test_training_set_survives_a_json_round_trip(example_set: TrainingSet) -> None:
    dumped = json.dumps(example_set.model_dump(mode="json"))
    assert TrainingSet.model_validate(json.loads(dumped)) == example_set
    assert TrainingSet.model_validate_json(example_set.model_dump_json()) == example_set


def test_definitions_are_loaded_without_leaving_modules_or_bytecode(
    example_set: TrainingSet, repo: Path
) -> None:
    assert not (repo / "__pycache__").exists()
    assert not [m for m in sys.modules if m.startswith("_mlrelay_feast_repo_") or m == "features"]


# -- refused input: ConfigError before anything is written ---------------------------------


def _bad(
    repo: Path, tmp: Path, fraud_data: dict[str, Path]
) -> dict[str, tuple[dict[str, object], str]]:
    garbage = tmp / "garbage.parquet"
    garbage.write_text("not parquet")
    no_yaml = tmp / "no-yaml"
    no_yaml.mkdir()
    tx = str(fraud_data["transactions"])
    return {
        "repo missing": ({"repo": str(tmp / "nope"), "entity_source": tx}, "repo"),
        "repo without yaml": ({"repo": str(no_yaml), "entity_source": tx}, "repo"),
        "no entity rows": ({}, "entity_source"),
        "entity file missing": ({"entity_source": str(tmp / "nope.parquet")}, "entity_source"),
        "entity file unreadable": ({"entity_source": str(garbage)}, "entity_source"),
        "entity file type": ({"entity_source": str(tmp / "rows.json")}, "entity_source"),
        "timestamp missing": ({"entity_source": tx, "timestamp_column": "ts"}, "entity_source"),
        "unknown view": ({"entity_source": tx, "features": ["nope:x"]}, "features"),
        "unknown feature": ({"entity_source": tx, "features": ["customer_stats:x"]}, "features"),
        "unknown service": (
            {"entity_source": tx, "features": [], "feature_service": "nope"},
            "feature_service",
        ),
    }


BAD = [
    "repo missing",
    "repo without yaml",
    "no entity rows",
    "entity file missing",
    "entity file unreadable",
    "entity file type",
    "timestamp missing",
    "unknown view",
    "unknown feature",
    "unknown service",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_config_error_before_anything_is_written(
    case: str, repo: Path, tmp_path: Path, fraud_data: dict[str, Path]
) -> None:
    changes, field = _bad(repo, tmp_path, fraud_data)[case]
    out = tmp_path / "out" / "t.parquet"
    with pytest.raises(ConfigError) as caught:
        build_training_set(request_for(repo, out, **changes))
    assert caught.value.field == field
    assert not out.parent.exists()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"event_timestamp": [datetime(2026, 1, 5, tzinfo=UTC)]}), "customer_id"),
        (
            pd.DataFrame({"customer_id": ["1001"], "event_timestamp": [datetime(2026, 1, 5)]}),
            "join key 'customer_id'",
        ),
        (pd.DataFrame({"customer_id": [1001], "event_timestamp": ["soon"]}), "timestamps"),
        (
            pd.DataFrame(
                {"customer_id": [1001, None], "event_timestamp": [datetime(2026, 1, 5)] * 2}
            ),
            "1 entity rows have no 'customer_id'",
        ),
    ],
    ids=["join key missing", "join key type", "timestamp not a time", "null join key"],
)
def test_bad_entity_rows_are_config_errors_naming_the_column(
    frame: pd.DataFrame, message: str, repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "t.parquet"
    with pytest.raises(ConfigError, match=message) as caught:
        build_training_set(request_for(repo, out), entity_df=frame)
    assert caught.value.field == "entity_source"
    assert not out.exists()


def test_entity_rows_given_twice_is_config_error(
    tx_request: Callable[..., FeatureRequest], tx: pd.DataFrame
) -> None:
    with pytest.raises(ConfigError, match="not both"):
        build_training_set(tx_request(), entity_df=tx)
