"""Register a trained model as a version in the MLflow 3 Model Registry, once, under retry.

``create_model_version`` never de-duplicates, and the MLflow client replays a POST on
408/429/5xx, so one call can create two versions (FAULTS M1). Every version therefore carries
``mlrelay.registered_from = "<run_id>:<model_uri>"``, sent in the create request itself:
``register_model`` searches for it before creating, and after creating keeps the oldest live
version with it and deletes replayed duplicates, so concurrent retries agree on one version.

``mlflow`` is imported inside the functions (by ``_mlflow.client``): importing stays cheap.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlrelay import _mlflow, lineage
from mlrelay.errors import ConfigError, OperationTimeout, RegistrationFailed
from mlrelay.registry._boundary import NOT_FOUND, boundary, error_code, not_found_raises
from mlrelay.registry.gate import check_model_name, check_tags
from mlrelay.registry.spec import ModelVersionRef
from mlrelay.registry.trail import to_ref
from mlrelay.settings import MLflowSettings
from mlrelay.training.spec import TrainingResult

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger("mlrelay.registry")

READY, FAILED = "READY", "FAILED_REGISTRATION"
_LOGGED_MODEL_URI = re.compile(r"^models:/(m-[\w-]+)$")
_RUN_ID = re.compile(r"^[\w-]{1,64}$")
_FIRST_POLL, _MAX_POLL = 0.2, 5.0


def register_model(
    source: TrainingResult | Mapping[str, Any] | str,
    name: str,
    *,
    run_id: str | None = None,
    settings: MLflowSettings | None = None,
    tags: dict[str, str] | None = None,
    timeout: float = 300.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ModelVersionRef:
    """Register the model a training run logged as a version of ``name``, once.

    Registering the same run's model again (a retried task) returns the version made the first
    time and creates none; a version still pending is waited on again (M3: a retry resumes).
    The version carries the run's lineage tags (job, backend, dataset, validation), the run id,
    and the caller's ``tags``.

    Args:
        source: a ``TrainingResult`` (or its JSON), or a logged model URI ``models:/m-...``.
        name: the registered model, created if missing.
        run_id: the training run, when ``source`` is a URI (else read from the logged model).
        settings: how to reach MLflow; the environment by default.
        tags: extra version tags; keys starting with ``mlrelay.`` are reserved.
        timeout: seconds to wait for the version to leave ``PENDING_REGISTRATION``.
        clock: monotonic clock, injectable so waits are testable without sleeping.
        sleep: the sleep used between status polls.

    Raises:
        ConfigError: bad name, source, run or tags, before anything is created.
        RegistrationFailed: the version ended ``FAILED_REGISTRATION`` (``status_message`` says
            why) or the server refused to create it. No alias is touched.
        OperationTimeout: still pending after ``timeout``; a retry waits on the same version.
        ServiceUnavailable: the tracking server did not answer.
    """
    name = check_model_name(name)
    model_uri, run_id = _parse_source(source, run_id)
    caller_tags = check_tags(tags)
    if not timeout > 0:
        raise ConfigError("must be a positive number of seconds", field="timeout")
    settings = _mlflow.resolve(settings)
    started = time.perf_counter()

    with boundary(settings, f"registering {model_uri} as {name!r}", model_name=name):
        client = _mlflow.client(settings)
        run_id, storage = _check_logged_model(client, model_uri, run_id, settings)
        marker = f"{run_id}:{model_uri}"
        wanted = {
            **_run_lineage(client, run_id),
            **caller_tags,
            lineage.RUN_ID: run_id,
            lineage.REGISTERED_FROM: marker,
        }

        mv = _live_version(client, name, marker)
        if mv is not None:
            log.info(
                "%s v%s was registered from run %s before: reusing it", name, mv.version, run_id
            )
            mv = _ensure_tags(client, mv, wanted)
        else:
            source_arg = model_uri if _remote(settings) else storage
            mv = _create_version(client, name, source_arg, model_uri, run_id, wanted)
            mv = _live_version(client, name, marker, warn_failed=False) or mv
        mv = await_ready(client, mv, timeout=timeout, clock=clock, sleep=sleep)

    ref = to_ref(mv)
    elapsed = time.perf_counter() - started
    log.info(
        "registered %s v%s from run %s (%s) in %.2fs", name, ref.version, run_id, model_uri, elapsed
    )
    return ref


def await_ready(
    client: MlflowClient,
    mv: ModelVersion,
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ModelVersion:
    """Poll a version until ``READY``; ``FAILED_REGISTRATION`` and timeouts raise (M2, M3)."""
    deadline = clock() + timeout
    delay = _FIRST_POLL
    while not ready_or_raise(mv):
        left = deadline - clock()
        if left <= 0:
            raise OperationTimeout(
                f"{mv.name} v{mv.version} is still {mv.status}; no alias was touched and a retry "
                "waits on this same version",
                operation=f"registering {mv.name}",
                timeout=timeout,
            )
        sleep(min(delay, left))
        delay = min(delay * 2, _MAX_POLL)
        mv = client.get_model_version(mv.name, mv.version)
    return mv


def ready_or_raise(mv: ModelVersion) -> bool:
    """``True`` when ``READY``, ``False`` while pending; ``RegistrationFailed`` when it failed."""
    if mv.status == FAILED:
        raise RegistrationFailed(
            f"MLflow failed to register {mv.name} v{mv.version}: "
            f"{mv.status_message or 'no status message'}",
            model_name=mv.name,
            version=str(mv.version),
            status_message=mv.status_message,
        )
    return bool(mv.status == READY)


def _parse_source(
    source: TrainingResult | Mapping[str, Any] | str, run_id: str | None
) -> tuple[str, str | None]:
    """The logged model URI and run id, checked without calling MLflow."""
    if isinstance(source, Mapping):
        source = TrainingResult.model_validate(dict(source))
    if isinstance(source, TrainingResult):
        if source.model_uri is None:
            raise ConfigError(
                f"the training run {source.run_id} logged no model (model_uri is empty)",
                field="source.model_uri",
            )
        if run_id is not None and run_id != source.run_id:
            raise ConfigError(
                f"{run_id!r} differs from source.run_id {source.run_id!r}", field="run_id"
            )
        model_uri, run_id = source.model_uri, source.run_id
    elif isinstance(source, str):
        model_uri = source.strip()
    else:
        raise ConfigError(
            f"expected a TrainingResult or a models:/m-... URI, got {type(source).__name__}",
            field="source",
        )
    if not _LOGGED_MODEL_URI.match(model_uri):
        raise ConfigError(
            f"{model_uri!r} is not a logged model URI: give the models:/m-... URI that "
            "mlflow.<flavor>.log_model returned (model_info.model_uri)",
            field="source",
        )
    if run_id is not None and not _RUN_ID.match(run_id):
        raise ConfigError(f"{run_id!r} is not an MLflow run id", field="run_id")
    return model_uri, run_id


def _check_logged_model(
    client: MlflowClient, model_uri: str, run_id: str | None, settings: MLflowSettings
) -> tuple[str, str]:
    """The run id and artifact location of the logged model, once it is known to exist."""
    missing = ConfigError(f"no logged model {model_uri} on {settings.display_uri}", field="source")
    with not_found_raises(missing):
        logged = client.get_logged_model(model_uri.removeprefix("models:/"))
    logged_by = logged.source_run_id
    if run_id is not None and logged_by and logged_by != run_id:
        raise ConfigError(
            f"{model_uri} was logged by run {logged_by}, not by run {run_id}", field="run_id"
        )
    run_id = run_id or logged_by
    if not run_id:
        raise ConfigError(f"{model_uri} names no run: pass run_id= for lineage", field="run_id")
    return str(run_id), str(logged.artifact_location)


def _remote(settings: MLflowSettings) -> bool:
    """Whether the registry is a server (``http(s)``, ``databricks``) rather than an in-process store.

    An in-process store (``sqlite:``, ``postgresql:``, a file path) resolves a ``models:/m-...``
    source through MLflow's *global* tracking URI, not the client's (mlflow 3.17,
    ``SqlAlchemyStore.create_model_version``): with any other global it fails to find the model
    and leaves an empty ``mlflow.db`` in the working directory. There the version is created from
    the logged model's artifact location instead, which is where a server would point it too.
    """
    uri = settings.registry_uri or settings.tracking_uri or ""
    return urlsplit(uri).scheme in ("http", "https") or uri.startswith("databricks")


def _run_lineage(client: MlflowClient, run_id: str) -> dict[str, str]:
    with not_found_raises(ConfigError(f"no MLflow run {run_id}", field="run_id")):
        run = client.get_run(run_id)
    tags = run.data.tags
    return {key: tags[key] for key in lineage.RUN_TAGS_TO_VERSION if key in tags}


def _versions_from(client: MlflowClient, name: str, marker: str) -> list[ModelVersion]:
    """Every version of ``name`` registered from ``marker`` (deleted ones excluded), oldest first."""
    # Names, run ids and model URIs were checked to hold no quotes: safe to quote here.
    query = f"name = '{name}' and tags.`{lineage.REGISTERED_FROM}` = '{marker}'"
    try:
        found = list(client.search_model_versions(query, max_results=100))
    except Exception as exc:
        # A registry without tag search: narrow by run, then filter here.
        if error_code(exc) != "INVALID_PARAMETER_VALUE":
            raise
        run_id = marker.split(":", 1)[0]
        found = list(client.search_model_versions(f"run_id = '{run_id}'", max_results=1000))
    found = [v for v in found if v.name == name and v.tags.get(lineage.REGISTERED_FROM) == marker]
    return sorted(found, key=lambda v: int(v.version))


def _live_version(
    client: MlflowClient, name: str, marker: str, *, warn_failed: bool = True
) -> ModelVersion | None:
    """The oldest version from ``marker`` that did not fail; newer live duplicates are deleted.

    Duplicates come from a create request the client replayed after a lost response, or from a
    concurrent retry: every caller keeps the oldest, so all of them agree on one version.
    """
    versions = _versions_from(client, name, marker)
    live = [v for v in versions if v.status != FAILED]
    for failed in (v for v in versions if v.status == FAILED and warn_failed):
        log.warning(
            "%s v%s from the same run failed registration (%s): registering again",
            name,
            failed.version,
            failed.status_message or "no message",
        )
    if not live:
        return None
    keep, duplicates = live[0], live[1:]
    for dup in duplicates:
        if client.get_model_version(name, dup.version).aliases:
            continue  # never delete what someone already serves
        log.warning(
            "%s v%s duplicates v%s (a replayed create): deleting it",
            name,
            dup.version,
            keep.version,
        )
        try:
            client.delete_model_version(name, dup.version)
        except Exception as exc:
            if error_code(exc) not in NOT_FOUND:  # a concurrent caller deleted it first
                raise
    return keep


def _create_version(
    client: MlflowClient, name: str, source: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> ModelVersion:
    try:
        client.create_registered_model(name)
        log.info("created registered model %r", name)
    except Exception as exc:
        if error_code(exc) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    # await_creation_for=0: this module waits itself, with its own clock and timeout.
    return client.create_model_version(
        name,
        source,
        run_id=run_id,
        tags=tags,
        await_creation_for=0,
        model_id=model_uri.removeprefix("models:/"),
    )


def _ensure_tags(client: MlflowClient, mv: ModelVersion, wanted: dict[str, str]) -> ModelVersion:
    """Bring a reused version's tags up to date (a retry may pass new caller tags)."""
    for key, value in wanted.items():
        if mv.tags.get(key) != value:
            client.set_model_version_tag(mv.name, mv.version, key, value)
    # Search results may lack aliases: read the version itself once.
    return client.get_model_version(mv.name, mv.version)
