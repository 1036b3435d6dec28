"""Read registry entries back: a version by number or alias, and its lineage trail.

The trail goes version -> run -> job -> dataset -> validation -> promotion decisions, and all
of it comes from tags written when each step ran (``mlrelay.lineage``): the version's own tags
first, the run's tags for versions registered by something other than ``register_model``.
Nothing is inferred from names or timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlrelay import _mlflow, lineage
from mlrelay.errors import ConfigError
from mlrelay.registry._boundary import NOT_FOUND, boundary, error_code, not_found_raises
from mlrelay.registry.gate import check_alias, check_model_name
from mlrelay.registry.spec import ModelVersionRef
from mlrelay.settings import MLflowSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def get_version(
    name: str, version_or_alias: str | int, *, settings: MLflowSettings | None = None
) -> ModelVersionRef:
    """A registered version by number (``3``, ``"3"``) or alias (``"champion"``, ``"@champion"``).

    Raises:
        ConfigError: unknown model, version or alias.
        ServiceUnavailable: the tracking server did not answer.
    """
    with _reading("reading", name, version_or_alias, settings) as (_, mv):
        return to_ref(mv)


def lineage_of(
    name: str, version_or_alias: str | int, *, settings: MLflowSettings | None = None
) -> dict[str, Any]:
    """The lineage of one model version, as plain JSON-ready data.

    Args:
        name: the registered model.
        version_or_alias: a version number (``3``, ``"3"``) or an alias (``"champion"``,
            ``"@champion"``).
        settings: how to reach MLflow; the environment by default.

    Returns:
        ``{"model", "run", "job", "dataset", "validation", "promotions"}``::

            model:      {"name", "version", "uri", "aliases", "status", "source", "run_id",
                         "created_at", "tags"}   # "tags": the version tags outside mlrelay.*
            run:        {"id", "name", "status", "experiment_id", "started_at", "ended_at",
                         "metrics", "params"}, or None when the run is gone or not recorded
            job:        {"name", "backend"}
            dataset:    {"uri", "hash"}
            validation: {"success": bool | None, "suite", "statistics": dict | str | None}
            promotions: {alias: decision}   # the JSON ``promote`` recorded: the
                         PromotionDecision fields plus "gate" and "decided_at"

        Values never recorded are ``None``; timestamps are ISO 8601 in UTC.

    Raises:
        ConfigError: unknown model, version or alias.
        ServiceUnavailable: the tracking server did not answer.
    """
    with _reading("reading the lineage of", name, version_or_alias, settings) as (client, mv):
        run = _run(client, mv.run_id)

    version_tags: dict[str, str] = dict(mv.tags or {})
    run_tags: dict[str, str] = dict(run.data.tags) if run is not None else {}

    def tag(key: str) -> str | None:
        return version_tags.get(key, run_tags.get(key))

    return {
        "model": {
            "name": mv.name,
            "version": str(mv.version),
            "uri": f"models:/{mv.name}/{mv.version}",
            "aliases": sorted(mv.aliases or []),
            "status": mv.status,
            "source": mv.source,
            "run_id": mv.run_id,
            "created_at": _iso(mv.creation_timestamp),
            "tags": {k: v for k, v in version_tags.items() if not k.startswith(lineage.PREFIX)},
        },
        "run": None if run is None else _run_summary(run),
        "job": {"name": tag(lineage.JOB_NAME), "backend": tag(lineage.BACKEND)},
        "dataset": {"uri": tag(lineage.DATASET_URI), "hash": tag(lineage.DATASET_HASH)},
        "validation": {
            "success": _bool(tag(lineage.VALIDATION_SUCCESS)),
            "suite": tag(lineage.VALIDATION_SUITE),
            "statistics": _json(tag(lineage.VALIDATION_STATS)),
        },
        "promotions": {
            key.removeprefix(lineage.PROMOTION_PREFIX): _json(value)
            for key, value in sorted(version_tags.items())
            if key.startswith(lineage.PROMOTION_PREFIX)
        },
    }


@contextmanager
def _reading(
    action: str, name: str, version_or_alias: str | int, settings: MLflowSettings | None
) -> Iterator[tuple[MlflowClient, ModelVersion]]:
    """A client and the version asked for, inside the MLflow boundary for the caller's block."""
    name = check_model_name(name)
    settings = _mlflow.resolve(settings)
    with boundary(settings, f"{action} {name} {version_or_alias}"):
        client = _mlflow.client(settings)
        yield client, find_version(client, name, version_or_alias, settings)


def find_version(
    client: MlflowClient, name: str, version_or_alias: str | int, settings: MLflowSettings
) -> ModelVersion:
    """Resolve a version number or an alias; absent is a ``ConfigError``."""
    key = str(version_or_alias).strip().removeprefix("@")
    if key.isdigit():
        return get_model_version(client, name, key, settings)
    alias = check_alias(key, field="version_or_alias")
    mv = alias_holder(client, name, alias)
    if mv is None:
        raise ConfigError(f"no version of {name!r} holds @{alias}", field="version_or_alias")
    return mv


def get_model_version(
    client: MlflowClient, name: str, version: str, settings: MLflowSettings
) -> ModelVersion:
    """One version, with its aliases (search results may lack them); absent is a ``ConfigError``."""
    missing = ConfigError(
        f"{name} v{version} is not in the registry at {settings.display_uri}", field="version"
    )
    with not_found_raises(missing):
        return client.get_model_version(name, version)


def alias_holder(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``, or ``None`` when no version does."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        # MLflow reports a missing alias as INVALID_PARAMETER_VALUE, like a malformed request:
        # only the registered model's alias table tells the two apart.
        if error_code(exc) is None or alias_holder_version(client, name, alias) is not None:
            raise
        return None


def alias_holder_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version number holding ``alias`` (one request, for re-reads and verification)."""
    version = (client.get_registered_model(name).aliases or {}).get(alias)
    return None if version is None else str(version)


def to_ref(mv: ModelVersion) -> ModelVersionRef:
    """The JSON-ready reference; ``source`` is the logged model URI whatever the store kept."""
    tags = dict(mv.tags or {})
    registered_from = tags.get(lineage.REGISTERED_FROM, "")
    return ModelVersionRef(
        name=mv.name,
        version=str(mv.version),
        source=registered_from.partition(":")[2] or mv.source,
        run_id=mv.run_id,
        status=mv.status,
        aliases=list(mv.aliases or []),
        tags=tags,
    )


def _run(client: MlflowClient, run_id: str | None) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if error_code(exc) not in NOT_FOUND:
            raise
        return None  # the run was deleted: the version's copied tags still tell the story


def _run_summary(run: Any) -> dict[str, Any]:
    info, data = run.info, run.data
    return {
        "id": info.run_id,
        "name": info.run_name,
        "status": info.status,
        "experiment_id": info.experiment_id,
        "started_at": _iso(info.start_time),
        "ended_at": _iso(info.end_time),
        "metrics": dict(data.metrics),
        "params": dict(data.params),
    }


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("true", "1", "yes")


def _json(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value  # recorded as plain text: show it as it is
