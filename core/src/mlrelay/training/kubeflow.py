"""Kubeflow training backends: Trainer v2 ``TrainJob`` and Training Operator v1 ``PyTorchJob``.

Both run the same ``TrainingJob`` as the batch-Job backend, with ``workers`` as the number of
nodes, and share everything but the object and the reading of its status
(:class:`~mlrelay.training.cluster.ClusterBackend`): create-or-adopt, the Secret, the watch
loop, every pod's logs, cancellation.

- ``PyTorchJobBackend``: a Master and ``workers - 1`` Workers; the operator sets MASTER_ADDR,
  MASTER_PORT, WORLD_SIZE and RANK on each, labels the pods ``training.kubeflow.org/job-name``,
  and reports Created/Running/Restarting/Succeeded/Failed conditions.
- ``TrainJobBackend``: a TrainJob referencing a (Cluster)TrainingRuntime that holds the pod
  template; ``spec.trainer`` overrides image, command, env, numNodes and resourcesPerNode.
  Trainer runs it as a JobSet whose pods carry ``jobset.sigs.k8s.io/jobset-name``; its
  conditions are Created, Suspended, Complete and Failed.
"""

from __future__ import annotations

from typing import Any

from mlrelay.errors import ConfigError
from mlrelay.kube.client import Kind, Obj
from mlrelay.training import manifests, podstate
from mlrelay.training.cluster import ClusterBackend
from mlrelay.training.spec import JobState, JobStatus, RunContext, RunIdentity, TrainingJob

PYTORCH_JOBS = Kind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
TRAIN_JOBS = Kind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")


class PyTorchJobBackend(ClusterBackend):
    """Runs a ``TrainingJob`` as a Training Operator ``PyTorchJob`` (Master + Workers).

    See :class:`~mlrelay.training.cluster.ClusterBackend` for the options.
    """

    name = "pytorchjob"
    kind = PYTORCH_JOBS

    def manifest(
        self, job: TrainingJob, run: RunContext, name: str, identity: RunIdentity | None
    ) -> Obj:
        meta_labels = manifests.labels(run, identity, job)
        notes = manifests.identity_annotations(identity, job)

        def replica(count: int) -> Obj:
            return {
                "replicas": count,
                "restartPolicy": "Never",
                "template": {
                    "metadata": {"labels": dict(meta_labels), "annotations": dict(notes)},
                    # the operator finds the trainer container by this name
                    "spec": manifests.pod_spec(job, run, name, container_name="pytorch"),
                },
            }

        replicas = {"Master": replica(1)}
        if job.workers > 1:
            replicas["Worker"] = replica(job.workers - 1)
        # Running: once the job has ended, replicas still running are stopped (a failed worker
        # must not leave the master training alone); finished pods stay, for their logs.
        policy: Obj = {"backoffLimit": job.backoff_limit, "cleanPodPolicy": "Running"}
        if job.active_deadline_seconds:
            policy["activeDeadlineSeconds"] = job.active_deadline_seconds
        if job.ttl_seconds_after_finished is not None:
            policy["ttlSecondsAfterFinished"] = job.ttl_seconds_after_finished
        if job.queue:
            meta_labels[manifests.KUEUE_QUEUE] = job.queue
            policy["suspend"] = True
        body = {
            "apiVersion": self.kind.api_version,
            "kind": self.kind.kind,
            "metadata": {"name": name, "labels": meta_labels, "annotations": notes},
            "spec": {"pytorchReplicaSpecs": replicas, "runPolicy": policy},
        }
        return manifests.finish(body)

    def pod_selector(self, name: str) -> str:
        return f"training.kubeflow.org/job-name={name}"

    def decide(self, obj: Obj | None, pods: list[Obj]) -> JobStatus:
        return podstate.owner_status(obj, pods, self._now(), self.limits, PYTORCH)


