"""What every mlrelay asset does with its Dagster context: identity, partitions, failures.

The one rule that is Dagster-specific is the run identity. A step retried inside its run keeps
the run id, but a run that Dagster retries (the run worker died: FAULTS O2) or that a user
re-executes from failure is a NEW run whose ``root_run_id`` names the original. The identity
therefore uses the root run id: the retried model asset finds the MLflow run and the training
job the first attempt started and adopts them, where ``dagster-k8s`` starts a second job.
A re-execution of a model asset that already trained returns that training's result; a fresh
run (a new materialization) trains again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from dagster_mlrelay import _metadata
from mlrelay.errors import (
    ConfigError,
    DataValidationError,
    DeploymentFailed,
    MLRelayError,
    ModelRejected,
    TrainingFailed,
    TrainingSetIncomplete,
)
from mlrelay.training.spec import RunIdentity

# Failing again cannot help: the input or the decision is wrong, not the weather.
_FINAL = (ConfigError, DataValidationError, ModelRejected, TrainingSetIncomplete)

AssetKeyLike = str | dg.AssetKey | dg.AssetsDefinition


def asset_key(value: AssetKeyLike) -> dg.AssetKey:
    """The key of an asset given as a name, a key or its definition."""
    if isinstance(value, dg.AssetsDefinition):
        return value.key
    return dg.AssetKey.from_coercible(value)


def run_identity(context: dg.AssetExecutionContext) -> RunIdentity:
    """Who asks for a training job: the run lineage, the asset and its partition (O2, O3)."""
    run = context.run
    return RunIdentity(
        orchestrator="dagster",
        run_id=run.root_run_id or run.run_id,
        task_id=context.asset_key.to_user_string(),
        map_index=context.partition_key if context.has_partition_key else None,
        try_number=context.retry_number + 1,
    )


def dagster_tags(context: dg.AssetExecutionContext) -> dict[str, str]:
    """Tags for the MLflow run that point back at the Dagster run and asset."""
    tags = {
        "dagster.run_id": context.run.run_id,
        "dagster.asset_key": context.asset_key.to_user_string(),
    }
    if context.has_partition_key:
        tags["dagster.partition_key"] = context.partition_key
    return tags


def time_window(
    context: dg.AssetExecutionContext, lookback: timedelta | None = None
) -> tuple[datetime, datetime] | None:
    """The partition's time window, its start moved back by ``lookback``; None if unpartitioned.

    A daily partition that trains on the last 30 days reads ``[end - 30 days, end)``.
    """
    if not context.has_partition_key:
        return None
    try:
        window = context.partition_time_window
    except dg.DagsterInvariantViolationError as exc:
        raise ConfigError(
            "the asset's partitions are not time windows (use a Daily/Weekly/... "
            "PartitionsDefinition)",
            field="partitions_def",
        ) from exc
    start = window.end - lookback if lookback is not None else window.start
    return start, window.end


@contextlib.contextmanager
def failures_as_dagster(**context_metadata: Any) -> Iterator[None]:
    """Turn the core's errors into ``dg.Failure`` carrying their data as metadata.

    The core's exception stays chained (``__cause__``), so the traceback shows it. Errors that
    a retry cannot fix (bad input, a failed suite, a rejected model) forbid the asset's retry
    policy from retrying. Orchestrator interrupts (``DagsterExecutionInterruptedError``) are
    BaseExceptions and pass through untouched, after the core has cleaned up.
    """
    try:
        yield
    except MLRelayError as exc:
        metadata = {**context_metadata, **_error_metadata(exc)}
        raise dg.Failure(
            description=str(exc),
            metadata={k: v for k, v in metadata.items() if v is not None},
            allow_retries=not isinstance(exc, _FINAL),
        ) from exc


def _error_metadata(exc: MLRelayError) -> Mapping[str, Any]:
    meta: dict[str, Any] = {"error": dg.MetadataValue.text(type(exc).__name__)}
    if isinstance(exc, ConfigError) and exc.field:
        meta["field"] = dg.MetadataValue.text(exc.field)
    if isinstance(exc, TrainingFailed):
        meta["reason"] = dg.MetadataValue.text(exc.reason)
        meta["job_name"] = dg.MetadataValue.text(exc.job_name)
        if exc.exit_code is not None:
            meta["exit_code"] = dg.MetadataValue.int(exc.exit_code)
        if exc.run_id:
            meta["run_id"] = dg.MetadataValue.text(exc.run_id)
        if exc.logs:
            meta["logs"] = _metadata.text_block("\n".join(exc.logs))
    if isinstance(exc, ModelRejected):
        meta["decision"] = dg.MetadataValue.json(exc.decision.model_dump(mode="json"))
    if isinstance(exc, DeploymentFailed):
        meta["reason"] = dg.MetadataValue.text(exc.reason)
        meta["rolled_back"] = dg.MetadataValue.bool(exc.rolled_back)
        if exc.failure_info:
            meta["failure_info"] = dg.MetadataValue.json(exc.failure_info)
    if isinstance(exc, DataValidationError):
        meta.update(_metadata.validation(exc.report))
    return meta
