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
from mlrelay.training.spec import JobStatus, RunContext, RunIdentity, TrainingJob


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


JOB = podstate.Vocabulary(
    kind="Job", success=("SuccessCriteriaMet", "Complete"), failure=("FailureTarget", "Failed")
)


def job_status(
    job: Obj | None, pods: list[Obj], now: datetime, limits: podstate.Limits
) -> JobStatus:
    """A Job's state from its conditions first, then from its pods (see :mod:`.podstate`)."""
    return podstate.owner_status(job, pods, now, limits, JOB)
