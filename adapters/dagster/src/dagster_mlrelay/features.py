"""Feast as assets: a point-in-time-correct training set, and the online store kept loaded.

Both fit Dagster's time partitions. A daily partitioned training set holds the entity rows of
a trailing window ending with the partition's day (``lookback``), so a backfill rebuilds the
training set each past model saw, and a daily online-store asset loads one day of features
per partition; a retried or re-run partition loads nothing twice.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from dagster_mlrelay._runtime import AssetKeyLike, asset_key, failures_as_dagster, time_window
from dagster_mlrelay.resources import FeastResource
from mlrelay.features.spec import FeatureRequest, MaterializationResult, TrainingSet

__all__ = ["build_feature_materialization_asset", "build_training_set_asset"]


def build_training_set_asset(
    name: str,
    *,
    entities: AssetKeyLike,
    feature_service: str | None = None,
    features: Sequence[str] = (),
    output_dir: str | Path | None = None,
    timestamp_column: str = "event_timestamp",
    lookback: timedelta | None = None,
    on_dropped: Literal["fail", "warn"] = "warn",
    max_dropped_fraction: float = 1.0,
    partitions_def: dg.PartitionsDefinition | None = None,
    group_name: str | None = None,
    description: str | None = None,
) -> dg.AssetsDefinition:
    """An asset that writes a training set (Parquet) from Feast; its value is the ``TrainingSet``.

    Args:
        name: the asset's name.
        entities: the asset whose value holds the entity rows (keys, event time, labels): a
            pandas DataFrame or the path of a CSV/Parquet file.
        feature_service / features: what to fetch: a Feast feature service, or references
            ``"view:feature"`` (exactly one of the two).
        output_dir: where training sets are written, one file per partition; by default
            ``$MLRELAY_HOME/training_sets/<name>``.
        lookback: with time partitions, the window of entity rows ending at the partition's
            end (30 days: each day's training set holds the last 30 days); by default the
            partition itself.
        on_dropped / max_dropped_fraction: what to do about entity rows Feast has no features
            for (see ``FeatureRequest``).
        partitions_def: e.g. ``dg.DailyPartitionsDefinition(...)``; the entity rows are cut to
            each partition's window.

    Requires the ``feast`` resource (``FeastResource``).
    """
    # Checked now, when the definitions load, rather than when the first run fails.
    FeatureRequest(
        repo=".",
        output="x.parquet",
        feature_service=feature_service,
        features=list(features),
        on_dropped=on_dropped,
        max_dropped_fraction=max_dropped_fraction,
    )

    @dg.asset(
        name=name,
        ins={"entities": dg.AssetIn(key=asset_key(entities))},
        partitions_def=partitions_def,
        required_resource_keys={"feast"},
        group_name=group_name,
        kinds={"feast", "parquet"},
        description=description or "Point-in-time-correct training set from Feast.",
    )
    def training_set_asset(
        context: dg.AssetExecutionContext, entities: Any
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        from mlrelay.features import build_training_set
        from mlrelay.settings import LocalSettings

        feast: FeastResource = context.resources.feast
        base = (
            Path(output_dir)
            if output_dir is not None
            else LocalSettings().home / "training_sets" / name
        )
        stem = context.partition_key if context.has_partition_key else name
        window = time_window(context, lookback)
        with failures_as_dagster():
            request = FeatureRequest(
                **feast.request_fields(),
                feature_service=feature_service,
                features=list(features),
                output=str((base / f"{stem}.parquet").resolve()),
                timestamp_column=timestamp_column,
                on_dropped=on_dropped,
                max_dropped_fraction=max_dropped_fraction,
            )
            Path(request.output).parent.mkdir(parents=True, exist_ok=True)
            if window is None and not _is_frame(entities):
                tset = build_training_set(
                    request.model_copy(update={"entity_source": str(entities)})
                )
            else:
                frame = _entity_rows(entities, timestamp_column, window)
                tset = build_training_set(request, entity_df=frame)
        context.log.info(
            f"training set of {tset.rows_out} rows written to {tset.path}; "
            f"{tset.dropped_count} entity rows got no features"
        )
        return dg.MaterializeResult(
            value=tset.model_dump(mode="json"), metadata=_training_set_metadata(tset, window)
        )

    return training_set_asset


def build_feature_materialization_asset(
    name: str,
    *,
    deps: Sequence[AssetKeyLike] = (),
    feature_views: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    lookback: timedelta | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    group_name: str | None = None,
    description: str | None = None,
) -> dg.AssetsDefinition:
    """An asset that loads feature values into the online store, for serving.

    Args:
        name: the asset's name (it stands for the online store's contents).
        deps: the assets that write the feature views' source data.
        feature_views: the views to load; all of them by default.
        start / end: the event-time window of an unpartitioned asset: ``end`` defaults to now;
            without ``start`` each view continues from where its last load ended.
        lookback: with time partitions, load ``[partition end - lookback, partition end)``
            instead of the partition's own window.
        partitions_def: time partitions; each partition loads its window.

    Requires the ``feast`` resource (``FeastResource``).
    """

    @dg.asset(
        name=name,
        deps=[asset_key(d) for d in deps],
        partitions_def=partitions_def,
        required_resource_keys={"feast"},
        group_name=group_name,
        kinds={"feast"},
        description=description or "Feature values loaded into the Feast online store.",
    )
    def online_features_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:  # type: ignore[type-arg]
        from mlrelay.features import materialize_features
        from mlrelay.features.spec import MaterializeRequest

        feast: FeastResource = context.resources.feast
        with failures_as_dagster():
            window = time_window(context, lookback) or (start, end or datetime.now(UTC))
            result = materialize_features(
                MaterializeRequest(
                    **feast.request_fields(),
                    start=window[0],
                    end=window[1],
                    feature_views=list(feature_views) if feature_views is not None else None,
                )
            )
        return dg.MaterializeResult(
            value=result.model_dump(mode="json"), metadata=_materialization_metadata(result)
        )

    return online_features_asset


def _is_frame(value: Any) -> bool:
    import sys

    pandas = sys.modules.get("pandas")  # a DataFrame exists only once pandas is imported
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _entity_rows(entities: Any, column: str, window: tuple[datetime, datetime] | None) -> Any:
    """The entity rows as a DataFrame, cut to ``[start, end)`` of the partition's window."""
    import pandas as pd

    from mlrelay.features import frames

    frame = entities if _is_frame(entities) else frames.read_entities(str(entities))
    if window is None:
        return frame
    if column not in frame.columns:
        from mlrelay.errors import ConfigError

        raise ConfigError(f"entity rows have no column {column!r}", field="timestamp_column")
    stamps = pd.to_datetime(frame[column], utc=True)
    start, end = (pd.Timestamp(t).tz_convert("UTC") for t in window)
    return frame[(stamps >= start) & (stamps < end)].reset_index(drop=True)


