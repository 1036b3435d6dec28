"""What a cluster job's objects say about it: one reading of Job conditions and pod states.

Every cluster backend (batch Job, TrainJob, PyTorchJob) and every waiter (``wait``, an Airflow
trigger) decides through these functions, from the objects' own fields and timestamps, never
from when somebody started watching (a triggerer that restarts late must not see a false
startup timeout, FAULTS O5):

- the owner's terminal conditions decide success and failure (``Complete``/``SuccessCriteriaMet``,
  ``Failed``/``FailureTarget``: the latter two come first since Kubernetes 1.31, T9);
  counters (``succeeded``, ``failed``) are never read as an outcome;
- ``Suspended=True`` is "queued" (Kueue), never a timeout; ``Suspended=False`` is not terminal (T10);
- pods fail a job early where the owner would only retry: an image that cannot be pulled (T2),
  a crash loop (T3), a missing Secret key after a short grace (T4), a pod the scheduler cannot
  place for longer than the scheduling timeout (T5);
- every failed pod is an ``Attempt`` with its reason, exit code, message and memory limit (T1,
  T6, T8), and an evicted pod is one attempt among others, not the job's fate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlrelay.training.manifests import KUEUE_QUEUE
from mlrelay.training.spec import Attempt, JobState, JobStatus

Obj = Mapping[str, Any]

IMAGE_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
# Reasons more telling than the owner's "BackoffLimitExceeded" when every attempt had it.
SPECIFIC = frozenset({"OOMKilled", "Evicted"})


@dataclass(frozen=True)
class Limits:
    """How long a job may wait on things that will not fix themselves.

    Attributes:
        scheduling: seconds a pod may stay Unschedulable, from its creation (T5).
        config_error: seconds a container may stay in CreateContainerConfigError, from the
            pod's creation: a Secret created a moment after the job is fine (T4).
    """

    scheduling: float = 300.0
    config_error: float = 30.0


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def condition(obj: Obj | None, type_: str) -> Mapping[str, Any] | None:
    """The condition ``type_`` of ``obj`` if its status is "True" (the string: T10)."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def containers(pod: Obj) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def memory_limit(pod: Obj, container: str) -> str | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            return str(limit) if limit is not None else None
    return None


