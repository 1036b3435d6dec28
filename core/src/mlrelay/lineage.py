"""The tags that tie an endpoint to its model version, run, job and dataset.

Lineage is written when each step runs, never inferred afterwards: the training run is tagged
before the job starts, the model version copies those tags when it is registered, and a
deployment records the version it serves. ``mlrelay lineage`` reads the trail back.
"""

from __future__ import annotations

PREFIX = "mlrelay."

JOB_NAME = "mlrelay.job_name"
BACKEND = "mlrelay.backend"
DATASET_URI = "mlrelay.dataset_uri"
DATASET_HASH = "mlrelay.dataset_hash"
VALIDATION_SUCCESS = "mlrelay.validation.success"
VALIDATION_SUITE = "mlrelay.validation.suite"
VALIDATION_STATS = "mlrelay.validation.statistics"
RUN_ID = "mlrelay.run_id"
# Set on a training run: ``RunIdentity.key`` of the orchestrator task that asked for it, so a
# retry of that task resumes the run (and adopts the job) instead of starting a second one.
IDENTITY = "mlrelay.identity"
# Set on a model version: the run and logged model it came from. ``register_model`` searches for
# it before creating a version, so a retried registration returns the version it made before.
REGISTERED_FROM = "mlrelay.registered_from"
PROMOTION_PREFIX = "mlrelay.promotion."

# Run tags copied onto the model version at registration.
RUN_TAGS_TO_VERSION = (
    JOB_NAME,
    BACKEND,
    DATASET_URI,
    DATASET_HASH,
    VALIDATION_SUCCESS,
    VALIDATION_SUITE,
    VALIDATION_STATS,
)


def promotion_tag(alias: str) -> str:
    """The version tag holding the gate decision for ``alias`` (JSON)."""
    return f"{PROMOTION_PREFIX}{alias}"
