"""``train()``: one training job from validation to result, on any backend.

The flow is the same on every backend: check the job (``ConfigError`` before anything exists),
create the MLflow run, start the job, stream its output as it is printed, wait (with a
timeout), then read back what the trainer logged. Whatever ends the wait early — a timeout,
Ctrl-C, SIGTERM, an orchestrator's kill exception — stops the job and ends the run as KILLED
or FAILED: a task that fails or is killed never leaves a trainer running that nobody owns.

SIGTERM, the signal every orchestrator and process manager sends to stop a task, ends a Python
process without running ``finally`` blocks unless someone handles it. So while ``train`` runs in
the main thread and nobody else handles SIGTERM (the handler is the default), it installs a
handler that turns SIGTERM into an exception, and restores the default afterwards. When the
orchestrator has its own handler (Airflow's task runner, for one), that handler is left alone:
it raises its own exception, which unwinds through the same cleanup. Where neither applies
(``train`` in a worker thread, SIGKILL), the local backend's supervisor stops the trainer once
the calling process is gone.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NoReturn

from mlrelay import _mlflow
from mlrelay.errors import OperationTimeout, TrainingFailed
from mlrelay.settings import MLflowSettings
from mlrelay.training import runs
from mlrelay.training.spec import (
    JobHandle,
    JobState,
    JobStatus,
    RunContext,
    RunIdentity,
    TrainingJob,
    TrainingResult,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlrelay.training.backend import TrainingBackend

logger = logging.getLogger("mlrelay.training")

TAIL_LINES = 50  # how much of the trainer's output a TrainingFailed carries
LOG_DRAIN_TIMEOUT = 10.0  # how long the last lines may take to arrive once the job has ended


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs (see the module docstring)."""


