"""The validate step against the real Great Expectations 1.x: the verdict, the report, the hash.

Clean and deliberately broken versions of the example's fraud data are checked against the
example suite; the failure counts are compared with ones computed independently with pandas.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from validation_support import BETWEEN, NOT_NULL, SUITE, suite_dict

from mlrelay.errors import DataValidationError
from mlrelay.validation import ValidationPolicy, ValidationReport, validate
from mlrelay.validation.data import content_hash, jsonable

WARN = ValidationPolicy(on_failure="warn")


def failed_by_column(report: ValidationReport) -> dict[tuple[str, str | None], object]:
    return {(f.expectation_type, f.column): f for f in report.failed}


@pytest.fixture(scope="module")
def broken_frame(broken_fraud_data: dict[str, Path]) -> pd.DataFrame:
    return pd.read_parquet(broken_fraud_data["transactions"])


# --- the verdict -------------------------------------------------------------------------------


def test_clean_transactions_pass_the_example_suite(fraud_data: dict[str, Path]) -> None:
    report = validate(fraud_data["transactions"], SUITE)

    assert report.success
    assert report.suite_name == "transactions"
    assert report.failed == []
    assert report.statistics.evaluated_expectations == 10
    assert report.statistics.successful_expectations == 10
    assert report.row_count == 2000
    assert report.data_source == str(fraud_data["transactions"])
    assert report.data_hash.startswith("sha256:")
    assert len(report.data_hash) == 7 + 64
    assert report.duration_seconds > 0


def test_broken_transactions_raise_with_the_real_counts(
    broken_fraud_data: dict[str, Path], broken_frame: pd.DataFrame
) -> None:
    with pytest.raises(DataValidationError) as caught:
        validate(broken_fraud_data["transactions"], SUITE)

    report = caught.value.report
    assert not report.success
    failed = failed_by_column(report)
    assert set(failed) == {(BETWEEN, "amount"), (NOT_NULL, "customer_id")}
    negative = int((broken_frame["amount"] < 0).sum())
    missing = int(broken_frame["customer_id"].isna().sum())
    assert negative > 0
    assert missing > 0
    amount = failed[(BETWEEN, "amount")]
    assert amount.unexpected_count == negative
    assert amount.unexpected_percent == pytest.approx(100 * negative / len(broken_frame))
    assert amount.kwargs == {"column": "amount", "min_value": 0, "max_value": 50000}
    assert len(amount.sample_values) == 5
    assert all(v < 0 for v in amount.sample_values)
    assert failed[(NOT_NULL, "customer_id")].unexpected_count == missing
    assert report.statistics.unsuccessful_expectations == 2
    assert "amount" in str(caught.value) or BETWEEN in str(caught.value)


def test_warn_policy_returns_the_report_and_logs_each_failure(
    broken_fraud_data: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlrelay.validation"):
        report = validate(broken_fraud_data["transactions"], SUITE, WARN)

    assert not report.success
    warnings = [r.getMessage() for r in caplog.records if r.name == "mlrelay.validation"]
    assert len(warnings) == 2
    amount = failed_by_column(report)[(BETWEEN, "amount")]
    assert any(f"(amount) failed, {amount.unexpected_count} unexpected" in w for w in warnings)
    assert any("customer_id" in w for w in warnings)


def test_csv_parquet_and_dataframe_give_the_same_counts(
    broken_fraud_data: dict[str, Path], broken_frame: pd.DataFrame
) -> None:
    reports = {
        "parquet": validate(broken_fraud_data["transactions"], SUITE, WARN),
        "csv": validate(str(broken_fraud_data["transactions_csv"]), SUITE, WARN),
        "frame": validate(broken_frame, SUITE, WARN),
    }

    counts = {
        kind: {key: f.unexpected_count for key, f in failed_by_column(r).items()}
        for kind, r in reports.items()
    }
    assert counts["csv"] == counts["parquet"] == counts["frame"]
    assert reports["frame"].data_source == "<DataFrame>"
    assert reports["csv"].data_source == str(broken_fraud_data["transactions_csv"])


def test_suite_as_file_dict_or_expectation_suite_gives_the_same_report(
    broken_frame: pd.DataFrame,
) -> None:
    from great_expectations.core import ExpectationSuite

    document = suite_dict()
    gx_suite = ExpectationSuite(**suite_dict())
    before = gx_suite.to_json_dict()

    reports = [validate(broken_frame, s, WARN) for s in (SUITE, str(SUITE), document, gx_suite)]

    assert {r.model_dump_json(exclude={"duration_seconds"}) for r in reports} == {
        reports[0].model_dump_json(exclude={"duration_seconds"})
    }
    # The caller's suite objects are left as they were given.
    assert document == suite_dict()
    assert gx_suite.to_json_dict() == before


def test_sample_size_limits_the_sample_values(broken_frame: pd.DataFrame) -> None:
    report = validate(broken_frame, SUITE, ValidationPolicy(on_failure="warn", sample_size=2))

    assert all(len(f.sample_values) == 2 for f in report.failed)


def test_expectation_on_a_missing_column_fails_and_says_why(fraud_data: dict[str, Path]) -> None:
    suite = {
        "name": "typo",
        "expectations": [{"type": NOT_NULL, "kwargs": {"column": "amount_eur"}}],
    }

    report = validate(fraud_data["transactions"], suite, WARN)

    assert not report.success
    (failed,) = report.failed
    assert failed.column == "amount_eur"
    assert failed.exception
    assert "amount_eur" in failed.exception


@pytest.mark.parametrize("result_format", ["BASIC", "COMPLETE"])
def test_every_result_format_reports_the_same_counts(
    broken_frame: pd.DataFrame, result_format: str
) -> None:
    summary = validate(broken_frame, SUITE, WARN)
    other = validate(
        broken_frame, SUITE, ValidationPolicy(on_failure="warn", result_format=result_format)
    )

    assert [f.unexpected_count for f in other.failed] == [
        f.unexpected_count for f in summary.failed
    ]
    assert all(len(f.sample_values) == 5 for f in other.failed)


def test_validations_in_parallel_threads_keep_their_own_results(
    fraud_data: dict[str, Path], broken_frame: pd.DataFrame
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    inputs = [fraud_data["transactions"], broken_frame] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda data: validate(data, SUITE, WARN), inputs))

    assert [r.success for r in reports] == [True, False] * 3
    assert len({r.model_dump_json(exclude={"duration_seconds"}) for r in reports}) == 2


# --- the report --------------------------------------------------------------------------------


def test_report_survives_a_json_round_trip(broken_frame: pd.DataFrame) -> None:
    report = validate(broken_frame, SUITE, WARN)

    text = json.dumps(report.model_dump(mode="json"), allow_nan=False)

    assert ValidationReport.model_validate(json.loads(text)) == report


def test_sample_and_observed_values_of_any_dtype_are_json_safe() -> None:
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-01-01T10:00:00Z", "2026-01-02T11:30:00Z", None]),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "x": [0.5, float("nan"), 2.5],
        }
    )
    suite = {
        "name": "dtypes",
        "expectations": [
            {"type": BETWEEN, "kwargs": {"column": "ts", "min_value": "2030-01-01T00:00:00Z"}},
            {"type": "expect_column_values_to_be_null", "kwargs": {"column": "n"}},
            {
                "type": "expect_column_max_to_be_between",
                "kwargs": {"column": "ts", "max_value": "2000-01-01T00:00:00Z"},
            },
            {"type": "expect_column_values_to_be_null", "kwargs": {"column": "x"}},
        ],
    }

    report = validate(frame, suite, WARN)

    dumped = json.loads(json.dumps(report.model_dump(mode="json"), allow_nan=False))
    failed = {f["column"] + ":" + f["expectation_type"]: f for f in dumped["failed"]}
    assert failed[f"ts:{BETWEEN}"]["sample_values"][0].startswith("2026-01-01T10:00:00")
    assert failed["n:expect_column_values_to_be_null"]["sample_values"] == [1, 3]
    assert failed["x:expect_column_values_to_be_null"]["sample_values"] == [0.5, 2.5]
    assert str(failed["ts:expect_column_max_to_be_between"]["observed_value"]).startswith(
        "2026-01-02"
    )


def test_jsonable_maps_missing_values_to_none_and_times_to_iso() -> None:
    import numpy as np

    assert jsonable([pd.NA, pd.NaT, np.nan, float("inf"), None]) == [None] * 5
    assert jsonable({"a": np.int64(3), 4: np.float32(0.5), "b": np.bool_(True)}) == {
        "a": 3,
        "4": 0.5,
        "b": True,
    }
    assert jsonable(pd.Timestamp("2026-01-01T00:00:00Z")) == "2026-01-01T00:00:00+00:00"
    assert jsonable(np.datetime64("2026-01-01T00:00:00")) == "2026-01-01T00:00:00"
    assert jsonable(np.array([1, 2])) == [1, 2]


def test_html_report_shows_every_expectation_and_the_failure(
    broken_frame: pd.DataFrame, tmp_path: Path
) -> None:
    suite = suite_dict() | {"name": "<b>tx</b>"}
    target = tmp_path / "reports" / "validation.html"

    with pytest.raises(DataValidationError) as caught:
        validate(broken_frame, suite, html_report=target)

    report = caught.value.report
    page = target.read_text()
    assert report.html_report == str(target)
    assert page.startswith("<!DOCTYPE html>")
    assert "&lt;b&gt;tx&lt;/b&gt;" in page
    assert "<b>tx</b>" not in page
    assert page.count('<tr class="passed">') == 8
    assert page.count('<tr class="failed">') == 2
    amount = failed_by_column(report)[(BETWEEN, "amount")]
    assert f"{amount.unexpected_count:,}" in page
    assert report.data_hash in page


# --- the data hash -----------------------------------------------------------------------------


def test_data_hash_is_stable_for_the_same_data(
    fraud_data: dict[str, Path], broken_frame: pd.DataFrame
) -> None:
    frame = pd.read_parquet(fraud_data["transactions"])
    reindexed = frame.set_axis(range(10_000, 10_000 + len(frame)))

    assert content_hash(frame) == content_hash(frame.copy()) == content_hash(reindexed)
    assert validate(frame, SUITE).data_hash == validate(fraud_data["transactions"], SUITE).data_hash
    assert content_hash(frame) != content_hash(broken_frame)


def test_data_hash_changes_with_one_value_a_name_or_a_dtype(fraud_data: dict[str, Path]) -> None:
    frame = pd.read_parquet(fraud_data["transactions"])
    one_value = frame.copy()
    one_value.loc[123, "amount"] += 0.01

    variants = [
        frame,
        one_value,
        frame.rename(columns={"amount": "amount_usd"}),
        frame.astype({"hour": "int32"}),
        frame.iloc[::-1],
    ]

    assert len({content_hash(v) for v in variants}) == len(variants)


def test_data_hash_accepts_unhashable_cells() -> None:
    frame = pd.DataFrame({"tags": [["a"], ["b", "c"]], "n": [1, 2]})

    assert content_hash(frame) == content_hash(frame.copy())
    assert content_hash(frame) != content_hash(frame.assign(tags=[["a"], ["b"]]))
