"""Data validation as a blocking Dagster asset check (Great Expectations, through the core).

A check is Dagster's own place for "is this asset fit to use": it shows on the asset's page,
keeps a history, and with ``blocking=True`` a failed check stops every asset downstream of
it in the same run. So the core's ``validate`` step becomes a check, not an asset:

- policy ``"fail"``: a failed suite is an ERROR-severity check failure; downstream assets do
  not materialize and the run fails, as ``DataValidationError`` fails a task elsewhere.
- policy ``"warn"``: a failed suite is a WARN-severity failure; downstream assets go on.

Either way the metadata holds the statistics, the unmet expectations as a table, and the full
report as JSON (which ``build_model_asset(validation=...)`` copies onto the model version).
"""

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from dagster_mlrelay import _metadata
from dagster_mlrelay._runtime import AssetKeyLike, asset_key, failures_as_dagster
from mlrelay.validation.spec import ValidationPolicy, ValidationReport

__all__ = ["build_validation_check"]


def build_validation_check(
    asset: AssetKeyLike,
    suite: str | Path | Mapping[str, Any],
    *,
    policy: Literal["fail", "warn"] | ValidationPolicy = "fail",
    name: str | None = None,
    data: str | Path | None = None,
    html_report_dir: str | Path | None = None,
    blocking: bool = True,
    description: str | None = None,
) -> dg.AssetChecksDefinition:
    """A check that validates ``asset`` against a Great Expectations suite.

    Args:
        asset: the asset to check (its definition, key or name).
        suite: a GX 1.x suite JSON file, or the same document as a dict. Read when the check
            runs, so loading the definitions does no I/O.
        policy: ``"fail"`` (ERROR severity: downstream assets stop) or ``"warn"`` (WARN
            severity), or a ``ValidationPolicy`` for the result format and sample size too.
        name: the check's name; by default the suite's name with ``_suite`` (``transactions_suite``).
        data: validate this CSV/Parquet file instead of the asset's value. Without it the
            asset's value is loaded through its IO manager and must be a pandas DataFrame or
            the path of a CSV/Parquet file.
        html_report_dir: write an HTML report of each run here (linked in the metadata).
        blocking: stop downstream assets when the check fails with ERROR severity.
        description: shown in the UI; by default it says what is checked against what.
    """
    key = asset_key(asset)
    rule = ValidationPolicy(on_failure=policy) if isinstance(policy, str) else policy
    check_name = name or _default_name(suite)
    severity = (
        dg.AssetCheckSeverity.ERROR if rule.on_failure == "fail" else dg.AssetCheckSeverity.WARN
    )
    spec = dg.AssetCheckSpec(
        check_name,
        asset=key,
        blocking=blocking,
        description=description
        or f"Great Expectations suite {_suite_label(suite)} ({rule.on_failure} on failure)",
    )
    # The core is asked to warn, never to raise: the check reports the failure itself, with
    # the severity the policy asks for, instead of failing the step.
    as_warning = rule.model_copy(update={"on_failure": "warn"})

    def run(context: dg.AssetCheckExecutionContext, value: Any) -> dg.AssetCheckResult:
        from mlrelay.validation import validate

        html = None
        if html_report_dir is not None:
            html = Path(html_report_dir) / f"{check_name}-{context.run.run_id}.html"
        with failures_as_dagster():
            report: ValidationReport = validate(value, suite, as_warning, html_report=html)
        stats = report.statistics
        context.log.info(
            f"suite {report.suite_name!r}: {stats.successful_expectations} of "
            f"{stats.evaluated_expectations} expectations met on {report.row_count} rows"
        )
        return dg.AssetCheckResult(
            passed=report.success,
            severity=severity,
            metadata=_metadata.validation(report),
            description=None if report.success else _summary(report),
        )

    decorate = dg.multi_asset_check(
        specs=[spec],
        name=check_name,
        ins=None if data is not None else {"value": dg.AssetIn(key=key)},
    )
    if data is not None:

        def check_file(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
            yield run(context, data)

        return decorate(check_file)

    def check_value(
        context: dg.AssetCheckExecutionContext, value: Any
    ) -> Iterator[dg.AssetCheckResult]:
        yield run(context, value)

    return decorate(check_value)


def _default_name(suite: str | Path | Mapping[str, Any]) -> str:
    base = (
        str(suite.get("name") or "expectations") if isinstance(suite, Mapping) else Path(suite).stem
    )
    return re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_") + "_suite"


def _suite_label(suite: str | Path | Mapping[str, Any]) -> str:
    return repr(suite.get("name")) if isinstance(suite, Mapping) else Path(suite).name


def _summary(report: ValidationReport) -> str:
    failed = ", ".join(
        f.expectation_type + (f"({f.column})" if f.column else "") for f in report.failed
    )
    stats = report.statistics
    return (
        f"{stats.unsuccessful_expectations} of {stats.evaluated_expectations} expectations "
        f"unmet: {failed}"
    )
