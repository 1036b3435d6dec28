"""A KServe rollout as three calls, so that its long wait can run somewhere else.

``KServeBackend.deploy`` is ``begin`` (apply the InferenceService), ``wait`` (the shared watch
loop, until the new revision is ready or failed: D1-D3) and ``complete`` (smoke test, canary
steps, promotion, or the way back), in a loop: ``complete`` returns the next handle while a
canary still has traffic steps to take, each step being one more wait. An orchestrator can run
the wait in another process (Airflow's triggerer) and the rest where the task runs.

The handle and the status are frozen, JSON-ready models: the handle travels in a trigger's
arguments and the status in its event. They carry what the later calls need and nothing
secret: the spec, the predictor spec to restore, the revisions. Not the smoke-test rows: they
are data (the model's input example), so ``complete`` reads them again where it runs instead of
storing them with a deferred task (``begin`` has checked them already). The status carries the
InferenceService's metadata and status as the wait last saw them, so the task resumes from them
without reading the object again (FAULTS O7).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mlrelay._model import Frozen
from mlrelay.errors import DeploymentFailed
from mlrelay.serving.isvc import Obj, Rollout
from mlrelay.serving.spec import Canary, DeploymentSpec

Action = Literal["create", "update", "resume", "unchanged"]
_NO_STEPS = ("create", "unchanged")  # a first deploy gets 100 % at once (D5)


class RolloutHandle(Frozen):
    """One rollout in progress: what ``wait``, ``complete`` and ``abort`` need, as JSON.

    Attributes:
        action: what ``begin`` did: ``create`` (a first deploy), ``update`` (patched in a new
            predictor), ``resume`` (this version is a canary already: carry on from there),
            ``unchanged`` (it serves this version already).
        previous: the predictor spec to restore if the rollout fails (``update``, ``resume``).
        previous_revision: the revision that served before (the new one must differ, D2).
        generation: ``metadata.generation`` after the apply.
        step: the canary traffic percent being waited for; ``None`` while waiting for the new
            revision to be ready.
        revision: the new revision, once it is ready.
        started_at: POSIX time of ``begin`` (timings span processes, so not a monotonic clock).
    """

    spec: DeploymentSpec
    namespace: str
    action: Action
    previous: dict[str, Any] | None = None
    previous_revision: str | None = None
    previous_version: str | None = None
    generation: int = 0
    step: int | None = None
    revision: str | None = None
    run_id: str | None = None
    smoke_test: dict[str, Any] | None = None
    started_at: float
    timings: dict[str, float] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def next_step(self) -> int | None:
        """The canary traffic percent after this wait (100 promotes), or None: done."""
        canary = self.spec.strategy
        if not isinstance(canary, Canary) or not canary.promote or self.action in _NO_STEPS:
            return None
        steps = [s for s in (canary.steps or []) if canary.percent < s < 100]
        targets = [*steps, 100]
        if self.step is None:
            return targets[0]
        later = [t for t in targets if t > self.step]
        return later[0] if later else None


class RolloutStatus(Frozen):
    """What one ``wait`` saw at its end.

    Attributes:
        state: ``ready`` (the revision is ready, or the canary step applied), ``failed`` (D1,
            or the InferenceService is gone), ``timeout`` (D3).
        reason, message, failure_info: why it failed (KServe's ``lastFailureInfo`` and the
            status summary), as ``DeploymentFailed`` will carry them.
        isvc: the InferenceService's metadata and status as last seen.
        restored: set when the waiter has already undone the rollout (a deadline or a kill
            while deferred): whether the previous version serves again.
    """

    state: Literal["ready", "failed", "timeout"]
    reason: str | None = None
    message: str = ""
    failure_info: dict[str, Any] = Field(default_factory=dict)
    isvc: dict[str, Any] = Field(default_factory=dict)
    restored: bool | None = None

    @classmethod
    def ready(cls, r: Rollout) -> RolloutStatus:
        return cls(state="ready", isvc=_trim(r.obj))

    @classmethod
    def failed(cls, r: Rollout | None) -> RolloutStatus:
        """The new revision failed to load (D1), or the object is gone (``r`` is None)."""
        failure = r.failure if r is not None else None
        if r is None or failure is None:
            return cls(
                state="failed", reason="DeletedExternally", message="the InferenceService is gone"
            )
        return cls(
            state="failed",
            reason=str(failure.get("reason") or "FailedToLoad"),
            message=f"revision {r.created} failed: {str(failure.get('message', ''))[-500:]}",
            failure_info={**failure, "status": r.summary()},
            isvc=_trim(r.obj),
        )

    @property
    def rollout(self) -> Rollout:
        return Rollout(self.isvc)

    def error(self, handle: RolloutHandle, rolled_back: bool, outcome: str) -> DeploymentFailed:
        """The ``DeploymentFailed`` this status ends the rollout with; ``outcome`` says what
        became of it (the previous version serves again, the new object was removed)."""
        return DeploymentFailed(
            f"{self.message}{'; ' + outcome if outcome else ''}",
            name=handle.name, reason=self.reason or "Failed", rolled_back=rolled_back,
            failure_info=self.failure_info,
        )  # fmt: skip


def _trim(obj: Obj) -> Obj:
    """What a rollout reads of the object: name, generation, annotations, status."""
    meta = obj.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "generation", "annotations") if k in meta}
    return {"metadata": keep, "status": obj.get("status") or {}}
