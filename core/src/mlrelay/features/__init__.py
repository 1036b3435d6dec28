"""The features step: point-in-time-correct training sets and online materialization (Feast).

:func:`build_training_set` asks Feast for the feature values each entity row had at its own
timestamp and writes the training set as Parquet. Feast's file offline store loses rows without
saying so (see :mod:`mlrelay.features.frames`); this step counts every entity row in and out,
lists the ones that got no features, and fails or warns as the request's policy says.
:func:`materialize_features` loads feature values into the online store for serving.

Importing this package imports neither pandas nor Feast; the functions do, on first use
(Feast takes 7-9 s to import).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from mlrelay.errors import ConfigError, TrainingSetIncomplete
from mlrelay.features.spec import (
    ApplyPolicy,
    FeatureRequest,
    MaterializationResult,
    MaterializeRequest,
    TrainingSet,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ApplyPolicy",
    "FeatureRequest",
    "MaterializationResult",
    "MaterializeRequest",
    "TrainingSet",
    "build_training_set",
    "materialize_features",
]

logger = logging.getLogger("mlrelay.features")


def build_training_set(
    request: FeatureRequest, *, entity_df: pd.DataFrame | None = None
) -> TrainingSet:
    """Write the point-in-time-correct training set that ``request`` describes.

    The entity rows come from ``request.entity_source`` (a Parquet or CSV file, which is what
    an orchestrator can pass between tasks) or, in-process, from ``entity_df``; exactly one of
    the two. Every entity row keeps its other columns (labels, ids) and its place: the output is
    in the entity rows' order, duplicate (key, timestamp) rows included, each with its own
    labels (Feast itself keeps one of them). The timestamp column is written as UTC (naive
    timestamps are read as UTC, as Feast reads them).

    An entity row is *dropped*, left out of the output and listed in the result, when any of
    the requested feature views has no row for its key within the view's TTL before its
    timestamp. Feast's file store drops such rows when the key has older rows and returns them
    with null features when it has none; both cases count here. A feature row whose requested
    values are all null looks the same to the file store and counts as missing too.

    Everything is checked before Feast runs a query and before anything is written: the repo,
    the entity rows and their timestamp, join key and request-data columns and types, every
    feature view, feature and service name (against the registry), and the view's data files.
    A repo whose registry is empty gets its definitions applied first (``apply_definitions``).

    Raises:
        ConfigError: bad input, naming the field (``repo``, ``entity_source``, ``features``,
            ``feature_service``) and the reference at fault.
        TrainingSetIncomplete: rows were dropped and ``on_dropped="fail"``, or more than
            ``max_dropped_fraction`` of them; the training set has been written, and the
            exception's ``training_set`` describes it.
        MissingDependency: Feast is not installed (``mlrelay[feast]``).
    """
    from mlrelay.features import feast as backend
    from mlrelay.features import frames

    started = time.perf_counter()
    if entity_df is not None and request.entity_source:
        raise ConfigError(
            "give the entity rows either as entity_source or as entity_df, not both",
            field="entity_source",
        )
    if entity_df is None and not request.entity_source:
        raise ConfigError("required unless an entity_df is passed", field="entity_source")
    backend.repo_path(request.repo)
    entities = (
        entity_df if entity_df is not None else frames.read_entities(request.entity_source or "")
    )
    if request.timestamp_column not in entities.columns:
        raise ConfigError(
            f"entity rows have no timestamp column {request.timestamp_column!r}; they have "
            f"{list(entities.columns)} (set timestamp_column)",
            field="entity_source",
        )

    training_set = backend.build(request, entities, started=started)
    _report(request, training_set)
    return training_set


def _report(request: FeatureRequest, training_set: TrainingSet) -> None:
    t = training_set
    fraction = t.dropped_count / t.rows_in
    if not t.dropped_count:
        logger.info("training set of %d rows written to %s (%s)", t.rows_out, t.path, t.data_hash)
        return
    views = ", ".join(f"{view}: {n}" for view, n in t.dropped_by_view.items() if n)
    message = (
        f"{t.dropped_count} of {t.rows_in} entity rows ({fraction:.1%}) got no feature values "
        f"inside the views' TTL and were left out ({views}); {t.rows_out} rows written to {t.path}"
    )
    if request.on_dropped == "fail" or fraction > request.max_dropped_fraction:
        if request.on_dropped == "warn":
            message += f"; more than max_dropped_fraction={request.max_dropped_fraction:g}"
        raise TrainingSetIncomplete(message, training_set=training_set)
    logger.warning(message)


def materialize_features(request: MaterializeRequest) -> MaterializationResult:
    """Load feature values up to ``request.end`` into the online store, for serving.

    With ``start`` every named view is loaded over ``[start, end)``; without it, each view
    continues from where its last materialization ended, so a scheduled run loads only what is
    new and a retried run loads nothing twice (the view is reported as ``skipped``). A view
    never materialized starts at ``now - ttl``, as in Feast; when that lies after ``end`` (a
    backfill of old data) this is a ``ConfigError`` asking for ``start``, where Feast would load
    nothing and record the window as done.

    Raises:
        ConfigError: an unknown or offline view name (``feature_views``), a missing data file or
            repo (``repo``), an incremental window that would load nothing (``start``).
        MissingDependency: Feast is not installed (``mlrelay[feast]``).
    """
    from mlrelay.features import feast as backend

    result = backend.materialize(request)
    for view, (start, end) in result.intervals.items():
        logger.info("materialized %s from %s to %s", view, start.isoformat(), end.isoformat())
    return result
