"""``ValidateDataOperator``: check a dataset against a Great Expectations suite before it is used."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlrelay.exceptions import DataValidationFailed, core_errors
from airflow_mlrelay.operators._base import as_json

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlrelay.validation.spec import ValidationPolicy


class ValidateDataOperator(BaseOperator):
    """Validate ``data`` with ``suite`` (``mlrelay.validate``); return the report's JSON.

    A failed suite under ``on_failure="fail"`` (the default policy) fails the task with
    ``DataValidationFailed``, whose message lists every unmet expectation with its numbers; the
    report is pushed to XCom first, so a downstream ``all_done`` task can alert with it. Under
    ``"warn"`` the task succeeds and the report says what failed. Lineage: pass the result to
    ``TrainModelOperator(validation=...)`` and the model version records it.

    Args:
        data: a CSV or Parquet file (templated).
        suite: a GX 1.x suite JSON file, or the suite as a dict (templated).
        policy: a ``ValidationPolicy`` or its dict (``on_failure``, ``result_format``,
            ``sample_size``).
        html_report: where to write a self-contained HTML report (templated).
    """

    template_fields: Sequence[str] = ("data", "suite", "html_report")
    template_fields_renderers = {"suite": "json"}
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        data: str,
        suite: str | dict[str, Any],
        policy: ValidationPolicy | dict[str, Any] | None = None,
        html_report: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.suite = suite
        self.policy = policy
        self.html_report = html_report

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.errors import DataValidationError
        from mlrelay.validation import validate

        try:
            with core_errors():
                report = validate(
                    self.data,
                    self.suite,
                    self.policy,  # type: ignore[arg-type]  # the core validates a dict policy
                    html_report=self.html_report or None,
                )
        except DataValidationError as exc:
            payload = as_json(exc.report)
            context["ti"].xcom_push(key="return_value", value=payload)
            raise DataValidationFailed(payload) from exc
        return as_json(report)