class TrainJobBackend(ClusterBackend):
    """Runs a ``TrainingJob`` as a Kubeflow Trainer ``TrainJob`` on a training runtime.

    Args:
        runtime: the (Cluster)TrainingRuntime that holds the pod template (e.g. Trainer's
            ``torch-distributed``).
        runtime_kind: ``ClusterTrainingRuntime`` (cluster-wide) or ``TrainingRuntime``.
        **options: see :class:`~mlrelay.training.cluster.ClusterBackend`.
    """

    name = "trainjob"
    kind = TRAIN_JOBS

    # What a TrainJob's ``spec.trainer`` cannot carry: it belongs in the runtime's template.
    _RUNTIME_FIELDS = (
        "node_selector", "tolerations", "affinity", "volumes", "service_account",
        "image_pull_secrets", "priority_class", "working_dir", "active_deadline_seconds",
        "ttl_seconds_after_finished",
    )  # fmt: skip

    def __init__(
        self,
        settings: Any = None,
        *,
        runtime: str = "torch-distributed",
        runtime_kind: str = "ClusterTrainingRuntime",
        **options: Any,
    ) -> None:
        super().__init__(settings, **options)
        if runtime_kind not in ("ClusterTrainingRuntime", "TrainingRuntime"):
            raise ConfigError(
                "runtime_kind must be ClusterTrainingRuntime or TrainingRuntime",
                field="runtime_kind",
            )
        self.runtime, self.runtime_kind = runtime, runtime_kind

    def validate(self, job: TrainingJob) -> None:
        super().validate(job)
        given = [f for f in self._RUNTIME_FIELDS if getattr(job, f) not in (None, [], {})]
        if given:
            raise ConfigError(
                f"a TrainJob takes {', '.join(given)} from its training runtime "
                f"({self.runtime_kind} {self.runtime!r}); set them there",
                field=given[0],
            )

    def manifest(
        self, job: TrainingJob, run: RunContext, name: str, identity: RunIdentity | None
    ) -> Obj:
        meta_labels = manifests.labels(run, identity, job)
        container = manifests.container(job, run, name)
        trainer: Obj = {
            "image": container["image"],
            "command": container["command"],
            "args": container["args"],
            "env": container["env"],
            "numNodes": job.workers,
        }
        if container.get("resources"):
            trainer["resourcesPerNode"] = container["resources"]
        spec: Obj = {
            "runtimeRef": {
                "name": self.runtime,
                "kind": self.runtime_kind,
                "apiGroup": "trainer.kubeflow.org",
            },
            "trainer": trainer,
            "labels": dict(meta_labels),  # propagated to the JobSet and its pods
        }
        if job.queue:
            meta_labels[manifests.KUEUE_QUEUE] = job.queue
            spec["suspend"] = True
        body = {
            "apiVersion": self.kind.api_version,
            "kind": self.kind.kind,
            "metadata": {
                "name": name,
                "labels": meta_labels,
                "annotations": manifests.identity_annotations(identity, job),
            },
            "spec": spec,
        }
        return manifests.finish(body)

    def pod_selector(self, name: str) -> str:
        return f"jobset.sigs.k8s.io/jobset-name={name}"

    # Trainer labels the JobSet with the TrainJob's ``spec.labels``, not necessarily its pods:
    # the namespace's JobSet pods are watched (and ours picked out by the label above).
    pods_selector = "jobset.sigs.k8s.io/jobset-name"

    def decide(self, obj: Obj | None, pods: list[Obj]) -> JobStatus:
        created = _condition_false(obj, "Created")
        if created is not None and created.get("reason") in (
            "JobsBuildFailed",
            "JobsCreationFailed",
        ):
            return JobStatus(
                state=JobState.FAILED,
                reason=str(created["reason"]),
                message=f"{created.get('message')} (runtime {self.runtime_kind} {self.runtime!r})",
            )
        return podstate.owner_status(obj, pods, self._now(), self.limits, TRAINJOB)


def _pytorch_reason(condition: Any) -> str:
    """The operator's Failed condition says why only in words; name the cause as data."""
    message = str(condition.get("message") or "")
    if "backoff limit" in message:
        return "BackoffLimitExceeded"
    if "deadline" in message:
        return "DeadlineExceeded"
    return "Failed"


PYTORCH = podstate.Vocabulary(
    kind="PyTorchJob", success=("Succeeded",), failure=("Failed",), reason=_pytorch_reason
)
TRAINJOB = podstate.Vocabulary(
    kind="TrainJob", success=("Complete",), failure=("Failed",), reason=lambda c: "Failed"
)


def _condition_false(obj: Obj | None, type_: str) -> Obj | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "False":
            return dict(c)
    return None
