"""``KubernetesJobBackend``: the trainer as a ``batch/v1`` Job.

The Job is the plain Kubernetes way to run a trainer to completion, and what Kueue queues.
Its state is read from its conditions (``SuccessCriteriaMet``/``Complete``,
``FailureTarget``/``Failed`` with their reasons, ``Suspended``) and from its pods, found by the
``batch.kubernetes.io/job-name`` label the Job controller puts on them. Everything not specific
to a Job (create-or-adopt, secrets, waiting, logs, cancellation) is in :mod:`.cluster`.
"""

from __future__ import annotations

from datetime import datetime

from mlrelay.kube.client import JOBS, Obj
from mlrelay.training import manifests, podstate
from mlrelay.training.cluster import ClusterBackend
from mlrelay.training.spec import JobState, JobStatus, RunContext, RunIdentity, TrainingJob


class KubernetesJobBackend(ClusterBackend):
    """Runs a ``TrainingJob`` as a Kubernetes Job (Indexed with ``workers > 1``).

    Example::

        result = train(job, backend=KubernetesJobBackend(KubernetesSettings(namespace="ml")))

    See :class:`~mlrelay.training.cluster.ClusterBackend` for the options.
    """

    name = "kubernetes"
    kind = JOBS

    def manifest(
        self, job: TrainingJob, run: RunContext, name: str, identity: RunIdentity | None
    ) -> Obj:
        return manifests.batch_job(job, run, name, identity)

    def pod_selector(self, name: str) -> str:
        return f"batch.kubernetes.io/job-name={name}"

    def decide(self, obj: Obj | None, pods: list[Obj]) -> JobStatus:
        return job_status(obj, pods, self._now(), self.limits)


def job_status(
    job: Obj | None, pods: list[Obj], now: datetime, limits: podstate.Limits
) -> JobStatus:
    """A Job's state from its conditions first, then from its pods (see :mod:`.podstate`)."""
    if job is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return JobStatus(
            state=JobState.FAILED,
            reason="DeletedExternally",
            message="the Job was deleted while we waited for it",
            attempts=podstate.attempts(pods),
        )
    status = job.get("status") or {}
    started = podstate.parse_time(status.get("startTime"))
    for done in ("SuccessCriteriaMet", "Complete"):
        if (c := podstate.condition(job, done)) is not None:
            finished = podstate.parse_time(
                status.get("completionTime") or c.get("lastTransitionTime")
            )
            return JobStatus(
                state=JobState.SUCCEEDED,
                started_at=started,
                finished_at=finished,
                attempts=podstate.attempts(pods),  # an evicted pod retried is still reported (T6)
            )
    for failed in ("FailureTarget", "Failed"):
        if (c := podstate.condition(job, failed)) is not None:
            result = podstate.failed(
                str(c.get("reason") or "Failed"),
                str(c.get("message") or "the Job failed"),
                pods,
                finished=podstate.parse_time(c.get("lastTransitionTime")),
            )
            return result.model_copy(update={"started_at": started})
    if (c := podstate.condition(job, "Suspended")) is not None:
        queue = ((job.get("metadata") or {}).get("labels") or {}).get(manifests.KUEUE_QUEUE)
        where = f" in Kueue queue {queue!r}" if queue else ""
        return JobStatus(
            state=JobState.QUEUED,
            reason="Suspended",
            message=f"suspended{where}, waiting to be admitted",
        )
    verdict = podstate.pod_verdict(pods, now, limits)
    if verdict is not None:
        return verdict.model_copy(update={"started_at": started})
    return podstate.running_state(pods).model_copy(update={"started_at": started})
