"""The core's errors as Airflow exceptions, carrying the numbers the task log should show.

Which failures Airflow retries is decided here, once for every operator:

- ``InvalidInput`` and ``DataValidationFailed`` are ``AirflowFailException``: bad arguments and
  a dataset that fails its suite fail the same way on every try, so retrying only delays the
  alert.
- ``PromotionRejected`` is an ``AirflowFailException`` too: the gate's numbers will not change.
- Everything else the core raises (``TrainingFailed``, ``ServiceUnavailable``, ...) propagates
  unchanged and is retried as the task's ``retries`` say; a retried training task adopts the
  job its first try started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class InvalidInput(AirflowFailException):
    """An argument the core rejected before creating anything (``mlrelay.errors.ConfigError``).

    Attributes:
        field: the argument or spec field at fault, when the core named one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class DataValidationFailed(AirflowFailException):
    """A dataset failed its expectation suite under ``on_failure="fail"``.

    Attributes:
        report: the ``ValidationReport`` as JSON (also pushed to XCom before this is raised).
        statistics: evaluated / successful / unsuccessful expectation counts.
        failed: the unmet expectations with their unexpected counts and sample values.
    """

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.statistics: dict[str, Any] = dict(report.get("statistics") or {})
        self.failed: list[dict[str, Any]] = list(report.get("failed") or [])
        stats = self.statistics
        lines = [
            f"suite {report.get('suite_name')!r} failed on {report.get('data_source')}: "
            f"{stats.get('unsuccessful_expectations')} of {stats.get('evaluated_expectations')} "
            f"expectations unmet on {report.get('row_count')} rows"
        ]
        lines += [f"  - {_describe(failure)}" for failure in self.failed]
        super().__init__("\n".join(lines))


class PromotionRejected(AirflowFailException):
    """The promotion gate kept the current champion and the operator's ``on_reject`` is ``"fail"``.

    Attributes:
        decision: the ``PromotionDecision`` as JSON: both versions, both metric values, the reason.
    """

    def __init__(self, decision: dict[str, Any]) -> None:
        self.decision = decision
        super().__init__(
            f"{decision.get('model_name')} v{decision.get('candidate_version')} not promoted to "
            f"@{decision.get('alias')}: {decision.get('reason')}"
        )


class TrainingWaitFailed(AirflowException):
    """The trigger could not follow a training job to its end (the job was left as it was).

    Retried like any failure; the retry adopts the job the first try started.
    """


@contextlib.contextmanager
def core_errors() -> Iterator[None]:
    """Turn the core's ``ConfigError`` into ``InvalidInput`` (not retried); let the rest through."""
    from mlrelay.errors import ConfigError  # not when a DAG file importing this is parsed

    try:
        yield
    except ConfigError as exc:
        raise InvalidInput(str(exc), field=exc.field) from exc


def _describe(failure: dict[str, Any]) -> str:
    what = failure.get("expectation_type", "?")
    if failure.get("column"):
        what += f"({failure['column']})"
    if failure.get("exception"):
        return f"{what}: could not be evaluated: {failure['exception']}"
    parts = [what]
    if failure.get("unexpected_count") is not None:
        percent = failure.get("unexpected_percent")
        parts.append(
            f"{failure['unexpected_count']} unexpected"
            + (f" ({percent:.2f}%)" if percent is not None else "")
        )
    if failure.get("observed_value") is not None:
        parts.append(f"observed {failure['observed_value']!r}")
    if failure.get("sample_values"):
        parts.append(f"e.g. {failure['sample_values']!r}")
    return ", ".join(parts)
