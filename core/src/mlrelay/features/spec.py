"""Feature-store specs and results: point-in-time training sets and materialization."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mlrelay._model import FieldError, Frozen

ApplyPolicy = Literal["if_empty", "always", "never"]
"""When a step applies the repo's definitions to the registry, as ``feast apply`` would.

``"if_empty"`` applies them only to a registry that holds no feature view or service yet (a
fresh local repo just works; a governed registry is never overwritten); ``"always"`` re-applies
them on every run, so edits to the definitions take effect without ``feast apply``; ``"never"``
uses the registry as it is.
"""


class FeatureRequest(Frozen):
    """A point-in-time-correct training set to build from a Feast repository.

    Attributes:
        repo: path of the Feast feature repository (the folder holding ``feature_store.yaml``).
        entity_source: CSV or Parquet file of entity rows: join keys, the event timestamp and any
            label columns, which are carried through unchanged. May be left out when the caller
            passes a DataFrame to ``build_training_set(..., entity_df=...)`` instead.
        features: feature references ``"view:feature"``; or give ``feature_service``.
        output: where the training set is written (Parquet).
        timestamp_column: the entity rows' event-time column.
        on_dropped: entity rows with no feature row inside a view's TTL get no features (Feast's
            file offline store silently drops some of them and returns others with nulls);
            they are always left out and listed: ``"warn"`` logs them, ``"fail"`` raises
            ``TrainingSetIncomplete``.
        max_dropped_fraction: with ``"warn"``, still fail when more than this share is dropped.
        apply_definitions: when to apply the repo's definitions to the registry (``ApplyPolicy``).
    """

    repo: str
    entity_source: str | None = None
    features: list[str] = Field(default_factory=list)
    feature_service: str | None = None
    output: str
    timestamp_column: str = "event_timestamp"
    full_feature_names: bool = False
    on_dropped: Literal["fail", "warn"] = "warn"
    max_dropped_fraction: float = Field(default=1.0, ge=0.0, le=1.0)
    apply_definitions: ApplyPolicy = "if_empty"

    @model_validator(mode="after")
    def _features_or_service(self) -> FeatureRequest:
        if bool(self.features) == bool(self.feature_service):
            field = "feature_service" if self.features else "features"
            raise FieldError(field, "give exactly one of 'features' or 'feature_service'")
        for ref in self.features:
            view, _, name = ref.partition(":")
            # Feast splits a reference at its colon and matches both halves exactly.
            if not view or not name or ":" in name or ref != ref.strip() or " " in ref:
                raise FieldError("features", f"reference {ref!r} must look like 'view:feature'")
        return self


class TrainingSet(Frozen):
    """A training set written to Parquet, with an account of every entity row that got no features.

    Attributes:
        path: the Parquet file written.
        rows_in: entity rows given.
        rows_out: rows written; always ``rows_in - dropped_count``.
        dropped_count: entity rows left out because some requested feature view had no row
            for their key inside its TTL before their timestamp.
        dropped: the entity rows (join keys and timestamp) missing from the output, at most 100.
        dropped_by_view: for each feature view, how many entity rows found no row in it.
        columns: the columns of the written file: the entity columns, then the features.
        features: the feature references served (``"view:feature"``), also when a feature
            service was asked for.
        data_hash: content hash of the written training set, recorded on the model for lineage.
    """

    path: str
    rows_in: int
    rows_out: int
    dropped_count: int
    dropped: list[dict[str, Any]] = Field(default_factory=list)
    dropped_by_view: dict[str, int] = Field(default_factory=dict)
    columns: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    data_hash: str
    duration_seconds: float = 0.0


class MaterializeRequest(Frozen):
    """Load feature values into the online store up to ``end`` (from ``start``, or incrementally).

    Naive datetimes are taken as UTC, as Feast does.

    Attributes:
        repo: path of the Feast feature repository.
        end: load feature rows with an event time up to this (Feast includes both ends).
        start: load from here; ``None`` continues each view from where its last
            materialization ended (a view never materialized starts at ``now - ttl``).
        feature_views: the views to load; ``None`` means every feature view of the repo.
        apply_definitions: when to apply the repo's definitions to the registry (``ApplyPolicy``).
    """

    repo: str
    end: datetime
    start: datetime | None = None
    feature_views: list[str] | None = None
    apply_definitions: ApplyPolicy = "if_empty"

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _start_before_end(self) -> MaterializeRequest:
        if self.start is not None and self.start >= self.end:
            raise FieldError("start", "'start' must be before 'end'")
        if self.feature_views is not None and not self.feature_views:
            raise FieldError(
                "feature_views", "'feature_views' must name at least one view, or be left out"
            )
        return self


class MaterializationResult(Frozen):
    """What was loaded into the online store.

    Attributes:
        feature_views: the views loaded in this run.
        intervals: for each loaded view, the ``(start, end)`` event-time window loaded.
        skipped: views that were already materialized up to ``end`` (a retried run).
    """

    feature_views: list[str]
    start: datetime | None
    end: datetime
    intervals: dict[str, tuple[datetime, datetime]] = Field(default_factory=dict)
    skipped: list[str] = Field(default_factory=list)
    duration_seconds: float
