"""The training job spec, job handles and results, shared by every training backend.

One ``TrainingJob`` runs unchanged on the local backend (a subprocess) and on the cluster
backends (a Kubernetes Job, a Kubeflow TrainJob or PyTorchJob), so it carries every field the
cluster needs; the local backend ignores the ones it cannot honour and says so in the log.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from mlrelay._model import (
    MAX_NAME,
    Annotations,
    DNS1123Name,
    DNS1123Subdomain,
    FieldError,
    Frozen,
    Labels,
    ProcessText,
    check_label_key,
)

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SCALE = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_SCALE.update({f"{k}i": 2.0 ** (10 * n) for n, k in enumerate("KMGTPE", 1)})


def _amount(quantity: str) -> float:
    """A quantity's value, to compare a limit with its request (``500m`` < ``1`` < ``1Ki``)."""
    number = quantity.rstrip("kKMGTPEmi")
    return float(number) * _SCALE.get(quantity[len(number) :], 1.0)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _check_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2', '4Gi')")
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid environment variable name")
    return value


# The variables through which a job finds its MLflow run (``RunContext.env``/``secret_env``).
RUN_ENV = frozenset(
    {
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
    }
)

Quantity = Annotated[str, AfterValidator(_check_quantity)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]


class Resources(Frozen):
    """Compute for one trainer (per node for multi-node backends).

    ``cpu``/``memory`` are requests; limits default to the requests for memory (so an
    out-of-memory trainer is OOMKilled at a known size) and to none for CPU.
    """

    cpu: Quantity | None = None
    memory: Quantity | None = None
    gpu: int = Field(default=0, ge=0)
    cpu_limit: Quantity | None = None
    memory_limit: Quantity | None = None

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        # The API server refuses a limit below its request (422); say so before a job is made.
        for request, limit in (("cpu", "cpu_limit"), ("memory", "memory_limit")):
            low, high = getattr(self, request), getattr(self, limit)
            if low is not None and high is not None and _amount(high) < _amount(low):
                raise FieldError(limit, f"{high} is below the {request} request {low}")
        return self


class SecretKeyRef(Frozen):
    """A key of a Kubernetes Secret (or, locally, ``<secrets_dir>/<name>/<key>``)."""

    name: DNS1123Name
    key: str = Field(min_length=1)


