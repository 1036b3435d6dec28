"""What every task shares: the retry rule, who is asking, the run logger, and naming the run.

Retries: a Prefect retry is worth it for what may pass on a second try (a server that did not
answer, a registration MLflow failed, a node that went away) and wasteful or wrong for the rest:
bad input, data that failed its suite, a gate that rejected the model, a job that was cancelled.
``retry_unless_final`` is the ``retry_condition_fn`` that tells the two apart, so a task keeps
its sensible default ``retries`` without ever re-running a verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from prefect.runtime import flow_run, task_run
from pydantic import BaseModel

from mlrelay.errors import (
    ConfigError,
    DataValidationError,
    ModelRejected,
    TrainingFailed,
    TrainingSetIncomplete,
)
from mlrelay.training.spec import RunIdentity

# Verdicts, not accidents: the same input gives the same answer on every try.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    ConfigError,  # MissingDependency included
    DataValidationError,
    TrainingSetIncomplete,
    ModelRejected,
)
# A job stopped on purpose (the flow run was cancelled, its owner died) must stay stopped.
FINAL_TRAINING_REASONS = frozenset({"Cancelled", "OwnerDied"})

Model = TypeVar("Model", bound=BaseModel)


def retry_unless_final(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` of every mlrelay task: retry unless the failure is a verdict.

    Prefect calls it with the failed state whose ``data`` is the exception the task raised. Must
    stay a plain function: Prefect treats any other callable as "never retry".
    """
    exc = state.data
    while hasattr(exc, "is_failed"):  # a task that returned a failed state: look inside it
        exc = exc.data
    if isinstance(exc, NEVER_RETRIED):
        return False
    return not (isinstance(exc, TrainingFailed) and exc.reason in FINAL_TRAINING_REASONS)


def run_identity(map_index: int | str | None = None) -> RunIdentity | None:
    """The calling task run as the core's ``RunIdentity`` (flow run id, task name, map index).

    The flow run id survives a flow retry and a crashed run being re-run; the task name is the
    same on every try. So a retry finds the MLflow run and the job its first try started (FAULTS
    O2, O3) instead of starting a second trainer. Outside a task run there is nobody to retry.
    """
    task_name = task_run.get_task_name()
    if task_name is None:
        return None
    owner = flow_run.get_id() or task_run.get_id()
    return RunIdentity(
        orchestrator="prefect",
        run_id=str(owner),
        task_id=task_name,
        map_index=map_index,
        try_number=task_run.get_run_count() or None,
    )


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The task run's logger (lines reach the Prefect UI); a plain logger outside a run."""
    if TaskRunContext.get() is None:
        return logging.getLogger("mlrelay.prefect")
    return get_run_logger()


def say_done(what: str) -> None:
    """Rename the running task run to say what it did, and log it.

    The name given at the start says what the task is about to do (from its parameters); this
    one, sent with the run's final state, says how it went ("promoted fraud-detector v3 to
    @champion"), so the flow run's graph reads as a report.
    """
    run_logger().info("%s", what)
    ctx = TaskRunContext.get()
    if ctx is not None:
        ctx.task_run.name = what[:200]


def as_spec(kind: type[Model], value: Model | Mapping[str, Any], field: str) -> Model:
    """A core spec from itself or its JSON (what a deployment parameter or upstream gives)."""
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        return kind.model_validate(dict(value))  # a core spec raises ConfigError naming the field
    raise ConfigError(
        f"expected a {kind.__name__} or its JSON, got {type(value).__name__}", field=field
    )


def name_of(path: object) -> str:
    """The last part of a path or URI, for task run names; ``dataframe`` for in-memory data."""
    if isinstance(path, str | bytes) or hasattr(path, "__fspath__"):
        text = str(path).rstrip("/")
        return text.rsplit("/", 1)[-1] or text
    return type(path).__name__.lower()


def task_run_namer(render: Callable[[dict[str, Any]], str]) -> Callable[..., str]:
    """A ``task_run_name`` callable that never fails the task over a name."""

    def name(parameters: dict[str, Any]) -> str:
        try:
            return render(parameters)[:200]
        except Exception:
            return str(task_run.get_task_name() or "mlrelay")

    return name
