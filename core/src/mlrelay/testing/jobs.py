"""The emulated ``batch/v1`` Job controller: pods from the template, counters and conditions.

It follows https://kubernetes.io/docs/concepts/workloads/controllers/job/ as of Kubernetes 1.31+:
a Job that meets its success criteria first gets ``SuccessCriteriaMet``, and ``Complete`` only
once no pod of it is left running; a failing Job first gets ``FailureTarget`` (reason
BackoffLimitExceeded, DeadlineExceeded or PodFailurePolicy), its remaining pods are terminated,
and only then ``Failed`` ("Terminal Job conditions", #termination-of-job-pods). Both steps are
separate status writes, so a watcher sees them in that order. ``completionTime`` is only set on
success. Pods are counted once (by uid, like the controller's uncountedTerminatedPods tracking):
a pod that disappears before it finished counts as failed, except pods the controller removed
itself because the Job was suspended.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mlrelay.testing.jobstatus import (
    INDEX_KEY,
    completion_index,
    failure_policy,
    index_ranges,
    is_ready,
    new_condition,
    owned,
    true_condition,
)
from mlrelay.testing.kinds import JOBS, PODS, Obj
from mlrelay.testing.reconciler import Key, Reconciler
from mlrelay.testing.recorder import (
    Clock,
    gone_ok,
    parse_time,
    record_event,
    timestamp,
    utcnow,
)
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store, WatchEvent

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what apiserver's generateName draws from
BACKOFF = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")
SUCCESS = ("CompletionsReached", "Reached expected number of succeeded pods")


@dataclass
class _Tracking:
    """Per-Job memory: which pods were counted, which were seen running, which we removed."""

    counted: set[str] = field(default_factory=set)
    alive: set[str] = field(default_factory=set)
    excused: set[str] = field(default_factory=set)
    done_indexes: set[int] = field(default_factory=set)
    started: datetime | None = None
    policy_failure: str | None = None


class JobController(Reconciler):
    """Reconciles Jobs into pods from store events plus a periodic resync (for deadlines and TTLs)."""

    name = "job-controller"

    def __init__(
        self, store: Store, *, resync: float = 0.25, clock: Clock = utcnow, seed: int | None = None
    ) -> None:
        super().__init__(store, kinds=[JOBS, PODS], resync=resync)
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 (pod-name suffixes, seedable for tests)
        self._jobs: dict[str, _Tracking] = {}

    def on_event(self, event: WatchEvent) -> None:
        self.enqueue_owner(event, JOBS)

    def resync_keys(self) -> list[Key]:
        """Every Job (deadlines and TTLs need time, not events); forget the deleted ones."""
        jobs = self.store.list(JOBS)[0]
        uids = {j["metadata"]["uid"] for j in jobs}
        self._jobs = {uid: t for uid, t in self._jobs.items() if uid in uids}
        return [_job_key(j) for j in jobs]

    # -- reconcile ---------------------------------------------------------------------------
    def sync(self, key: Key) -> None:
        ns, name = key
        try:
            job = self.store.get(JOBS, ns, name)
        except ApiError:
            return
        meta, spec = job["metadata"], job["spec"]
        if meta.get("deletionTimestamp"):
            return
        status: dict[str, Any] = copy.deepcopy(job.get("status") or {})
        now = self._clock()
        if true_condition(status, "Complete") or true_condition(status, "Failed"):
            self._expire(job, status, now)
            return
        track = self._jobs.setdefault(meta["uid"], _Tracking())
        pods = self.store.list(PODS, ns, lambda p: owned(p, meta["uid"]))[0]
        active, terminating = self._count(job, pods, status, track)
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        if indexed:
            status["completedIndexes"] = index_ranges(track.done_indexes)
        restarts = sum(
            s.get("restartCount", 0)
            for p in active
            for s in p.get("status", {}).get("containerStatuses") or []
        )
        target = true_condition(status, "FailureTarget") or true_condition(
            status, "SuccessCriteriaMet"
        )
        if target is None:
            started = track.started or (
                parse_time(status["startTime"]) if status.get("startTime") else None
            )
            deadline = spec.get("activeDeadlineSeconds")
            done = len(track.done_indexes) if indexed else status.get("succeeded", 0)
            if track.policy_failure:
                target = new_condition(
                    "FailureTarget", "PodFailurePolicy", track.policy_failure, now
                )
            elif status.get("failed", 0) + restarts > spec.get("backoffLimit", 6):
                target = new_condition("FailureTarget", *BACKOFF, now)
            elif (
                deadline is not None
                and started
                and not spec.get("suspend")
                and now - started >= timedelta(seconds=deadline)
            ):
                target = new_condition("FailureTarget", *DEADLINE, now)
            elif (done >= completions) if completions is not None else (done > 0 and not active):
                target = new_condition("SuccessCriteriaMet", *SUCCESS, now)
            if target is not None:
                status.setdefault("conditions", []).append(target)
        if target is not None:
            for pod in active:
                self._delete_pod(job, pod)
            status.update(active=0, ready=0, terminating=terminating + len(active))
            self._write(job, status)
            if not active and not terminating:
                self._finish(job, status, target, now)
            return
        if spec.get("suspend"):
            for pod in active:
                track.excused.add(pod["metadata"]["uid"])
                self._delete_pod(job, pod)
            active = []
            suspended = true_condition(status, "Suspended")
            if suspended is None or suspended["status"] != "True":
                fresh = new_condition("Suspended", "JobSuspended", "Job suspended", now)
                if suspended is None:
                    status.setdefault("conditions", []).append(fresh)
                else:
                    suspended.update(fresh)
                record_event(
                    self.store,
                    job,
                    "Normal",
                    "Suspended",
                    "Job suspended",
                    component="job-controller",
                )
        else:
            suspended = true_condition(status, "Suspended")
            if suspended is not None and suspended["status"] == "True":
                # Resuming resets startTime, so activeDeadlineSeconds counts from here (job docs).
                suspended.update(
                    status="False",
                    reason="JobResumed",
                    message="Job resumed",
                    lastProbeTime=timestamp(now),
                    lastTransitionTime=timestamp(now),
                )
                status.pop("startTime", None)
                track.started = None
                record_event(
                    self.store, job, "Normal", "Resumed", "Job resumed", component="job-controller"
                )
            if not status.get("startTime"):
                status["startTime"], track.started = timestamp(now), now
            active += self._create_pods(job, active, status, track)
        status.update(
            active=len(active), terminating=terminating, ready=sum(is_ready(p) for p in active)
        )
        self._write(job, status)

    def _count(
        self, job: Obj, pods: list[Obj], status: dict[str, Any], track: _Tracking
    ) -> tuple[list[Obj], int]:
        """Fold newly finished (and vanished) pods into the counters; return active and terminating."""
        active, terminating, seen = [], 0, set()
        succeeded, failed = status.get("succeeded", 0), status.get("failed", 0)
        for pod in pods:
            uid, phase = pod["metadata"]["uid"], (pod.get("status") or {}).get("phase")
            seen.add(uid)
            if uid in track.counted:
                continue
            if phase == "Succeeded":
                track.counted.add(uid)
                succeeded += 1
                index = completion_index(pod)
                if index is not None:
                    track.done_indexes.add(index)
            elif phase == "Failed":
                track.counted.add(uid)
                action, message = failure_policy(job, pod)
                if action == "FailJob" and track.policy_failure is None:
                    track.policy_failure = message
                if action != "Ignore":
                    failed += 1
            elif pod["metadata"].get("deletionTimestamp"):
                terminating += 1
            else:
                active.append(pod)
        for uid in track.alive - seen - track.counted - track.excused:
            track.counted.add(uid)  # deleted before it finished: a failure, as with pod finalizers
            failed += 1
        track.alive = {p["metadata"]["uid"] for p in pods} - track.counted
        status.update(succeeded=succeeded, failed=failed, uncountedTerminatedPods={})
        return active, terminating

    def _create_pods(
        self, job: Obj, active: list[Obj], status: dict[str, Any], track: _Tracking
    ) -> list[Obj]:
        spec = job["spec"]
        completions, parallelism = spec.get("completions"), spec.get("parallelism", 1)
        if spec.get("completionMode") == "Indexed":
            busy = {completion_index(p) for p in active}
            todo: list[int | None] = [
                i for i in range(completions or 0) if i not in track.done_indexes and i not in busy
            ]
            todo = todo[: max(parallelism - len(active), 0)]
        else:
            left = (
                (completions - status.get("succeeded", 0))
                if completions is not None
                else (parallelism if not status.get("succeeded") else 0)
            )
            todo = [None] * max(min(parallelism, left) - len(active), 0)
        created = []
        for index in todo:
            pod = self._pod_from_template(job, index)
            with gone_ok():
                created.append(self.store.create(PODS, pod))
                track.alive.add(created[-1]["metadata"]["uid"])
                record_event(
                    self.store,
                    job,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    component="job-controller",
                )
        return created

    def _pod_from_template(self, job: Obj, index: int | None) -> Obj:
        meta, template = job["metadata"], copy.deepcopy(job["spec"]["template"])
        tmeta = template.get("metadata") or {}
        labels, annotations = dict(tmeta.get("labels") or {}), dict(tmeta.get("annotations") or {})
        prefix = f"{meta['name']}-" if index is None else f"{meta['name']}-{index}-"
        suffix = "".join(self._rng.choice(_ALPHABET) for _ in range(5))
        pod_spec = template["spec"]
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            ref = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}
            for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
                c.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "valueFrom": ref})
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        return {
            "metadata": {
                "name": prefix[: 63 - 5] + suffix,
                "generateName": prefix,
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner],
            },
            "spec": pod_spec,
        }

    def _finish(
        self, job: Obj, status: dict[str, Any], target: dict[str, Any], now: datetime
    ) -> None:
        """The terminal condition, once no pod is left: Complete or Failed, same reason."""
        success = target["type"] == "SuccessCriteriaMet"
        final = new_condition(
            "Complete" if success else "Failed", target["reason"], target["message"], now
        )
        status["conditions"].append(final)
        if success:
            status["completionTime"] = timestamp(now)
            record_event(
                self.store, job, "Normal", "Completed", "Job completed", component="job-controller"
            )
        else:
            record_event(
                self.store,
                job,
                "Warning",
                target["reason"],
                target["message"],
                component="job-controller",
            )
        self._write(job, status)
        self._jobs.pop(job["metadata"]["uid"], None)

    def _expire(self, job: Obj, status: dict[str, Any], now: datetime) -> None:
        """ttlSecondsAfterFinished: delete the finished Job (and its pods) once the TTL passed."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        final = true_condition(status, "Complete") or true_condition(status, "Failed")
        if ttl is None or final is None:
            return
        if now >= parse_time(final["lastTransitionTime"]) + timedelta(seconds=ttl):
            with gone_ok():
                self.store.delete(JOBS, *_job_key(job), propagation="Background")

    def _delete_pod(self, job: Obj, pod: Obj) -> None:
        with gone_ok():
            self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
            record_event(
                self.store,
                job,
                "Normal",
                "SuccessfulDelete",
                f"Deleted pod: {pod['metadata']['name']}",
                component="job-controller",
            )

    def _write(self, job: Obj, status: dict[str, Any]) -> None:
        if status == (job.get("status") or {}):
            return
        with gone_ok():
            job = self.store.update_status(JOBS, *_job_key(job), status)
        job["status"] = status


def _job_key(job: Obj) -> Key:
    return (str(job["metadata"].get("namespace") or ""), str(job["metadata"]["name"]))