def _training_set_metadata(
    tset: TrainingSet, window: tuple[datetime, datetime] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "parquet_path": dg.MetadataValue.path(tset.path),
        "dagster/row_count": dg.MetadataValue.int(tset.rows_out),
        "rows_in": dg.MetadataValue.int(tset.rows_in),
        "dropped_count": dg.MetadataValue.int(tset.dropped_count),
        "data_hash": dg.MetadataValue.text(tset.data_hash),
        "features": dg.MetadataValue.json(tset.features),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(c) for c in tset.columns]),
    }
    if tset.dropped_by_view:
        metadata["dropped_by_view"] = dg.MetadataValue.json(tset.dropped_by_view)
    if window is not None:
        metadata["window_start"] = dg.MetadataValue.timestamp(window[0])
        metadata["window_end"] = dg.MetadataValue.timestamp(window[1])
    return metadata


def _materialization_metadata(result: MaterializationResult) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "feature_views": dg.MetadataValue.json(result.feature_views),
        "skipped": dg.MetadataValue.json(result.skipped),
        "end": dg.MetadataValue.timestamp(result.end),
        "duration_seconds": dg.MetadataValue.float(result.duration_seconds),
    }
    if result.intervals:
        metadata["intervals"] = dg.MetadataValue.json(
            {view: [s.isoformat(), e.isoformat()] for view, (s, e) in result.intervals.items()}
        )
    return metadata
