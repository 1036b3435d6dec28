"""The Feast backend of the features step: the only module of mlrelay that imports ``feast``.

It opens the repository (applying its definitions when the policy says so), checks the request
against the registry (:mod:`mlrelay.features.plan`) and the views' data files before Feast runs
a query, and computes materialization windows itself so that they can be checked and reported.
Feast's own exceptions are translated where they are caught, with the original chained.

Importing feast takes seconds (7-9 s measured), so nothing here imports it at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlrelay._deps import require
from mlrelay.errors import ConfigError
from mlrelay.features import frames
from mlrelay.features.plan import check_columns, resolve
from mlrelay.features.spec import (
    ApplyPolicy,
    FeatureRequest,
    MaterializationResult,
    MaterializeRequest,
    TrainingSet,
)

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

logger = logging.getLogger("mlrelay.features")

MAX_DROPPED_ROWS = 100
"""How many dropped entity rows a TrainingSet lists (all of them are counted)."""

_LOAD_LOCK = threading.Lock()  # loading definitions touches sys.path and sys.modules


def _feast() -> ModuleType:
    return require("feast", "feast")


# -- the repository ------------------------------------------------------------------------


def repo_path(repo: str) -> Path:
    """The absolute repo folder, checked to hold a ``feature_store.yaml`` (cheap: no Feast)."""
    path = Path(repo).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"{repo}: no such directory", field="repo")
    if not (path / "feature_store.yaml").is_file():
        raise ConfigError(f"{repo}: no feature_store.yaml, so not a Feast repository", field="repo")
    return path


def open_store(repo: str, apply: ApplyPolicy) -> FeatureStore:
    """Open the repo's feature store, applying its definitions when ``apply`` says so."""
    path = repo_path(repo)
    feast = _feast()
    try:
        store = feast.FeatureStore(repo_path=str(path))
    except Exception as exc:  # yaml, pydantic and Feast each raise their own types here
        raise ConfigError(
            f"{path / 'feature_store.yaml'}: not a usable Feast configuration ({exc})", field="repo"
        ) from exc
    if apply == "always" or (apply == "if_empty" and _registry_is_empty(store)):
        apply_definitions(store, path)
    return store


def _registry_is_empty(store: FeatureStore) -> bool:
    return not (
        store.list_feature_views()
        or store.list_on_demand_feature_views()
        or store.list_feature_services()
    )


def apply_definitions(store: FeatureStore, path: Path) -> None:
    """Do what ``feast apply`` does, in this process: register every object the repo defines.

    Measured on the example: about 0.1 s, loading the files included (``store.apply`` alone:
    40 ms into a new registry, 5 ms when nothing changed). Objects removed from the files are
    not deleted from the registry (``feast apply`` would).
    """
    started = time.perf_counter()
    objects = _load_definitions(path)
    if not objects:
        raise ConfigError(f"{path}: its Python files define no Feast objects", field="repo")
    try:
        store.apply(objects)
    except Exception as exc:  # Feast validates views, sources and inferred types on apply
        raise ConfigError(f"{path}: Feast refused its definitions ({exc})", field="repo") from exc
    logger.info(
        "applied %d Feast definitions from %s in %.2fs",
        len(objects),
        path,
        time.perf_counter() - started,
    )


def _load_definitions(path: Path) -> list[Any]:
    """Every Feast object defined at the top level of the repo's Python files.

    Feast's CLI imports the files as modules named after their path from the working
    directory, which needs ``chdir``; that is process-wide and unsafe in a threaded worker.
    Here each file runs under a module name unique to its absolute path, so two copies of one
    repo in the same process never see each other's objects.
    """
    feast = _feast()
    from feast.base_feature_view import BaseFeatureView
    from feast.data_source import DataSource
    from feast.repo_operations import get_repo_files

    kinds = (feast.Entity, BaseFeatureView, feast.FeatureService, DataSource)
    found: list[Any] = []
    with _LOAD_LOCK, _repo_importable(path):
        for file in get_repo_files(path):
            module = _run_file(path, file)
            for value in vars(module).values():
                if isinstance(value, kinds) and not any(value is seen for seen in found):
                    found.append(value)
    return found


def _run_file(root: Path, file: Path) -> ModuleType:
    name = "_mlrelay_feast_repo_" + hashlib.sha256(str(file).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{file}: cannot be loaded as Python", field="repo")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(
            f"{file.relative_to(root)} in {root} failed to load: {type(exc).__name__}: {exc}",
            field="repo",
        ) from exc
    return module


@contextlib.contextmanager
def _repo_importable(path: Path) -> Iterator[None]:
    """Let the repo's files import each other, as under ``feast apply``, and leave no trace."""
    before = set(sys.modules)
    bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ in the repo (it may be read-only)
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        sys.path.remove(str(path))
        sys.dont_write_bytecode = bytecode
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if name.startswith("_mlrelay_feast_repo_") or Path(origin).is_relative_to(path):
                del sys.modules[name]


def _check_sources(store: FeatureStore, views: list[Any]) -> None:
    """A view whose local Parquet file is missing fails here, naming the file."""
    from feast.infra.offline_stores.file_source import FileSource

    for view in views:
        source = view.batch_source
        if not isinstance(source, FileSource):
            continue
        uri = FileSource.get_uri_for_file_path(store.repo_path, source.path)
        parsed = urlparse(uri)
        local = Path(parsed.path) if parsed.scheme == "file" else Path(uri)
        if parsed.scheme in ("", "file") and not local.exists():
            raise ConfigError(
                f"feature view {view.name!r} reads {local}, which does not exist", field="repo"
            )


