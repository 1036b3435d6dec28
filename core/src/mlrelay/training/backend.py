"""The contract every training backend keeps: a local process, a Kubernetes Job, a Kubeflow TrainJob.

``train()`` drives a backend through this protocol and nothing else, so a pipeline moves from
one machine to a cluster by passing another backend. The same five calls serve the other
callers of a long-running job: an Airflow trigger polls ``status`` from a serialised handle, a
Prefect or Dagster cancellation calls ``cancel``; nobody re-implements job-state logic.

Rules a backend follows:

- ``validate`` raises ``ConfigError`` for anything it cannot run, before the MLflow run or the
  job exist; ``submit`` may assume the job passed it.
- The MLflow run already exists when ``submit`` is called: the backend only hands the job the
  variables from ``RunContext.env()`` and, through its secret mechanism, ``secret_env()``.
- A handle is enough to find the job again from another process: ``status``, ``logs`` and
  ``cancel`` need no state kept in the backend object.
- Secret values reach neither logs nor handles nor errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from mlrelay.training.spec import JobHandle, JobStatus, RunContext, RunIdentity, TrainingJob


@runtime_checkable
class TrainingBackend(Protocol):
    """Runs a ``TrainingJob`` somewhere and reports on it through a ``JobHandle``."""

    @property
    def name(self) -> str:
        """Short backend name, written to the run's ``mlrelay.backend`` tag (``local``, ...)."""
        ...

    def validate(self, job: TrainingJob) -> None:
        """Raise ``ConfigError`` if this backend cannot run ``job``; create nothing."""
        ...

    def submit(
        self, job: TrainingJob, run: RunContext, identity: RunIdentity | None = None
    ) -> JobHandle:
        """Start the job (logging into ``run``) and return at once with its handle.

        With an ``identity``, a job that an earlier try of the same task started for the same
        run is adopted (its handle returned) instead of a second one being started.
        """
        ...

    def status(self, handle: JobHandle) -> JobStatus:
        """The job's state now, read from the system that runs it."""
        ...

    def wait(self, handle: JobHandle, timeout: float | None = None) -> JobStatus:
        """Block until the job is in a terminal state and return that status.

        Raises:
            OperationTimeout: ``timeout`` seconds passed first; the job is left running.
        """
        ...

    def logs(self, handle: JobHandle, follow: bool = True) -> Iterator[str]:
        """The job's output, line by line (without line endings), from its first line.

        With ``follow`` the iterator yields lines as they are written and ends once the job has
        ended and everything it wrote has been yielded.
        """
        ...

    def cancel(self, handle: JobHandle) -> None:
        """Stop the job and everything it started; a job that already ended is left as it is."""
        ...


class Tracked:
    """A backend that remembers the job it submitted, for whoever must stop it from outside.

    ``train()`` keeps the handle to itself, but an orchestrator's kill arrives elsewhere: an
    Airflow ``on_kill``, a Prefect cancellation watcher. Every call goes to the wrapped backend
    unchanged; ``on_submit`` is told the handle as soon as the job exists (to link the task to
    its MLflow run while it trains). A failing ``on_submit`` is logged, never fatal: the job has
    started and must be waited on (or stopped) as usual.
    """

    def __init__(
        self, backend: TrainingBackend, on_submit: Callable[[JobHandle], object] | None = None
    ) -> None:
        self.backend = backend
        self.on_submit = on_submit
        self.handle: JobHandle | None = None

    @property
    def name(self) -> str:
        return str(self.backend.name)

    def validate(self, job: TrainingJob) -> None:
        self.backend.validate(job)

    def submit(
        self, job: TrainingJob, run: RunContext, identity: RunIdentity | None = None
    ) -> JobHandle:
        self.handle = self.backend.submit(job, run, identity)
        if self.on_submit is not None:
            try:
                self.on_submit(self.handle)
            except Exception:
                logging.getLogger("mlrelay.training").warning(
                    "on_submit failed for job %r", job.name, exc_info=True
                )
        return self.handle

    def status(self, handle: JobHandle) -> JobStatus:
        return self.backend.status(handle)

    def wait(self, handle: JobHandle, timeout: float | None = None) -> JobStatus:
        return self.backend.wait(handle, timeout)

    def logs(self, handle: JobHandle, follow: bool = True) -> Iterator[str]:
        return self.backend.logs(handle, follow)

    def cancel(self, handle: JobHandle) -> None:
        self.backend.cancel(handle)
