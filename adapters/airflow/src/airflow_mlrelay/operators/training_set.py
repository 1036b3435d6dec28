"""``BuildTrainingSetOperator``: a point-in-time-correct training set from a Feast repository."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_mlrelay.exceptions import core_errors
from airflow_mlrelay.operators._base import as_json

if TYPE_CHECKING:
    from airflow.sdk import Context


class BuildTrainingSetOperator(BaseOperator):
    """Write the training set a ``FeatureRequest`` describes; return the ``TrainingSet`` JSON.

    The arguments are the fields of ``mlrelay.features.FeatureRequest``. The result names the
    Parquet file written (``path``), its content hash (``data_hash``, lineage) and every entity
    row Feast left without features (``dropped``); pass it to ``TrainModelOperator(training_set=)``.

    Args:
        repo: the Feast repository folder (templated).
        entity_source: CSV or Parquet of entity rows: keys, event time, labels (templated).
        output_path: where the training set is written (templated; the request's ``output``,
            renamed because ``output`` is every Airflow operator's XCom reference).
        features: ``"view:feature"`` references (templated); or ``feature_service``.
        feature_service: a Feast feature service (templated).
        on_dropped: rows without features are always left out; ``"fail"`` makes that an error.
        max_dropped_fraction: with ``"warn"``, still fail above this share of dropped rows.
        apply_definitions: when to apply the repo's definitions (``"if_empty"``, ``"always"``,
            ``"never"``).
    """

    template_fields: Sequence[str] = (
        "repo", "entity_source", "output_path", "features", "feature_service", "timestamp_column",
    )  # fmt: skip
    ui_color = "#eef2fb"

    def __init__(
        self,
        *,
        repo: str,
        entity_source: str,
        output_path: str,
        features: Sequence[str] | None = None,
        feature_service: str | None = None,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        on_dropped: Literal["fail", "warn"] = "warn",
        max_dropped_fraction: float = 1.0,
        apply_definitions: Literal["if_empty", "always", "never"] = "if_empty",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.repo = repo
        self.entity_source = entity_source
        self.output_path = output_path
        self.features = list(features or [])
        self.feature_service = feature_service
        self.timestamp_column = timestamp_column
        self.full_feature_names = full_feature_names
        self.on_dropped = on_dropped
        self.max_dropped_fraction = max_dropped_fraction
        self.apply_definitions = apply_definitions

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.features import build_training_set
        from mlrelay.features.spec import FeatureRequest

        with core_errors():
            request = FeatureRequest(
                repo=self.repo,
                entity_source=self.entity_source,
                output=self.output_path,
                features=list(self.features),
                feature_service=self.feature_service or None,
                timestamp_column=self.timestamp_column,
                full_feature_names=self.full_feature_names,
                on_dropped=self.on_dropped,
                max_dropped_fraction=self.max_dropped_fraction,
                apply_definitions=self.apply_definitions,
            )
            return as_json(build_training_set(request))
