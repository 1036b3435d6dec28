"""Feature-store specs and results: point-in-time training sets and materialization."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from mlrelay._model import Frozen


class FeatureRequest(Frozen):
    """A point-in-time-correct training set to build from a Feast repository.

    Attributes:
        repo: path of the Feast feature repository (the folder holding ``feature_store.yaml``).
        entity_source: CSV or Parquet file of entity rows: join keys, the event timestamp and any
            label columns, which are carried through unchanged.
        features: feature references ``"view:feature"``; or give ``feature_service``.
        output: where the training set is written (Parquet).
        timestamp_column: the entity rows' event-time column.
        on_dropped: Feast's file offline store silently drops entity rows that have no feature
            row inside the view's TTL; ``"warn"`` reports them, ``"fail"`` raises
            ``TrainingSetIncomplete``.
        max_dropped_fraction: with ``"warn"``, still fail when more than this share is dropped.
    """

    repo: str
    entity_source: str
    features: list[str] = Field(default_factory=list)
    feature_service: str | None = None
    output: str
    timestamp_column: str = "event_timestamp"
    full_feature_names: bool = False
    on_dropped: Literal["fail", "warn"] = "warn"
    max_dropped_fraction: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _features_or_service(self) -> FeatureRequest:
        if bool(self.features) == bool(self.feature_service):
            raise ValueError("give exactly one of 'features' or 'feature_service'")
        for ref in self.features:
            view, _, name = ref.partition(":")
            if not view or not name:
                raise ValueError(f"feature reference {ref!r} must look like 'view:feature'")
        return self


class TrainingSet(Frozen):
    """A training set written to Parquet, with an account of every row Feast did not return.

    Attributes:
        dropped: the entity rows (join keys and timestamp) missing from the output, at most 100.
        data_hash: content hash of the written training set, recorded on the model for lineage.
    """

    path: str
    rows_in: int
    rows_out: int
    dropped_count: int
    dropped: list[dict[str, Any]] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    data_hash: str
    duration_seconds: float = 0.0


class MaterializeRequest(Frozen):
    """Load feature values into the online store up to ``end`` (from ``start``, or incrementally)."""

    repo: str
    end: datetime
    start: datetime | None = None
    feature_views: list[str] | None = None


class MaterializationResult(Frozen):
    feature_views: list[str]
    start: datetime | None
    end: datetime
    duration_seconds: float