def attempt(pod: Obj) -> Attempt | None:
    """The pod as a failed attempt (phase Failed, or a container that terminated non-zero)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    name = str(meta.get("name", "?"))
    if status.get("phase") == "Failed" and status.get("reason"):  # Evicted, DeadlineExceeded
        return Attempt(pod=name, reason=str(status["reason"]), message=status.get("message"))
    for c in containers(pod):
        for state in (c.get("state") or {}, c.get("lastState") or {}):
            done = state.get("terminated")
            if done and done.get("exitCode", 0) != 0:
                reason = str(done.get("reason") or "Error")
                return Attempt(
                    pod=name,
                    reason=reason,
                    container=c.get("name"),
                    exit_code=done.get("exitCode"),
                    message=done.get("message"),
                    memory_limit=memory_limit(pod, c.get("name", ""))
                    if reason == "OOMKilled"
                    else None,
                )
    return None


def attempts(pods: Iterable[Obj]) -> list[Attempt]:
    found = [a for a in (attempt(p) for p in _by_age(pods)) if a is not None]
    return found


def pod_verdict(pods: Iterable[Obj], now: datetime, limits: Limits) -> JobStatus | None:
    """A failure the owner would not report (it retries forever), or None."""
    for pod in _by_age(pods):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        age = _seconds_since(meta.get("creationTimestamp"), now)
        for c in containers(pod):
            waiting = (c.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            message = f"pod {meta.get('name')}: {waiting.get('message') or reason}"
            if reason in IMAGE_ERRORS:
                return _failed(reason, message, pods)
            if reason == "CrashLoopBackOff":
                last = ((c.get("lastState") or {}).get("terminated")) or {}
                return _failed(reason, message, pods, exit_code=last.get("exitCode"))
            if reason in CONFIG_ERRORS and age >= limits.config_error:
                return _failed(reason, message, pods)
        scheduled = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled" and c.get("status") == "False"
            ),
            None,
        )
        if (
            scheduled is not None
            and scheduled.get("reason") == "Unschedulable"
            and age >= limits.scheduling
        ):
            message = (
                f"pod {meta.get('name')} could not be scheduled for {age:.0f}s "
                f"(scheduling timeout {limits.scheduling:g}s): {scheduled.get('message')}"
            )
            return _failed("Unschedulable", message, pods)
    return None


@dataclass(frozen=True)
class Vocabulary:
    """How an owner kind names its terminal conditions (a Job, a PyTorchJob, a TrainJob).

    Attributes:
        success, failure: condition types, in the order they appear (the target first).
        reason: the failure reason as data, from the failure condition.
    """

    kind: str
    success: tuple[str, ...]
    failure: tuple[str, ...]
    reason: Callable[[Mapping[str, Any]], str] = lambda c: str(c.get("reason") or "Failed")


def owner_status(
    owner: Obj | None, pods: Sequence[Obj], now: datetime, limits: Limits, words: Vocabulary
) -> JobStatus:
    """A job's state: the owner's terminal conditions first, then Suspended (queued), then
    what its pods say (a fail-fast verdict, running or pending)."""
    if (gone := deleted(owner, words.kind, pods)) is not None or owner is None:
        return gone or running_state(pods)  # deleted() always answers for a missing owner
    status = owner.get("status") or {}
    started = parse_time(status.get("startTime"))
    for done in words.success:
        if (c := condition(owner, done)) is not None:
            return JobStatus(
                state=JobState.SUCCEEDED,
                started_at=started,
                finished_at=parse_time(status.get("completionTime") or c.get("lastTransitionTime")),
                attempts=attempts(pods),  # an evicted pod retried is still reported (T6)
            )
    for bad in words.failure:
        if (c := condition(owner, bad)) is not None:
            message = str(c.get("message") or f"the {words.kind} failed")
            when = parse_time(c.get("lastTransitionTime"))
            result = failed(words.reason(c), message, pods, finished=when)
            return result.model_copy(update={"started_at": started})
    if condition(owner, "Suspended") is not None:
        queue = ((owner.get("metadata") or {}).get("labels") or {}).get(KUEUE_QUEUE)
        where = f" in Kueue queue {queue!r}" if queue else ""
        message = f"suspended{where}, waiting to be admitted"
        return JobStatus(state=JobState.QUEUED, reason="Suspended", message=message)
    current = pod_verdict(pods, now, limits) or running_state(pods)
    if current.state is not JobState.FAILED and condition(owner, "Restarting") is not None:
        current = current.model_copy(update={"message": "restarting failed replicas"})
    return current.model_copy(update={"started_at": started})


def deleted(owner: Obj | None, kind: str, pods: Iterable[Obj]) -> JobStatus | None:
    """FAILED(DeletedExternally) when the owner is gone or going and we did not delete it (K12)."""
    if owner is not None and not (owner.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return JobStatus(
        state=JobState.FAILED,
        reason="DeletedExternally",
        message=f"the {kind} was deleted while we waited for it",
        attempts=attempts(pods),
    )


def running_state(pods: Iterable[Obj]) -> JobStatus:
    """Pending or Running, from the pods (the owner is neither finished nor queued)."""
    pods = list(pods)
    if any((p.get("status") or {}).get("phase") == "Running" for p in pods):
        return JobStatus(state=JobState.RUNNING, attempts=attempts(pods))
    waiting = _pending_message(pods)
    return JobStatus(state=JobState.PENDING, message=waiting, attempts=attempts(pods))


def failed(
    reason: str, message: str, pods: Iterable[Obj], *, finished: datetime | None = None
) -> JobStatus:
    """A failure reported by the owner, refined by the pods: every attempt OOMKilled (or
    Evicted) says so instead of the owner's generic BackoffLimitExceeded (T1, T8)."""
    tried = attempts(pods)
    kinds = {a.reason for a in tried}
    if reason in ("BackoffLimitExceeded", "Failed") and len(kinds) == 1 and kinds <= SPECIFIC:
        reason = next(iter(kinds))
    if tried:
        message += "; attempts: " + "; ".join(_summary(a) for a in tried)
    code = next((a.exit_code for a in reversed(tried) if a.exit_code is not None), None)
    return JobStatus(
        state=JobState.FAILED,
        reason=reason,
        message=message,
        exit_code=code,
        finished_at=finished,
        attempts=tried,
    )


def _failed(
    reason: str, message: str, pods: Iterable[Obj], *, exit_code: int | None = None
) -> JobStatus:
    tried = attempts(pods)
    return JobStatus(
        state=JobState.FAILED, reason=reason, message=message, exit_code=exit_code, attempts=tried
    )


def _summary(a: Attempt) -> str:
    text = f"{a.pod} {a.reason}"
    if a.exit_code is not None:
        text += f" (exit {a.exit_code})"
    if a.memory_limit:
        text += f" at memory limit {a.memory_limit}"
    return text + (f": {a.message}" if a.message else "")


def _pending_message(pods: list[Obj]) -> str | None:
    for pod in pods:
        for c in containers(pod):
            waiting = (c.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                return f"{pod['metadata']['name']}: {waiting['reason']}"
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                return f"{pod['metadata']['name']}: {c.get('reason')}: {c.get('message')}"
    return None


def _seconds_since(value: object, now: datetime) -> float:
    since = parse_time(value)
    return (now - since).total_seconds() if since is not None else 0.0


def _by_age(pods: Iterable[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))
