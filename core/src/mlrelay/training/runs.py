"""The MLflow side of a training job, the same for every backend.

Lineage is written, not inferred: the run is created and tagged with the job, the backend and
the dataset (hash, URI, validation outcome) BEFORE the job starts, and handed to the job as
``MLFLOW_RUN_ID``. Whatever the trainer logs lands in that run, so the model it logs can always
be traced back to the data it was trained on. After the job, the run's metrics, parameters and
logged model are read back, and the run is ended with the job's outcome if the trainer did not
end it itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlrelay import _mlflow, lineage
from mlrelay.errors import ConfigError, MLRelayError, ServiceUnavailable
from mlrelay.settings import MLflowSettings
from mlrelay.training.spec import RunContext, RunIdentity, TrainingJob

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("mlrelay.training")

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

# MLflow error codes that mean "your input is wrong", as opposed to "the server is unwell".
_INPUT_ERRORS = {
    "INVALID_PARAMETER_VALUE",
    "INVALID_STATE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}


@dataclass(frozen=True)
class RunOutput:
    """What the trainer left in its run: final metric values, parameters, the logged model."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    model_uri: str | None = None
    dataset_hash: str | None = None


def lineage_tags(
    job: TrainingJob, backend: str, identity: RunIdentity | None = None
) -> dict[str, str]:
    """The run's tags: the job's own, then the lineage ``register_model`` copies to the version.

    The dataset hash and URI fall back to the validation report's (``data_hash``,
    ``data_source``), so a job built from a ``ValidationReport`` dump needs nothing else.
    """
    validation = job.validation or {}
    tags = dict(job.tags)
    tags[lineage.JOB_NAME] = job.name
    tags[lineage.BACKEND] = backend
    if identity is not None:
        tags[lineage.IDENTITY] = identity.key
    dataset_uri = job.dataset_uri or validation.get("data_source")
    dataset_hash = dataset_hash_of(job)
    if dataset_uri:
        tags[lineage.DATASET_URI] = str(dataset_uri)
    if dataset_hash:
        tags[lineage.DATASET_HASH] = dataset_hash
    if "success" in validation:
        tags[lineage.VALIDATION_SUCCESS] = str(bool(validation["success"])).lower()
    suite = validation.get("suite_name") or validation.get("suite")
    if suite:
        tags[lineage.VALIDATION_SUITE] = str(suite)
    if validation.get("statistics") is not None:
        tags[lineage.VALIDATION_STATS] = json.dumps(validation["statistics"], sort_keys=True)
    return tags


def dataset_hash_of(job: TrainingJob) -> str | None:
    """The hash of the data the job trains on: the job's own, else its validation report's."""
    found = job.dataset_hash or (job.validation or {}).get("data_hash")
    return str(found) if found else None


def start_run(
    client: MlflowClient,
    job: TrainingJob,
    backend: str,
    settings: MLflowSettings,
    identity: RunIdentity | None = None,
) -> RunContext:
    """Create the job's run (name = job name) in ``job.experiment``, tagged with its lineage.

    With an ``identity``, a run that an earlier try of the same task left RUNNING or FINISHED is
    resumed instead: its job may still be running (the worker was SIGKILLed) or may have
    succeeded (the worker died before reporting), and the backend adopts that job. A run that
    ended FAILED or KILLED is not resumed: a retry after a failure trains again.
    """
    try:
        experiment_id = _mlflow.ensure_experiment(client, job.experiment)
        found = _resumable(client, experiment_id, identity) if identity is not None else None
        if found is None:
            tags = lineage_tags(job, backend, identity)
            found = client.create_run(experiment_id, run_name=job.name, tags=tags)
            verb = "created"
        else:
            verb = "resumed"
    except Exception as exc:
        raise _translate(exc, settings, f"create the run of job {job.name!r}") from exc
    log.info(
        "%s MLflow run %s (experiment %r) at %s",
        verb,
        found.info.run_id,
        job.experiment,
        settings.display_uri,
    )
    return RunContext(
        run_id=found.info.run_id,
        experiment_id=experiment_id,
        experiment_name=job.experiment,
        tracking_uri=settings.training_tracking_uri or settings.tracking_uri or "",
        token=settings.token,
    )


def _resumable(client: MlflowClient, experiment_id: str, identity: RunIdentity) -> Any:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{lineage.IDENTITY}` = '{identity.key}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if runs and runs[0].info.status in ("RUNNING", "FINISHED", "SCHEDULED"):
        return runs[0]
    return None


def conclude(
    client: MlflowClient, run: RunContext, outcome: RunStatus, settings: MLflowSettings
) -> RunOutput:
    """End the run with the job's outcome, then read what the trainer left in it.

    A run the trainer left RUNNING gets ``outcome``. A job that failed or was stopped never
    leaves a run marked FINISHED, even if the trainer ended it so before failing: the registry
    step must not take a model from it. The model is looked up only for a successful job.

    MLflow 3 keeps logged models beside runs, not among their artifacts, so the model is found
    by its source run. If the trainer logged several, the newest READY one is the result.
    """
    try:
        found = client.get_run(run.run_id)
        current = found.info.status
        if current == "RUNNING" or (outcome != "FINISHED" and current == "FINISHED"):
            client.set_terminated(run.run_id, status=outcome)
        elif outcome == "FINISHED" and current != "FINISHED":
            log.warning("the job succeeded but its trainer ended run %s as %s", run.run_id, current)
        models = (
            []
            if outcome != "FINISHED"
            else client.search_logged_models(
                experiment_ids=[run.experiment_id],
                filter_string=f"source_run_id='{run.run_id}'",
                order_by=[{"field_name": "creation_timestamp", "ascending": False}],
            )
        )
    except Exception as exc:
        raise _translate(exc, settings, f"end run {run.run_id}") from exc
    ready = [m for m in models if str(getattr(m.status, "value", m.status)) == "READY"]
    if len(ready) > 1:
        log.info(
            "run %s logged %d models; using the newest, %s",
            run.run_id,
            len(ready),
            ready[0].model_id,
        )
    if outcome == "FINISHED" and not ready:
        log.warning("run %s logged no model (expected mlflow.<flavor>.log_model)", run.run_id)
    return RunOutput(
        metrics={k: float(v) for k, v in found.data.metrics.items()},
        params=dict(found.data.params),
        model_uri=ready[0].model_uri if ready else None,
        dataset_hash=found.data.tags.get(lineage.DATASET_HASH),
    )


def _translate(exc: Exception, settings: MLflowSettings, action: str) -> MLRelayError:
    """An MLflow (or HTTP) exception as ours: bad input -> ConfigError, else ServiceUnavailable."""
    if isinstance(exc, MLRelayError):
        return exc
    code: Any = getattr(exc, "error_code", None)
    detail = (
        str(getattr(exc, "message", exc)).splitlines()[0][:300] if str(exc) else type(exc).__name__
    )
    if code in _INPUT_ERRORS:
        return ConfigError(f"MLflow refused to {action}: {detail}", field="experiment")
    return ServiceUnavailable(f"could not {action}: {detail}", uri=settings.display_uri)
