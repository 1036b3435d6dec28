"""``train_model``: the training step as a Prefect task that a retry adopts and a cancel stops.

Adopting (FAULTS O2, O3): the task hands the core a ``RunIdentity`` built from the flow run id,
the task name and the map index (by default the job's name, which tells apart several training
calls in one flow run). A flow run that is retried, or re-run after its process died, finds the
MLflow run, and the cluster job, its first try started, instead of training twice.

Stopping (FAULTS O1): when a flow run is cancelled, Prefect's runner (``flow.serve()``, a worker)
sends SIGTERM to the flow run's process, and Prefect turns it into a ``TerminationSignal`` raised
in the main thread. A task called directly runs there: the signal unwinds through the core's
``train()``, which deletes the job and marks the MLflow run KILLED. Two cases need more, so the
task also watches for the cancellation itself while the job runs:

- a task that was ``.submit()``-ted or ``.map()``-ped runs in a worker thread that no signal
  reaches, and Prefect waits for that thread before it lets the process end: the task runner's
  cancel event for this task run (set when the flow run is torn down) stops the job;
- a flow run started as a plain script has no runner to send SIGTERM: the flow run's state,
  read from the API every few seconds, stops the job once it is Cancelling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext

from mlrelay.training.backend import Tracked
from mlrelay.training.spec import TrainingJob, TrainingResult
from prefect_mlrelay import artifacts
from prefect_mlrelay._runtime import (
    as_spec,
    retry_unless_final,
    run_identity,
    run_logger,
    say_done,
    task_run_namer,
)
from prefect_mlrelay.backends import TrainingBackendName, training_backend
from prefect_mlrelay.blocks import MLflowCredentials, mlflow_settings

if TYPE_CHECKING:
    from mlrelay.settings import MLflowSettings
    from mlrelay.training.backend import TrainingBackend

CANCEL_CHECK_INTERVAL = 0.5  # seconds between looks at the task runner's cancel event
API_CHECK_INTERVAL = 5.0  # seconds between reads of the flow run's state, when that is the way


def _name(p: dict[str, Any]) -> str:
    job = as_spec(TrainingJob, p["job"], "job")
    backend = p.get("backend", "local")
    where = backend if isinstance(backend, str) else getattr(backend, "name", "custom")
    return f"train {job.name} on {where}"


@task(
    name="train_model",
    retries=1,
    retry_delay_seconds=60,
    task_run_name=task_run_namer(_name),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def train_model(
    job: TrainingJob | dict[str, Any],
    *,
    backend: TrainingBackendName | TrainingBackend = "local",
    mlflow: MLflowCredentials | MLflowSettings | None = None,
    kubernetes: Any = None,
    timeout: float | None = None,
    map_index: int | str | None = None,
) -> TrainingResult:
    """Run the training job, stream its output into the task's log, return what it logged.

    Args:
        job: the ``TrainingJob`` (or its JSON): command, image, resources, experiment, lineage.
        backend: ``"local"`` (a process here), ``"kubernetes"`` (a batch Job), ``"trainjob"``,
            ``"pytorchjob"``, or a training backend object.
        mlflow: the MLflow server; the environment's when not given.
        kubernetes: the cluster for a cluster backend: a ``KubernetesCluster`` block or
            prefect-kubernetes' ``KubernetesClusterConfig``/``KubernetesCredentials`` block.
        timeout: seconds the job may run before it is stopped (``TrainingFailed``, Timeout).
        map_index: what tells this call apart from other calls of the task in the flow run
            with the same job name (a retry with the same value adopts the same job).

    Raises:
        TrainingFailed: the job failed (retried once) or was cancelled (never retried); it
            carries the reason, the exit code and the last lines of output.
    """
    from mlrelay.training import train

    job = as_spec(TrainingJob, job, "job")
    settings = mlflow_settings(mlflow)
    log = run_logger()
    tracked = Tracked(training_backend(backend, kubernetes))
    identity = run_identity(job.name if map_index is None else map_index)
    with _stop_when_cancelled(tracked):
        result = train(
            job, tracked, identity=identity, settings=settings, timeout=timeout, log=log.info
        )
    artifacts.training_run(result, settings)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
    say_done(f"trained {result.job_name} on {result.backend}: {metrics or 'no metrics'}")
    return result


@contextmanager
def _stop_when_cancelled(tracked: Tracked) -> Iterator[None]:
    """Stop the job as soon as the flow run is being cancelled (see the module docstring)."""
    cancelled = _cancel_check()
    done = threading.Event()
    log = run_logger()

    def watch() -> None:
        while not done.wait(CANCEL_CHECK_INTERVAL):
            if tracked.handle is not None and cancelled():
                log.warning("the flow run is being cancelled: stopping %s", tracked.handle.job_name)
                tracked.cancel(tracked.handle)
                return

    watcher = threading.Thread(target=watch, name="mlrelay-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _cancel_check() -> Callable[[], bool]:
    """How this task run learns that its flow run is going away."""
    flow_ctx, task_ctx = FlowRunContext.get(), TaskRunContext.get()
    if flow_ctx is None or flow_ctx.flow_run is None or task_ctx is None:
        return lambda: False
    api = _flow_run_cancelling(flow_ctx.flow_run.id)
    # The thread-pool task runner keeps one threading.Event per submitted task run and sets them
    # all when the flow run is torn down. It is not public API: without it, the API decides.
    events = getattr(flow_ctx.task_runner, "_cancel_events", None)
    event = events.get(task_ctx.task_run.id) if isinstance(events, dict) else None
    if isinstance(event, threading.Event):
        return lambda: event.is_set() or api()
    return api


def _flow_run_cancelling(flow_run_id: Any) -> Callable[[], bool]:
    from prefect.client.orchestration import get_client

    last = time.monotonic()

    def check() -> bool:
        nonlocal last
        if time.monotonic() - last < API_CHECK_INTERVAL:
            return False
        last = time.monotonic()
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
        except Exception:  # the API is away: keep training, look again later
            return False
        return state is not None and (state.is_cancelling() or state.is_cancelled())

    return check
