"""The core's results as Dagster metadata: numbers as numbers, links as links, tables as tables.

Numbers are ``MetadataValue.float``/``int`` so that Dagster plots them across materializations
(a model's ``roc_auc`` over time); URLs are ``MetadataValue.url`` so they are clickable. Only
fields of the core's results reach metadata, and those never hold secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from mlrelay.validation.spec import ValidationReport

METRIC_PREFIX = "metric/"
_FAILED_COLUMNS = (
    ("expectation", "string"),
    ("column", "string"),
    ("unexpected_count", "int"),
    ("unexpected_percent", "float"),
    ("observed_value", "string"),
    ("sample_values", "string"),
    ("exception", "string"),
)


def link(url: str | None, fallback: str) -> dg.MetadataValue:
    """A clickable URL when there is one (an MLflow server), else the plain identifier."""
    return dg.MetadataValue.url(url) if url else dg.MetadataValue.text(fallback)


def numbers(values: Mapping[str, float], prefix: str = "") -> dict[str, Any]:
    """Each value as a float entry (``metric/roc_auc``), so Dagster can plot it."""
    return {f"{prefix}{k}": dg.MetadataValue.float(float(v)) for k, v in sorted(values.items())}


def text_block(text: str) -> dg.MetadataValue:
    """Preformatted text (a lineage tree, a log tail) as Markdown."""
    return dg.MetadataValue.md(f"```\n{text}\n```")


def validation(report: ValidationReport) -> dict[str, Any]:
    """The statistics, the unmet expectations as a table, and the report itself (as JSON).

    The JSON copy is what a model asset reads back to tag the model version with the
    validation its data passed (``build_model_asset(validation=...)``).
    """
    stats = report.statistics
    metadata: dict[str, Any] = {
        "suite": dg.MetadataValue.text(report.suite_name),
        "dagster/row_count": dg.MetadataValue.int(report.row_count),
        "evaluated_expectations": dg.MetadataValue.int(stats.evaluated_expectations),
        "successful_expectations": dg.MetadataValue.int(stats.successful_expectations),
        "unsuccessful_expectations": dg.MetadataValue.int(stats.unsuccessful_expectations),
        "data_source": dg.MetadataValue.text(report.data_source),
        "data_hash": dg.MetadataValue.text(report.data_hash),
        "report": dg.MetadataValue.json(report.model_dump(mode="json")),
    }
    if stats.success_percent is not None:
        metadata["success_percent"] = dg.MetadataValue.float(float(stats.success_percent))
    if report.failed:
        metadata["failed_expectations"] = _failed_table(report)
    if report.html_report:
        metadata["html_report"] = dg.MetadataValue.path(report.html_report)
    return metadata


def _failed_table(report: ValidationReport) -> dg.MetadataValue:
    def shown(value: Any) -> str | None:
        if value is None or value == []:
            return None
        return value if isinstance(value, str) else json.dumps(value, default=str)[:500]

    records = [
        dg.TableRecord(
            {
                "expectation": failed.expectation_type,
                "column": failed.column,
                "unexpected_count": failed.unexpected_count,
                "unexpected_percent": failed.unexpected_percent,
                "observed_value": shown(failed.observed_value),
                "sample_values": shown(failed.sample_values),
                "exception": failed.exception,
            }
        )
        for failed in report.failed
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in _FAILED_COLUMNS])
    return dg.MetadataValue.table(records=records, schema=schema)


def report_from(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The report a validation check stored in its metadata (see ``validation``), if any."""
    value = metadata.get("report")
    data = getattr(value, "data", value)
    return dict(data) if isinstance(data, Mapping) else None


def lineage(found: Mapping[str, Any]) -> dict[str, Any]:
    """The lineage trail (endpoint -> version -> run -> job -> dataset -> validation) as text."""
    from mlrelay.lineage_trail import render

    return {"lineage": text_block(render(dict(found)))}
