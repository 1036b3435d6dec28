"""The emulated Kubeflow Training Operator (v1.8): a controller for ``kubeflow.org/v1`` PyTorchJobs.

Pods are ``<job>-master-0`` and ``<job>-worker-<i>`` with the operator's labels
(``training.kubeflow.org/{operator-name,job-name,replica-type,replica-index,job-role}``) and a
controller owner reference, so deleting the job collects them. Every container gets the env the
operator's ``setPodEnv`` appends: ``PYTHONUNBUFFERED=0`` (sic: any non-empty value unbuffers
Python), ``MASTER_PORT``, ``MASTER_ADDR=<job>-master-0``, ``WORLD_SIZE``, ``RANK`` (workers are
index + 1), ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_NNODES``. No Services are created
(pods are local processes), so ``MASTER_ADDR`` names a host that does not resolve here.

Status follows ``pkg/controller.v1/common/job.go`` and ``pytorchjob_controller.go``: conditions
Created, Running, Restarting, Succeeded, Failed and Suspended with reasons ``PyTorchJob<Type>``
and the operator's messages (see :func:`~mlrelay.testing.pytorchspec.set_condition`).
``replicaStatuses`` is recounted from the current pods each sync and, as Go's ``omitempty`` does,
leaves out zero counts. The job succeeds when the Master succeeds (running Workers then count as
succeeded, and keep running under the default ``cleanPodPolicy: None``); it fails on a Failed pod
under ``restartPolicy: Never``, a non-retryable exit code (< 128) under ``ExitCode``,
``backoffLimit`` (container restarts of running pods, or any new failure when the limit is 0) or
``activeDeadlineSeconds``. Suspending deletes the pods and keeps ``startTime``; resuming resets it.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from mlrelay.testing.jobstatus import owned
from mlrelay.testing.kinds import PODS, Obj
from mlrelay.testing.pytorchspec import (
    CONTAINER,
    KIND,
    OPERATOR,
    PREFIX,
    defaulted,
    is_true,
    pod_env,
    set_condition,
)
from mlrelay.testing.reconciler import Key, Reconciler
from mlrelay.testing.recorder import Clock, gone_ok, parse_time, record_event, timestamp, utcnow
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store, WatchEvent


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


class PyTorchJobController(Reconciler):
    """Reconciles PyTorchJobs into pods from store events plus a resync (deadlines, TTLs)."""

    name = OPERATOR

    def __init__(self, store: Store, *, resync: float = 0.25, clock: Clock = utcnow) -> None:
        store.register(KIND)
        super().__init__(store, kinds=[KIND, PODS], resync=resync)
        self._clock = clock
        self._reported: set[str] = set()  # pods whose exit code was already an event

    def on_event(self, event: WatchEvent) -> None:
        self.enqueue_owner(event, KIND)

    def resync_keys(self) -> list[Key]:
        return [_key(j) for j in self.store.list(KIND)[0]]

    # -- reconcile (ReconcileJobs) -------------------------------------------------------------
    def sync(self, key: Key) -> None:
        try:
            job = self.store.get(KIND, *key)
        except ApiError:
            return
        meta, name = job["metadata"], job["metadata"]["name"]
        if meta.get("deletionTimestamp"):
            return
        spec, now = defaulted(job.get("spec") or {}), self._clock()
        run, replicas = spec["runPolicy"], spec["pytorchReplicaSpecs"]
        status: Obj = copy.deepcopy(job.get("status") or {})
        if not status.get("conditions"):
            set_condition(
                status,
                "Created",
                "True",
                "PyTorchJobCreated",
                f"PyTorchJob {name} is created.",
                now,
            )
        pods = self.store.list(PODS, meta["namespace"], lambda p: owned(p, meta["uid"]))[0]
        if is_true(status, "Succeeded") or is_true(status, "Failed"):
            self._clean_up(job, run, pods)
            if is_true(status, "Succeeded"):
                for counts in (status.get("replicaStatuses") or {}).values():
                    if counts.get("active"):
                        counts["succeeded"] = counts.get("succeeded", 0) + counts.pop("active")
            self._write(job, status)
            self._expire(job, run, status, now)
            return
        if run.get("suspend"):
            self._suspend(job, status, pods, now)
            return
        if is_true(status, "Suspended"):
            message = f"PyTorchJob {name} is resumed."
            set_condition(status, "Suspended", "False", "PyTorchJobResumed", message, now)
            status["startTime"] = timestamp(now)
            self._event(job, "Normal", "PyTorchJobResumed", message)
        failure = self._limit_exceeded(job, spec, status, pods, now)
        if failure:
            status.setdefault("completionTime", timestamp(now))
            self._clean_up(job, run, pods)  # DeletePodsAndServices honours cleanPodPolicy
            self._event(job, "Normal", "PyTorchJobFailed", failure)
            set_condition(status, "Failed", "True", "PyTorchJobFailed", failure, now)
            self._write(job, status)
            self._expire(job, run, status, now)
            return
        status["replicaStatuses"] = {
            rtype: self._reconcile_pods(job, spec, status, pods, rtype, now) for rtype in replicas
        }
        self._update_status(job, replicas, status, now)
        self._write(job, status)

    def _suspend(self, job: Obj, status: Obj, pods: list[Obj], now: datetime) -> None:
        name = job["metadata"]["name"]
        status.setdefault("replicaStatuses", {})
        for pod in pods:
            self._delete_pod(job, pod)
        for counts in (status.get("replicaStatuses") or {}).values():
            counts.pop("active", None)
        message = f"PyTorchJob {name} is suspended."
        if is_true(status, "Running"):
            set_condition(status, "Running", "False", "PyTorchJobSuspended", message, now)
        if not is_true(status, "Suspended"):
            set_condition(status, "Suspended", "True", "PyTorchJobSuspended", message, now)
            self._event(job, "Normal", "PyTorchJobSuspended", message)
        self._write(job, status)

    def _limit_exceeded(
        self, job: Obj, spec: Obj, status: Obj, pods: list[Obj], now: datetime
    ) -> str | None:
        """The backoffLimit / activeDeadlineSeconds failure message, if one applies."""
        run, name = spec["runPolicy"], job["metadata"]["name"]
        limit = run.get("backoffLimit")
        if limit is not None:
            active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed")]
            active = [p for p in active if not p["metadata"].get("deletionTimestamp")]
            total = sum(int(r["replicas"]) for r in spec["pytorchReplicaSpecs"].values())
            failed = sum(_phase(p) == "Failed" for p in pods)
            before = sum(c.get("failed", 0) for c in (status.get("replicaStatuses") or {}).values())
            new_failure = failed > before and len(active) != total and limit < 1
            if new_failure or self._past_backoff(spec, pods, int(limit)):
                return f"Job {name} has failed because it has reached the specified backoff limit"
        deadline, started = run.get("activeDeadlineSeconds"), status.get("startTime")
        if (
            deadline is not None
            and started
            and now - parse_time(started) >= timedelta(seconds=deadline)
        ):
            return f"Job {name} has failed because it was active longer than specified deadline"
        return None

    @staticmethod
    def _past_backoff(spec: Obj, pods: list[Obj], limit: int) -> bool:
        """``core.PastBackoffLimit``: container restarts of running pods whose replica restarts."""
        restarts = 0
        for rtype, rspec in spec["pytorchReplicaSpecs"].items():
            if rspec["restartPolicy"] not in ("OnFailure", "Always", "ExitCode"):
                continue
            for pod in pods:
                if pod["metadata"]["labels"].get(PREFIX + "replica-type") != rtype.lower():
                    continue
                if _phase(pod) == "Running":
                    statuses = (pod.get("status") or {}).get("containerStatuses") or []
                    restarts += sum(int(s.get("restartCount", 0)) for s in statuses)
        return restarts > 0 if limit == 0 else restarts >= limit

    def _reconcile_pods(
        self, job: Obj, spec: Obj, status: Obj, pods: list[Obj], rtype: str, now: datetime
    ) -> Obj:
        """``ReconcilePods`` for one replica type: create missing indexes, restart retryable
        failures; returns the replica's counts (zeros left out, as Go's omitempty does)."""
        rspec, name = spec["pytorchReplicaSpecs"][rtype], job["metadata"]["name"]
        by_index: dict[int, Obj] = {}
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            if labels.get(PREFIX + "replica-type") == rtype.lower():
                by_index.setdefault(int(labels.get(PREFIX + "replica-index", -1)), pod)
        counts: dict[str, int] = {}
        for index in sorted(set(range(int(rspec["replicas"]))) | set(by_index)):
            if index not in by_index:
                self._create_pod(job, spec, rtype, index)
                continue
            pod = by_index[index]
            if index >= int(rspec["replicas"]):
                self._delete_pod(job, pod)
            code = self._exit_code(job, pod)
            policy, phase = rspec["restartPolicy"], _phase(pod)
            retryable = policy in ("OnFailure", "Always") or (policy == "ExitCode" and code >= 128)
            if phase == "Failed" and retryable:
                self._delete_pod(job, pod)
                message = f"job {name} is restarting because {rtype} replica(s) failed."
                self._event(job, "Warning", "PyTorchJobRestarting", message)
                set_condition(status, "Restarting", "True", "PyTorchJobRestarting", message, now)
            elif phase == "Failed" and policy == "ExitCode":
                message = f'job "{name}" is failing because "{rtype}" replica(s) failed.'
                self._event(job, "Warning", "PyTorchJobFailed", message)
                set_condition(status, "Failed", "True", "PyTorchJobFailed", message, now)
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            field = {"Running": "failed" if deleting else "active"}.get(phase)
            field = field or {"Succeeded": "succeeded", "Failed": "failed"}.get(phase)
            if field:
                counts[field] = counts.get(field, 0) + 1
        return counts

    def _update_status(self, job: Obj, replicas: Obj, status: Obj, now: datetime) -> None:
        """The PyTorchJob ``UpdateJobStatus``: Running, Succeeded, Restarting, Failed."""
        meta = job["metadata"]
        name, qualified = meta["name"], f"{meta['namespace']}/{meta['name']}"
        status.setdefault("startTime", timestamp(now))
        for rtype, rspec in replicas.items():
            counts = status["replicaStatuses"][rtype]
            succeeded, running, failed = (
                counts.get(k, 0) for k in ("succeeded", "active", "failed")
            )
            expected = int(rspec["replicas"]) - succeeded
            if "Master" in replicas and rtype == "Master":  # the Master decides
                if running > 0:
                    self._running(status, f"PyTorchJob {name} is running.", now)
                if expected == 0:
                    self._succeeded(
                        job, status, f"PyTorchJob {name} is successfully completed.", now
                    )
                    return
            elif "Master" not in replicas and rtype == "Worker":  # all Workers decide
                if expected == 0:
                    self._succeeded(
                        job, status, f"PyTorchJob {qualified} successfully completed.", now
                    )
                elif running > 0:
                    self._running(status, f"PyTorchJob {qualified} is running.", now)
            if failed > 0 and int(rspec["replicas"]) > succeeded + running:
                what = f"{failed} {rtype} replica(s) failed."
                if rspec["restartPolicy"] != "Never":
                    message = f"PyTorchJob {name} is restarting because {what}"
                    self._event(job, "Warning", "PyTorchJobRestarting", message)
                    set_condition(
                        status, "Restarting", "True", "PyTorchJobRestarting", message, now
                    )
                else:
                    message = f"PyTorchJob {name} is failed because {what}"
                    self._event(job, "Normal", "PyTorchJobFailed", message)
                    status.setdefault("completionTime", timestamp(now))
                    set_condition(status, "Failed", "True", "PyTorchJobFailed", message, now)

    @staticmethod
    def _running(status: Obj, message: str, now: datetime) -> None:
        set_condition(status, "Running", "True", "PyTorchJobRunning", message, now)

    def _succeeded(self, job: Obj, status: Obj, message: str, now: datetime) -> None:
        if not is_true(status, "Succeeded"):
            self._event(job, "Normal", "PyTorchJobSucceeded", message)
        status.setdefault("completionTime", timestamp(now))
        set_condition(status, "Succeeded", "True", "PyTorchJobSucceeded", message, now)

    # -- pods ----------------------------------------------------------------------------------
    def _create_pod(self, job: Obj, spec: Obj, rtype: str, index: int) -> None:
        meta, rspec = job["metadata"], spec["pytorchReplicaSpecs"][rtype]
        template = copy.deepcopy(rspec.get("template") or {})
        tmeta, pod_spec = template.get("metadata") or {}, template.get("spec") or {}
        labels = {
            **(tmeta.get("labels") or {}),
            PREFIX + "operator-name": OPERATOR,
            PREFIX + "job-name": meta["name"].replace("/", "-"),
            PREFIX + "replica-type": rtype.lower(),
            PREFIX + "replica-index": str(index),
        }
        if rtype == "Master":
            labels[PREFIX + "job-role"] = "master"
        env = pod_env(meta["name"], spec, rtype, index)
        for container in pod_spec.get("containers") or []:
            container["env"] = [*(container.get("env") or []), *env]
        policy = rspec["restartPolicy"]
        pod_spec["restartPolicy"] = "Never" if policy == "ExitCode" else policy
        owner = {
            "apiVersion": KIND.api_version,
            "kind": KIND.kind,
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        pod_name = f"{meta['name']}-{rtype.lower()}-{index}".replace("/", "-")
        pod_meta = {"name": pod_name, "namespace": meta["namespace"], "labels": labels}
        pod_meta |= {
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner],
        }
        with gone_ok():
            self.store.create(PODS, {"metadata": pod_meta, "spec": pod_spec})
            self._event(job, "Normal", "SuccessfulCreatePod", f"Created pod: {pod_name}")

    def _exit_code(self, job: Obj, pod: Obj) -> int:
        """The ``pytorch`` container's exit code (0xbeef if it has none), as an event once."""
        for s in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (s.get("state") or {}).get("terminated")
            if s.get("name") == CONTAINER and terminated:
                code, meta = int(terminated.get("exitCode", 0)), pod["metadata"]
                if meta["uid"] not in self._reported:
                    self._reported.add(meta["uid"])
                    message = f"Pod: {meta['namespace']}.{meta['name']} exited with code {code}"
                    self._event(job, "Normal", "ExitedWithCode", message)
                return code
        return 0xBEEF

    def _clean_up(self, job: Obj, run: Obj, pods: list[Obj]) -> None:
        """``cleanPodPolicy`` once finished: None keeps every pod, Running the finished ones."""
        policy = run.get("cleanPodPolicy")
        for pod in pods:
            if policy == "All" or (policy == "Running" and _phase(pod) in ("Running", "Pending")):
                self._delete_pod(job, pod)

    def _expire(self, job: Obj, run: Obj, status: Obj, now: datetime) -> None:
        ttl, finished = run.get("ttlSecondsAfterFinished"), status.get("completionTime")
        if ttl is not None and finished and now > parse_time(finished) + timedelta(seconds=ttl):
            with gone_ok():
                self.store.delete(KIND, *_key(job), propagation="Background")

    def _delete_pod(self, job: Obj, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            return
        with gone_ok():
            self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
            self._event(
                job, "Normal", "SuccessfulDeletePod", f"Deleted pod: {pod['metadata']['name']}"
            )

    def _event(self, job: Obj, type_: str, reason: str, message: str) -> None:
        record_event(self.store, job, type_, reason, message, component=OPERATOR)

    def _write(self, job: Obj, status: Obj) -> None:
        if status != (job.get("status") or {}):
            with gone_ok():
                self.store.update_status(KIND, *_key(job), status)


def _key(job: Obj) -> Key:
    return (str(job["metadata"].get("namespace") or ""), str(job["metadata"]["name"]))
