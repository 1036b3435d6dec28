"""``TrainingJobTrigger``: wait for a submitted training job in the triggerer, not on a worker.

The trigger holds no job-state logic of its own: it runs the core's waiter (``backend.wait``)
on the job's handle and follows ``backend.logs`` into the task's log, each in a thread, and
fires one event carrying the job's final ``JobStatus``. The task resumes from that status and
never reads the job again, which may have been garbage-collected by then (FAULTS O7).

- **Deadline** (O6): Airflow does not apply ``execution_timeout`` to a deferred task, and the
  ``timeout`` of a deferral ends the task without stopping the job. So the trigger carries an
  absolute deadline: at the deadline it cancels the job and reports ``Timeout``. Being absolute,
  it survives triggerer restarts.
- **Kill** (O4): a user who marks the deferred task failed (or success, or clears it) makes
  Airflow 3.3+ call ``on_kill``, which cancels the job. A triggerer restart or a move to
  another triggerer calls only ``cleanup``, which leaves the job alone: the trigger is
  re-created and resumes waiting on the same handle.
- The waits run in daemon threads: a thread of ``asyncio.to_thread`` cannot be interrupted, and
  the event loop's shutdown joins them, so a triggerer stopping while a job ran for hours would
  hang until the job ended.
- However many tasks are deferred, the triggerer watches each namespace once per kind: every
  trigger's waiter and log follower borrow the process's shared informers
  (:mod:`mlrelay.kube.shared`), so a waiting job costs the API server no request of its own
  until it has a log to stream (benchmarks/p7_concurrent_waits.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlrelay._backends import training_backend

if TYPE_CHECKING:
    from mlrelay.training.backend import TrainingBackend
    from mlrelay.training.spec import JobHandle, JobStatus

T = TypeVar("T")


class TrainingJobTrigger(BaseTrigger):
    """Fires once the training job of ``handle`` has ended (or the deadline passed).

    Event payload: ``handle`` (as given), and either ``status`` (the final ``JobStatus``
    JSON) with ``logs`` (the last lines), or ``error`` when the job could not be followed
    (the API unreachable, ...), in which case the job is left as it is for a retry to adopt.

    Args:
        handle: the ``JobHandle`` JSON of the submitted job.
        backend: the training backend's name (``kubernetes``, ``trainjob``, ``pytorchjob``,
            ``local``) or dotted path; ``backend_options`` are its keyword arguments.
        kubernetes_conn_id, namespace: the cluster (a cluster backend's ``settings``).
        deadline: POSIX time at which the job is stopped and reported as ``Timeout``.
        stream_logs: copy the job's output into the task's log as it is printed.
    """

    def __init__(
        self,
        *,
        handle: dict[str, Any],
        backend: str,
        backend_options: dict[str, Any] | None = None,
        kubernetes_conn_id: str | None = None,
        namespace: str | None = None,
        deadline: float | None = None,
        stream_logs: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.handle = handle
        self.backend = backend
        self.backend_options = backend_options or {}
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.deadline = deadline
        self.stream_logs = stream_logs
        self._backend: TrainingBackend | None = None
        self._stop_logs = threading.Event()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "handle": self.handle,
                "backend": self.backend,
                "backend_options": self.backend_options,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "namespace": self.namespace,
                "deadline": self.deadline,
                "stream_logs": self.stream_logs,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlrelay.errors import TrainingFailed
        from mlrelay.training.api import LOG_DRAIN_TIMEOUT, TAIL_LINES
        from mlrelay.training.spec import JobHandle, JobState, JobStatus

        handle = JobHandle.model_validate(self.handle)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        logs: asyncio.Future[None] | None = None
        try:
            backend = await self._get_backend()
            if self.stream_logs:
                logs = _daemon(self._copy_logs, backend, handle, tail)
            status = await _daemon(self._wait, backend, handle)
        except TrainingFailed as exc:  # the waiter's own verdict, e.g. deleted externally (K12)
            message = str(exc).splitlines()[0]
            status = JobStatus(
                state=JobState.FAILED, reason=exc.reason, message=message, exit_code=exc.exit_code
            )
            tail.extend(exc.logs)
        except Exception as exc:
            self.log.exception("could not follow job %r; it is left as it is", handle.job_name)
            yield _event(handle=self.handle, error=f"{type(exc).__name__}: {exc}")
            return
        if logs is not None:  # the last lines, but never long for a stream that does not end
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(logs), LOG_DRAIN_TIMEOUT)
        yield _event(handle=self.handle, status=status.model_dump(mode="json"), logs=list(tail))

    async def on_kill(self) -> None:
        """The user acted on the deferred task (Airflow 3.3+): stop the job (O4)."""
        from mlrelay.training.spec import JobHandle

        handle = JobHandle.model_validate(self.handle)
        backend = await self._get_backend()
        self.log.info("task killed while deferred: cancelling job %r", handle.job_name)
        await _daemon(backend.cancel, handle)

    async def cleanup(self) -> None:
        # Every exit, a triggerer restart included: stop copying logs, leave the job running.
        self._stop_logs.set()

    async def _get_backend(self) -> TrainingBackend:
        if self._backend is None:  # reads a connection: off the event loop
            self._backend = await asyncio.to_thread(
                training_backend,
                self.backend,
                self.backend_options,
                kubernetes_conn_id=self.kubernetes_conn_id,
                namespace=self.namespace,
            )
        return self._backend

    def _wait(self, backend: TrainingBackend, handle: JobHandle) -> JobStatus:
        from mlrelay.errors import OperationTimeout

        if self.deadline is None:
            return backend.wait(handle)
        remaining = self.deadline - time.time()
        try:
            if remaining > 0:
                return backend.wait(handle, timeout=remaining)
            if (status := backend.status(handle)).state.terminal:  # restarted after the deadline
                return status
            raise OperationTimeout("deadline passed", operation=handle.job_name, timeout=0)
        except OperationTimeout:
            return self._stop_at_deadline(backend, handle)

    def _stop_at_deadline(self, backend: TrainingBackend, handle: JobHandle) -> JobStatus:
        from mlrelay.training.spec import JobState, JobStatus

        backend.cancel(handle)
        deadline = datetime.fromtimestamp(self.deadline or 0, UTC)
        self.log.warning("job %r still ran at its deadline %s: stopped", handle.job_name, deadline)
        return JobStatus(
            state=JobState.FAILED,
            reason="Timeout",
            message=f"still running at the task's deadline ({deadline.isoformat()}), so it was stopped",
            started_at=handle.submitted_at,
            finished_at=datetime.now(UTC),
        )

    def _copy_logs(
        self, backend: TrainingBackend, handle: JobHandle, tail: collections.deque[str]
    ) -> None:
        try:
            for line in backend.logs(handle, follow=True):
                if self._stop_logs.is_set():
                    return
                tail.append(line)
                self.log.info("[%s] %s", handle.job_name, line)
        except Exception:  # the job's outcome does not depend on its log stream
            self.log.warning(
                "streaming the output of job %r failed", handle.job_name, exc_info=True
            )


def _event(**payload: Any) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]


def _daemon(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run ``fn(*args)`` in a daemon thread (with this task's context: the log routing)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the waiting task was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, error = context.run(fn, *args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"mlrelay-{fn.__name__}", daemon=True).start()
    return future


def deadline(context: Any, job_timeout: float | None, execution_timeout: Any) -> float | None:
    """When a deferred job must be stopped (POSIX time): the job's or the task's timeout.

    The job's ``timeout`` counts from now (the job was just submitted), the task's
    ``execution_timeout`` from the start of the task instance, as Airflow counts it.
    """
    ends = [time.time() + job_timeout] if job_timeout else []
    started = getattr(context["ti"], "start_date", None)
    if execution_timeout is not None and started is not None:
        ends.append((started + execution_timeout).timestamp())
    return min(ends, default=None)