class EnvVar(Frozen):
    """An environment variable: a plain value, a secret value, or a reference to a Secret key.

    Prefer ``secret_key_ref``; a ``secret_value`` is a ``SecretStr`` and is never logged or dumped.
    """

    name: EnvName
    value: ProcessText | None = None
    secret_value: SecretStr | None = None
    secret_key_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> EnvVar:
        given = [x for x in (self.value, self.secret_value, self.secret_key_ref) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of value, secret_value, secret_key_ref")
        if self.secret_value is not None and "\x00" in self.secret_value.get_secret_value():
            raise FieldError("secret_value", "contains a NUL character (value not shown)")
        return self


class Toleration(Frozen):
    """A pod toleration, with the API server's rules checked here (they are 422s otherwise)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _as_the_api_server_checks(self) -> Toleration:
        if self.key:
            check_label_key(self.key)
        elif self.operator != "Exists":
            raise FieldError("operator", "a toleration without a key must use operator Exists")
        if self.operator == "Exists" and self.value:
            raise FieldError("value", "must be empty with operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise FieldError("toleration_seconds", "applies to effect NoExecute only")
        return self


class Volume(Frozen):
    """A volume mounted into the trainer: exactly one of a PVC, a Secret, a ConfigMap, emptyDir."""

    name: DNS1123Name
    mount_path: str = Field(pattern=r"^/")
    read_only: bool = False
    pvc: DNS1123Subdomain | None = None
    secret: DNS1123Subdomain | None = None
    config_map: DNS1123Subdomain | None = None
    empty_dir: bool = False

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Volume:
        given = [x for x in (self.pvc, self.secret, self.config_map) if x] + (
            ["emptyDir"] if self.empty_dir else []
        )
        if len(given) != 1:
            raise ValueError("give exactly one of pvc, secret, config_map, empty_dir")
        return self


class TrainingJob(Frozen):
    """What to train, where its results go, and what it was trained on.

    Attributes:
        name: the job's name (DNS-1123, at most 63 characters): also the MLflow run name.
        image: the training image (cluster backends); the local backend runs ``command`` directly.
        command: the argv to run (never through a shell); ``args`` are appended.
        experiment: the MLflow experiment; created if missing.
        timeout: seconds before the job is stopped and reported as ``Timeout``.
        workers: trainers run in parallel: an Indexed Job's completions, a TrainJob's numNodes,
            a PyTorchJob's Master plus ``workers - 1`` Workers.
        queue: a Kueue LocalQueue; the Job is created suspended and Kueue admits it.
        affinity: passed through to the pod spec as is (Kubernetes' own schema).
        dataset_uri / dataset_hash / validation: lineage of the data, written as tags on the MLflow
            run before the job starts, later copied onto the model version.
    """

    name: DNS1123Name
    command: list[ProcessText] = Field(min_length=1)
    args: list[ProcessText] = Field(default_factory=list)
    image: str | None = None
    env: list[EnvVar] = Field(default_factory=list)
    working_dir: ProcessText | None = None
    resources: Resources = Field(default_factory=Resources)
    node_selector: Labels = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    service_account: str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    backoff_limit: int = Field(default=0, ge=0)
    workers: int = Field(default=1, ge=1, le=1000)
    volumes: list[Volume] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    image_pull_secrets: list[DNS1123Name] = Field(default_factory=list)
    priority_class: str | None = None
    queue: str | None = None
    active_deadline_seconds: int | None = Field(default=None, gt=0)
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    experiment: str = Field(default="mlrelay", min_length=1)
    tags: dict[str, str] = Field(default_factory=dict)
    dataset_uri: str | None = None
    dataset_hash: str | None = None
    validation: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _unique_env(self) -> TrainingJob:
        names = [e.name for e in self.env]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FieldError("env", f"environment variables defined twice: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _unique_volumes(self) -> TrainingJob:
        for what in ("name", "mount_path"):
            seen = [getattr(v, what) for v in self.volumes]
            if len(set(seen)) != len(seen):
                raise FieldError("volumes", f"two volumes have the same {what}")
        return self

    @model_validator(mode="after")
    def _run_env_reserved(self) -> TrainingJob:
        # The job logs into the run mlrelay created for it; these point it there (RunContext).
        reserved = sorted({e.name for e in self.env} & RUN_ENV)
        if reserved:
            raise FieldError(
                "env",
                f"{', '.join(reserved)}: set by mlrelay from the MLflow settings and the run it "
                "creates, not by the job (MLflowSettings.training_tracking_uri sets a job-side URI)",
            )
        return self

    @model_validator(mode="after")
    def _lineage_tags_reserved(self) -> TrainingJob:
        # mlrelay.* tags are the lineage written from this spec; a user tag must not forge them.
        reserved = sorted(k for k in self.tags if k.startswith("mlrelay."))
        if reserved:
            raise FieldError(
                "tags", f"tag keys starting with 'mlrelay.' are reserved: {', '.join(reserved)}"
            )
        return self


class RunIdentity(Frozen):
    """Which orchestrator task asked for a job, so that a retry of that task finds it again.

    The cluster job's name, its labels and the MLflow run's ``mlrelay.identity`` tag are all
    derived from ``key``: a retried task (after a worker was SIGKILLed, or while the first try
    still runs) adopts what the first try started instead of starting a second trainer (FAULTS
    O2, O3). ``try_number`` is informational and deliberately not part of the key.

    Attributes:
        orchestrator: ``airflow``, ``prefect``, ``dagster`` or ``python``.
        run_id: the DAG run id, flow run id or Dagster run id.
        task_id: the task id, task name or asset key.
        map_index: the mapped-task index or partition key, if any.
    """

    orchestrator: str = Field(default="python", min_length=1)
    run_id: str = Field(min_length=1)
    task_id: str = Field(min_length=1)
    map_index: int | str | None = None
    try_number: int | None = None

    @property
    def key(self) -> str:
        """A 12-character hex digest of who asked: usable in names and label values."""
        raw = json.dumps(
            [self.orchestrator, self.run_id, self.task_id, self.map_index], separators=(",", ":")
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def job_name(self, base: str) -> str:
        """``base`` with the key appended, cut to a DNS-1123 label of at most 63 characters."""
        head = base[: MAX_NAME - len(self.key) - 1].rstrip("-")
        return f"{head}-{self.key}"


class RunContext(Frozen):
    """The MLflow run created for a job before it starts, and how the job reaches it.

    Every backend hands the job the same variables (``env()``, plus ``secret_env()`` through its
    own secret mechanism), so a training script only needs ``mlflow.start_run()``.

    Attributes:
        tracking_uri: the URI as the job sees it (``MLflowSettings.training_tracking_uri`` when a
            pod cannot reach the URI the caller uses).
        token: the tracking server token, passed to the job as a secret.
    """

    run_id: str
    experiment_id: str
    experiment_name: str
    tracking_uri: str
    token: SecretStr | None = None

    def env(self) -> dict[str, str]:
        """The plain MLflow variables for the job: safe to show."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_ID": self.experiment_id,
            "MLFLOW_EXPERIMENT_NAME": self.experiment_name,
            "MLFLOW_RUN_ID": self.run_id,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }

    def secret_env(self) -> dict[str, str]:
        """The credentials for the job: never logged, masked in its output."""
        if self.token is None:
            return {}
        return {"MLFLOW_TRACKING_TOKEN": self.token.get_secret_value()}


class JobState(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobHandle(Frozen):
    """Enough to find a submitted job again, from another process or another try of a task.

    An Airflow trigger is serialised with this handle; ``backend.status(handle)`` works from it.
    """

    backend: str
    job_name: str
    run_id: str
    experiment_id: str
    tracking_uri: str
    namespace: str | None = None
    pid: int | None = None
    log_path: str | None = None
    submitted_at: datetime


class Attempt(Frozen):
    """One pod of a cluster job that failed: which, why, and its last words."""

    pod: str
    reason: str
    container: str | None = None
    exit_code: int | None = None
    message: str | None = None
    memory_limit: str | None = None
    logs: list[str] = Field(default_factory=list)


class JobStatus(Frozen):
    """Where a job stands; for a failure, why (``reason`` as data, see ``TrainingFailed``)."""

    state: JobState
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: list[Attempt] = Field(default_factory=list)


class TrainingResult(Frozen):
    """A finished, successful training job and what it logged to MLflow.

    Attributes:
        model_uri: the logged model (``models:/m-...`` in MLflow 3), registered by ``register_model``.
    """

    job_name: str
    backend: str
    run_id: str
    experiment_id: str
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    model_uri: str | None = None
    duration_seconds: float
    dataset_hash: str | None = None
