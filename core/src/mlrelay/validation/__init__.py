"""The validate step: check a dataset against a Great Expectations suite before it is used.

A failed suite stops the pipeline (``on_failure="fail"``, the default) or is logged and let
through (``"warn"``); either way the :class:`ValidationReport` carries the numbers: which
expectations failed, how many rows, sample values, and a content hash that lineage records
next to the model trained on the data.

Importing this package imports neither pandas nor Great Expectations; :func:`validate` does,
on first use (GX takes about 8 s to import).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlrelay.errors import ConfigError, DataValidationError
from mlrelay.validation import data as _data
from mlrelay.validation import gx as _gx
from mlrelay.validation import html as _html
from mlrelay.validation.spec import (
    FailedExpectation,
    ValidationPolicy,
    ValidationReport,
    ValidationStatistics,
)

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite

__all__ = [
    "FailedExpectation",
    "ValidationPolicy",
    "ValidationReport",
    "ValidationStatistics",
    "validate",
]

logger = logging.getLogger("mlrelay.validation")


def validate(
    data: pd.DataFrame | str | Path,
    suite: str | Path | dict[str, object] | ExpectationSuite,
    policy: ValidationPolicy | None = None,
    *,
    html_report: str | Path | None = None,
) -> ValidationReport:
    """Validate ``data`` against ``suite`` and act on the result as ``policy`` says.

    Everything that can be checked without running the suite is checked first, cheapest
    first: the arguments, the data file's existence and type, then every expectation of the
    suite (GX itself would silently drop one with an unknown type). Only then is the data
    read and the suite run.

    Args:
        data: a pandas DataFrame, or the path of a CSV (optionally compressed) or Parquet file.
            A CSV is read with pandas' default type inference.
        suite: the path of a GX 1.x suite JSON file, the same document as a dict
            (``{"name": ..., "expectations": [{"type": ..., "kwargs": {...}}, ...]}``), or a
            ``great_expectations.core.ExpectationSuite`` (copied, never modified).
        policy: what a failure does; defaults to ``ValidationPolicy()`` (raise).
        html_report: where to write a self-contained HTML page of the run. It is written
            before a failure is raised, since that is when it is read.

    Returns:
        The report, also when the suite failed under ``on_failure="warn"``.

    Raises:
        ConfigError: bad ``data``, ``suite``, ``policy`` or ``html_report``, raised before the
            suite runs; messages name the file, or the expectation's index and type.
        DataValidationError: the suite failed and ``policy.on_failure`` is ``"fail"``; its
            ``report`` holds the numbers.
        MissingDependency: the ``mlrelay[gx]`` extra is not installed.
    """
    started = time.perf_counter()
    policy = _check_policy(policy)
    if html_report is not None and not isinstance(html_report, (str, os.PathLike)):
        raise ConfigError(
            f"expected a file path, got {type(html_report).__name__}", field="html_report"
        )
    _data.check_source(data)
    gx_suite = _gx.build_suite(suite)
    frame, source = _data.load(data)
    outcome = _gx.run(frame, gx_suite, policy)

    report = ValidationReport(
        suite_name=outcome.suite_name,
        success=outcome.success,
        statistics=outcome.statistics,
        failed=[c.expectation for c in outcome.checked if not c.success],
        row_count=len(frame),
        data_hash=_data.content_hash(frame),
        data_source=source,
        html_report=None if html_report is None else str(html_report),
        duration_seconds=round(time.perf_counter() - started, 6),
    )
    if html_report is not None:
        _html.write(html_report, report, outcome.checked)
    _log(report, policy)
    if not report.success and policy.on_failure == "fail":
        raise DataValidationError(report)
    return report


def _check_policy(policy: object) -> ValidationPolicy:
    if policy is None:
        return ValidationPolicy()
    if isinstance(policy, ValidationPolicy):
        return policy
    if isinstance(policy, dict):  # e.g. straight from an orchestrator's JSON config
        validated: ValidationPolicy = ValidationPolicy.model_validate(policy)
        return validated
    raise ConfigError(f"expected a ValidationPolicy, got {type(policy).__name__}", field="policy")


def _log(report: ValidationReport, policy: ValidationPolicy) -> None:
    stats = report.statistics
    logger.info(
        "suite %r on %s (%d rows, %s): %d of %d expectations met in %.3f s",
        report.suite_name,
        report.data_source,
        report.row_count,
        report.data_hash,
        stats.successful_expectations,
        stats.evaluated_expectations,
        report.duration_seconds,
    )
    if report.success or policy.on_failure != "warn":
        return
    for failed in report.failed:
        logger.warning("suite %r: %s", report.suite_name, _summary(failed))


def _summary(failed: FailedExpectation) -> str:
    """One line saying what an unmet expectation found, for logs and messages."""
    target = failed.expectation_type
    if failed.column:
        target += f"({failed.column})"
    if failed.exception:
        return f"{target} could not be evaluated: {failed.exception}"
    parts = [f"{target} failed"]
    if failed.unexpected_count is not None:
        percent = failed.unexpected_percent
        parts.append(
            f"{failed.unexpected_count} unexpected"
            + (f" ({percent:.2f}%)" if percent is not None else "")
        )
    if failed.observed_value is not None:
        parts.append(f"observed {failed.observed_value!r}")
    if failed.sample_values:
        parts.append(f"e.g. {failed.sample_values!r}")
    return ", ".join(parts)