# -- training sets -------------------------------------------------------------------------


def build(request: FeatureRequest, entities: pd.DataFrame, *, started: float) -> TrainingSet:
    """Build and write the training set (``started`` is when the step began, for its duration).

    ``entities`` has been read but not yet checked against the registry; nothing is written
    before every check has passed.
    """
    ts = request.timestamp_column
    store = open_store(request.repo, request.apply_definitions)
    plan = resolve(store, request)
    entities = frames.check_entities(
        entities, keys=plan.keys, timestamp=ts, extra=plan.request_fields, field="entity_source"
    )
    on = [*plan.keys, ts, *plan.request_fields]
    check_columns(entities, plan, on=on, full_names=request.full_feature_names)
    _check_sources(store, plan.views)

    feast = _feast()
    features: Any = (
        store.get_feature_service(request.feature_service)
        if request.feature_service
        else list(request.features)
    )
    asked = frames.request_frame(entities, on=on, timestamp=ts)
    try:
        served = store.get_historical_features(
            entity_df=asked, features=features, full_feature_names=request.full_feature_names
        ).to_df()
    except feast.errors.FeastError as exc:
        raise ConfigError(f"Feast refused the request: {exc}", field="features") from exc
    except (OSError, ValueError, TypeError, KeyError) as exc:  # the offline store's data
        raise ConfigError(
            f"Feast could not read or join the feature data of {store.repo_path}: "
            f"{type(exc).__name__}: {exc}",
            field="repo",
        ) from exc
    logger.debug("Feast served %d of %d distinct entity rows", len(served), len(asked))

    kept, dropped, by_view = frames.join_back(
        entities, served, on=on, timestamp=ts, view_columns=plan.view_columns
    )
    path = frames.write_parquet(kept, request.output)
    return TrainingSet(
        path=str(path),
        rows_in=len(entities),
        rows_out=len(kept),
        dropped_count=len(dropped),
        dropped=frames.json_rows(dropped, columns=[*plan.keys, ts], limit=MAX_DROPPED_ROWS),
        dropped_by_view=by_view,
        columns=[str(c) for c in kept.columns],
        features=plan.refs,
        data_hash=frames.content_hash(kept),
        duration_seconds=round(time.perf_counter() - started, 3),
    )


# -- materialization -----------------------------------------------------------------------


def materialize(
    request: MaterializeRequest, *, now: datetime | None = None
) -> MaterializationResult:
    """Load the views' feature rows in their windows into the online store.

    The windows are computed here, the way ``materialize_incremental`` computes them, so they
    can be checked and reported: Feast itself runs an inverted window (a first incremental run
    whose ``now - ttl`` lies after ``end``) without loading a row and records it as done.
    """
    started = time.perf_counter()
    store = open_store(request.repo, request.apply_definitions)
    views = {v.name: v for v in store.list_feature_views()}
    if request.feature_views is None:
        names = [n for n, v in views.items() if v.online and getattr(v, "enabled", True)]
    else:
        names = list(dict.fromkeys(request.feature_views))
        unknown = [n for n in names if n not in views]
        if unknown:
            raise ConfigError(
                f"no feature view(s) {unknown} in project {store.project!r}; it has "
                f"{sorted(views)}",
                field="feature_views",
            )
        offline = [n for n in names if not views[n].online]
        if offline:
            raise ConfigError(
                f"view(s) {offline} are not online (online=False)", field="feature_views"
            )

    now = now or datetime.now(UTC)
    windows: dict[str, tuple[datetime, datetime]] = {}
    skipped: list[str] = []
    for name in names:
        start = request.start or _incremental_start(views[name], request.end, now)
        if start >= request.end:
            skipped.append(name)  # loaded up to `end` already: a retried run has nothing to do
        else:
            windows[name] = (start, request.end)
    _check_sources(store, [views[n] for n in windows])

    feast = _feast()
    for name, (start, end) in windows.items():
        try:
            # Feast prints coloured progress to stdout (not a logger): keep it out of task logs.
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                store.materialize(start_date=start, end_date=end, feature_views=[name])
            logger.debug("feast: %s", printed.getvalue().strip())
        except feast.errors.FeastError as exc:
            raise ConfigError(
                f"Feast refused to materialize {name!r}: {exc}", field="feature_views"
            ) from exc
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"materializing {name!r} failed reading its data: {type(exc).__name__}: {exc}",
                field="repo",
            ) from exc
    if skipped:
        logger.info("already materialized up to %s: %s", request.end.isoformat(), skipped)
    return MaterializationResult(
        feature_views=list(windows),
        start=request.start,
        end=request.end,
        intervals=windows,
        skipped=skipped,
        duration_seconds=round(time.perf_counter() - started, 3),
    )


def _incremental_start(view: Any, end: datetime, now: datetime) -> datetime:
    """Where ``materialize_incremental`` would start this view (Feast 0.67's rule)."""
    last: datetime | None = view.most_recent_end_time
    if last is not None:
        return last if last.tzinfo else last.replace(tzinfo=UTC)
    if view.ttl is None:
        raise ConfigError(
            f"view {view.name!r} was never materialized and has no ttl: give 'start'", field="start"
        )
    start: datetime = now - (view.ttl if view.ttl.total_seconds() > 0 else timedelta(weeks=52))
    if start >= end:
        raise ConfigError(
            f"view {view.name!r} was never materialized, so an incremental run would start at "
            f"now - ttl = {start.isoformat()}, after end {end.isoformat()}, and load nothing; "
            "give 'start' to load the history",
            field="start",
        )
    return start
