"""The one exception tree of mlrelay.

Every step raises only these; vendor exceptions (MLflow, Great Expectations, Feast, KServe,
the Kubernetes client) are translated where they are caught, with the original chained as
``__cause__`` so a traceback still shows it. Orchestrator adapters map these onto their own
failure types, so a pipeline fails the same way in Airflow, Prefect and Dagster::

    MLRelayError
    ├── ConfigError               bad input, raised before anything is created (``field`` names it)
    │   └── MissingDependency     an optional extra is not installed (``extra`` names it)
    ├── DataValidationError       a validation suite failed (``report``)
    ├── TrainingSetIncomplete     Feast dropped entity rows and the policy says fail (``training_set``)
    ├── TrainingFailed            the training job failed (``reason``, ``exit_code``, ``logs``)
    ├── RegistrationFailed        MLflow could not register the model version (``status_message``)
    ├── ModelRejected             the promotion gate said no (``decision``)
    ├── PromotionConflict         another promoter moved the alias while we set it (``holder``)
    ├── DeploymentFailed          the rollout failed (``reason``, ``rolled_back``, ``failure_info``)
    ├── ServiceUnavailable        a tracking server or API could not be reached (``uri``, no secrets)
    └── OperationTimeout          a wait ran out of time (``operation``, ``timeout``)

Messages never contain secret values: settings hold secrets as ``SecretStr`` and URIs are
stripped of credentials before they are put in a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlrelay.registry.spec import PromotionDecision
    from mlrelay.validation.spec import ValidationReport


class MLRelayError(Exception):
    """Root of every error mlrelay raises on purpose."""


class ConfigError(MLRelayError, ValueError):
    """Invalid input, detected before any job, run, version or server is created.

    Attributes:
        field: the dotted name of the offending field or setting, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class MissingDependency(ConfigError, ImportError):
    """An optional part of mlrelay is used without its extra installed."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        ConfigError.__init__(
            self,
            f"{module!r} is not installed; install it with: pip install 'mlrelay[{extra}]'",
        )


class DataValidationError(MLRelayError):
    """A dataset failed its expectation suite and the policy is ``on_failure="fail"``."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        failed = [f.expectation_type for f in report.failed]
        stats = report.statistics
        super().__init__(
            f"suite {report.suite_name!r} failed: {stats.unsuccessful_expectations} of "
            f"{stats.evaluated_expectations} expectations unmet ({', '.join(failed)}) "
            f"on {report.row_count} rows"
        )


class TrainingSetIncomplete(MLRelayError):
    """The feature store dropped entity rows and the policy says this is a failure."""

    def __init__(self, message: str, *, training_set: Any) -> None:
        self.training_set = training_set
        super().__init__(message)


class TrainingFailed(MLRelayError):
    """The training job ended without success.

    Attributes:
        reason: a machine-readable cause (``NonZeroExit``, ``Timeout``, ``Cancelled``,
            ``OOMKilled``, ``ImagePullBackOff``, ``DeadlineExceeded``, ...).
        exit_code: the trainer's exit code, when it exited.
        logs: the last lines the trainer printed, to show why without opening another tool.
        job_name: the job that failed.
        run_id: the MLflow run created for it.
        attempts: on a cluster, every failed pod (``Attempt``: pod, reason, exit code, message,
            memory limit, its last log lines), so a job that failed three times says why three times.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        job_name: str,
        exit_code: int | None = None,
        logs: list[str] | None = None,
        run_id: str | None = None,
        attempts: list[Any] | None = None,
    ) -> None:
        self.attempts = list(attempts or [])
        self.reason = reason
        self.job_name = job_name
        self.exit_code = exit_code
        self.logs = list(logs or [])
        self.run_id = run_id
        tail = "\n".join(f"  | {line}" for line in self.logs[-10:])
        super().__init__(
            f"job {job_name!r} failed ({reason}): {message}" + (f"\n{tail}" if tail else "")
        )


class RegistrationFailed(MLRelayError):
    """MLflow put the model version in ``FAILED_REGISTRATION`` (or refused to create it)."""

    def __init__(
        self,
        message: str,
        *,
        model_name: str,
        version: str | None = None,
        status_message: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.version = version
        self.status_message = status_message
        super().__init__(message)


class ModelRejected(MLRelayError):
    """The promotion gate kept the current champion; ``decision`` carries both metric values."""

    def __init__(self, decision: PromotionDecision) -> None:
        self.decision = decision
        super().__init__(decision.reason)


class PromotionConflict(MLRelayError):
    """Another promoter moved the alias between our write and our read-back (FAULTS M4).

    MLflow alias moves are atomic but last-writer-wins, so the only safe promotion is
    read, set, verify. The loser raises this; retrying re-runs the gate against the new holder.
    """

    def __init__(self, *, model_name: str, alias: str, ours: str, holder: str) -> None:
        self.model_name = model_name
        self.alias = alias
        self.ours = ours
        self.holder = holder
        super().__init__(
            f"{model_name}@{alias} was moved to version {holder} by another promoter right after "
            f"this one set it to version {ours}; version {holder} keeps the alias "
            "(retry to gate against it)"
        )


class DeploymentFailed(MLRelayError):
    """A rollout failed; ``rolled_back`` says whether the previous version serves again."""

    def __init__(
        self,
        message: str,
        *,
        name: str,
        reason: str,
        rolled_back: bool,
        failure_info: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.reason = reason
        self.rolled_back = rolled_back
        self.failure_info = dict(failure_info or {})
        state = "rolled back" if rolled_back else "not rolled back"
        super().__init__(f"deployment {name!r} failed ({reason}, {state}): {message}")


class ServiceUnavailable(MLRelayError):
    """A server mlrelay depends on (MLflow tracking, Kubernetes API) did not answer."""

    def __init__(self, message: str, *, uri: str) -> None:
        self.uri = uri
        super().__init__(f"{message} ({uri})")


class OperationTimeout(MLRelayError, TimeoutError):
    """A wait ran past its deadline; whatever it waited on was left in a known state."""

    def __init__(self, message: str, *, operation: str, timeout: float) -> None:
        self.operation = operation
        self.timeout = timeout
        super().__init__(f"{operation} timed out after {timeout:g}s: {message}")
