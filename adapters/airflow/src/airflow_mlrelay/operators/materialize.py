"""``MaterializeFeaturesOperator``: load feature values into Feast's online store for serving."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_mlrelay.exceptions import core_errors
from airflow_mlrelay.operators._base import as_json

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context


class MaterializeFeaturesOperator(BaseOperator):
    """Materialize ``[start, end)`` (or, without ``start``, what is new since the last run).

    The arguments are the fields of ``mlrelay.features.MaterializeRequest``; the result is the
    ``MaterializationResult`` JSON. Without ``start`` every view continues from where its last
    materialization ended, so a scheduled DAG loads each interval once and a retried task loads
    nothing twice.

    Args:
        repo: the Feast repository folder (templated).
        end: load feature rows up to this time (templated; ISO 8601 text is fine). Defaults to
            the end of the DAG run's data interval, or the time the run was due.
        start: load from here (templated); leave it out to continue incrementally.
        feature_views: the views to load (templated); all of the repo's by default.
        apply_definitions: when to apply the repo's definitions (``"if_empty"``, ``"always"``,
            ``"never"``).
    """

    template_fields: Sequence[str] = ("repo", "end", "start", "feature_views")
    ui_color = "#eef2fb"

    def __init__(
        self,
        *,
        repo: str,
        end: str | datetime = "{{ data_interval_end or dag_run.run_after }}",
        start: str | datetime | None = None,
        feature_views: Sequence[str] | None = None,
        apply_definitions: Literal["if_empty", "always", "never"] = "if_empty",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.repo = repo
        self.end = end
        self.start = start
        self.feature_views = list(feature_views) if feature_views is not None else None
        self.apply_definitions = apply_definitions

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.features import materialize_features
        from mlrelay.features.spec import MaterializeRequest

        with core_errors():
            request = MaterializeRequest(
                repo=self.repo,
                end=self.end,  # type: ignore[arg-type]  # ISO text is validated into a datetime
                start=self.start or None,  # type: ignore[arg-type]
                feature_views=self.feature_views or None,
                apply_definitions=self.apply_definitions,
            )
            return as_json(materialize_features(request))