def train(
    job: TrainingJob,
    backend: TrainingBackend | None = None,
    *,
    identity: RunIdentity | None = None,
    settings: MLflowSettings | None = None,
    timeout: float | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Run ``job`` on ``backend`` and return what it logged to MLflow.

    Args:
        job: what to run and what it trains on (lineage tags for the run).
        backend: where to run it; ``LocalBackend()`` (a local process) when not given, which the
            log says.
        identity: the orchestrator task asking (run id, task id, map index). A retry of that
            task resumes its MLflow run and adopts the job the earlier try started instead of
            starting a second trainer (FAULTS O2, O3).
        settings: the MLflow server; read from the environment when not given.
        timeout: seconds the job may run; the shorter of this and ``job.timeout`` applies.
        log: called with each line the trainer prints, as it prints it (from a helper thread).
            Every line also goes to the ``mlrelay.training`` logger.

    Returns:
        The run id, the final metrics and parameters, the logged model's URI (``models:/m-...``).

    Raises:
        ConfigError: the job cannot run on this backend; nothing was created.
        TrainingFailed: the job failed (``NonZeroExit``), ran out of time (``Timeout``) or was
            stopped (``Cancelled``); it carries the exit code and the last lines of output.
        ServiceUnavailable: the MLflow server could not be reached.
    """
    backend = _default(backend, job)
    backend.validate(job)
    settings = _mlflow.resolve(settings)
    client = _mlflow.client(settings)
    limit = min((t for t in (job.timeout, timeout) if t is not None), default=None)
    with _sigterm_raises():
        try:
            run = runs.start_run(client, job, backend.name, settings, identity)
            return _run(job, backend, run, client, settings, limit, log, identity)
        except _Terminated:  # before the job started
            raise TrainingFailed(
                "the calling process received SIGTERM", reason="Cancelled", job_name=job.name
            ) from None


def start_training(
    job: TrainingJob,
    backend: TrainingBackend | None = None,
    *,
    identity: RunIdentity | None = None,
    settings: MLflowSettings | None = None,
) -> JobHandle:
    """The first half of ``train``: create (or resume) the run and submit (or adopt) the job.

    For callers that wait elsewhere: an Airflow operator defers to a trigger that waits on the
    handle, then calls ``finish_training`` with the final status.
    """
    backend = _default(backend, job)
    backend.validate(job)
    settings = _mlflow.resolve(settings)
    run = runs.start_run(_mlflow.client(settings), job, backend.name, settings, identity)
    try:
        return backend.submit(job, run, identity)
    except BaseException:
        _end_quietly(_mlflow.client(settings), run, "FAILED", settings)
        raise


def finish_training(
    handle: JobHandle,
    status: JobStatus,
    *,
    settings: MLflowSettings | None = None,
    logs: Sequence[str] = (),
) -> TrainingResult:
    """The second half of ``train``: end the run with the job's outcome and read its results.

    Raises:
        TrainingFailed: ``status`` is not SUCCEEDED; it carries the reason, exit code and ``logs``.
    """
    settings = _mlflow.resolve(settings)
    client = _mlflow.client(settings)
    run = RunContext(
        run_id=handle.run_id,
        experiment_id=handle.experiment_id,
        experiment_name="",
        tracking_uri=handle.tracking_uri,
    )
    if status.state is not JobState.SUCCEEDED:
        _fail(client, run, status, handle.job_name, list(logs), settings)
    output = runs.conclude(client, run, "FINISHED", settings)
    started, finished = status.started_at or handle.submitted_at, status.finished_at
    duration = (finished - started).total_seconds() if finished is not None else 0.0
    return _result(handle, run, output, max(duration, 0.0), output.dataset_hash)


def _default(backend: TrainingBackend | None, job: TrainingJob) -> TrainingBackend:
    if backend is not None:
        return backend
    from mlrelay.training.local import LocalBackend

    logger.info("no backend given: job %r runs as a local process (LocalBackend)", job.name)
    return LocalBackend()


def _run(
    job: TrainingJob,
    backend: TrainingBackend,
    run: RunContext,
    client: MlflowClient,
    settings: MLflowSettings,
    limit: float | None,
    callback: Callable[[str], None] | None,
    identity: RunIdentity | None,
) -> TrainingResult:
    handle: JobHandle | None = None
    stream: _LogStream | None = None
    started = time.monotonic()
    try:
        handle = backend.submit(job, run, identity)
        stream = _LogStream(backend, handle, callback)
        status = backend.wait(handle, timeout=limit)
    except BaseException as exc:
        # Timeout, Ctrl-C, SIGTERM, an orchestrator's kill, a failed submit: stop and record.
        if handle is not None:
            backend.cancel(handle)
        tail = stream.finish() if stream is not None else []
        outcome: runs.RunStatus = "KILLED" if not isinstance(exc, Exception) else "FAILED"
        _end_quietly(client, run, outcome, settings)
        if isinstance(exc, OperationTimeout):
            message, reason = f"still running after {limit:g}s, so it was stopped", "Timeout"
        elif isinstance(exc, _Terminated):
            message, reason = "the calling process received SIGTERM, so it was stopped", "Cancelled"
        else:
            raise
        raise TrainingFailed(
            message,
            reason=reason,
            job_name=handle.job_name if handle is not None else job.name,
            logs=tail,
            run_id=run.run_id,
        ) from None
    duration = time.monotonic() - started
    if status.state is not JobState.SUCCEEDED:
        # A failure decided before the cluster gave up (an image that cannot be pulled, a pod
        # that cannot be scheduled) leaves the job retrying: stop it. An ended job is left.
        backend.cancel(handle)
    tail = stream.finish()
    if status.state is not JobState.SUCCEEDED:
        _fail(client, run, status, handle.job_name, tail, settings)
    output = runs.conclude(client, run, "FINISHED", settings)
    logger.info(
        "job %r succeeded in %.1fs: run %s, model %s",
        job.name,
        duration,
        run.run_id,
        output.model_uri or "(none logged)",
    )
    return _result(handle, run, output, duration, runs.dataset_hash_of(job))


def _result(
    handle: JobHandle,
    run: RunContext,
    output: runs.RunOutput,
    duration: float,
    dataset_hash: str | None,
) -> TrainingResult:
    return TrainingResult(
        job_name=handle.job_name,
        backend=handle.backend,
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        metrics=output.metrics,
        params=output.params,
        model_uri=output.model_uri,
        duration_seconds=round(duration, 3),
        dataset_hash=dataset_hash,
    )


class _LogStream:
    """Copies the job's output to the logger and the callback from a thread, as it is printed.

    A thread, because the main thread must stay in ``backend.wait`` to enforce the timeout and to
    receive signals. The last ``TAIL_LINES`` lines are kept for ``TrainingFailed``.
    """

    def __init__(
        self, backend: TrainingBackend, handle: JobHandle, callback: Callable[[str], None] | None
    ) -> None:
        self._lines = backend.logs(handle, follow=True)
        self._job = handle.job_name
        self._callback = callback
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._thread = threading.Thread(target=self._copy, name=f"logs-{self._job}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            for line in self._lines:
                self.tail.append(line)
                logger.info("[%s] %s", self._job, line)
                if self._callback is not None:
                    try:
                        self._callback(line)
                    except Exception:
                        logger.exception("the log callback failed; lines still go to the logger")
                        self._callback = None
        except Exception:
            logger.exception("streaming the output of job %r failed", self._job)

    def finish(self) -> list[str]:
        """Wait (bounded) for the last lines once the job has ended; return the tail."""
        self._thread.join(LOG_DRAIN_TIMEOUT)
        if self._thread.is_alive():
            logger.warning("the output of job %r did not end; not waiting for it", self._job)
        return list(self.tail)


def _fail(
    client: MlflowClient,
    run: RunContext,
    status: JobStatus,
    job_name: str,
    tail: list[str],
    settings: MLflowSettings,
) -> NoReturn:
    """End the run as the job ended and raise ``TrainingFailed`` with the job's own reason."""
    cancelled = status.state is JobState.CANCELLED
    _end_quietly(client, run, "KILLED" if cancelled else "FAILED", settings)
    raise TrainingFailed(
        status.message or status.state.value.lower(),
        reason=status.reason or ("Cancelled" if cancelled else "Failed"),
        job_name=job_name,
        exit_code=status.exit_code,
        logs=tail,
        run_id=run.run_id,
        attempts=[a.model_dump(mode="json") for a in status.attempts],
    )


def _end_quietly(
    client: MlflowClient, run: RunContext, outcome: runs.RunStatus, settings: MLflowSettings
) -> None:
    """End the run on a failure path, where the failure itself is the error to report."""
    try:
        runs.conclude(client, run, outcome, settings)
    except Exception as exc:
        logger.warning("could not mark run %s %s: %s", run.run_id, outcome, exc)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into ``_Terminated`` while inside, if no one else handles SIGTERM."""
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    fired = False

    def handler(signum: int, frame: object) -> None:
        nonlocal fired
        if not fired:  # a second SIGTERM must not interrupt the cleanup the first one started
            fired = True
            raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
