"""Validation specs and results: what a suite run found, in numbers an orchestrator can show."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mlrelay._model import Frozen


class ValidationPolicy(Frozen):
    """What a failed suite does to the pipeline.

    Attributes:
        on_failure: ``"fail"`` raises ``DataValidationError`` (the pipeline stops); ``"warn"`` logs
            the failures and returns the report.
        result_format: how much detail Great Expectations collects per expectation.
        sample_size: how many unexpected values each failed expectation keeps as examples.
    """

    on_failure: Literal["fail", "warn"] = "fail"
    result_format: Literal["BASIC", "SUMMARY", "COMPLETE"] = "SUMMARY"
    sample_size: int = Field(default=5, ge=0, le=100)


class ValidationStatistics(Frozen):
    evaluated_expectations: int
    successful_expectations: int
    unsuccessful_expectations: int
    success_percent: float | None = None


class FailedExpectation(Frozen):
    """One unmet expectation, with enough numbers to judge it without opening data docs.

    Attributes:
        exception: why Great Expectations could not evaluate the expectation at all (a missing
            column, a type that cannot be compared), when that is why it failed. Such an
            expectation carries no counts, so without this message it would fail silently.
    """

    expectation_type: str
    column: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample_values: list[Any] = Field(default_factory=list)
    observed_value: Any = None
    exception: str | None = None


class ValidationReport(Frozen):
    """The outcome of one suite on one dataset.

    Attributes:
        data_hash: a content hash of the data (``sha256:...``), so the model version trained on
            it can name exactly which data passed which suite (lineage).
        html_report: where the HTML report was written, when one was asked for.
    """

    suite_name: str
    success: bool
    statistics: ValidationStatistics
    failed: list[FailedExpectation] = Field(default_factory=list)
    row_count: int
    data_hash: str
    data_source: str
    html_report: str | None = None
    duration_seconds: float = 0.0
