"""The waiting half of a KServe rollout: the shared watch loop on one InferenceService.

Everything here only reads, except ``restore`` (which patches the previous predictor spec back
and waits for it to serve). ``wait`` turns what the watch saw into a ``RolloutStatus``, so that
the same rules (FAULTS D1-D3) decide whether it runs in the caller's process or a triggerer's:

- ready only when a revision other than the one serving before was created, is the ready one,
  Ready=True and ``observedGeneration >= generation`` (D2; ``Rollout.ready_on``);
- failed as soon as that new revision reports a failed load (D1; ``Rollout.failure``);
- a deadline ends the wait with the status last seen (D3).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlrelay.errors import DeploymentFailed, OperationTimeout
from mlrelay.kube.client import Kube
from mlrelay.kube.watch import Watch
from mlrelay.serving.isvc import (
    INFERENCE_SERVICES,
    MODEL_VERSION,
    PREVIOUS,
    PREVIOUS_VERSION,
    Obj,
    Rollout,
    without_canary,
)
from mlrelay.serving.rollout import RolloutHandle, RolloutStatus

log = logging.getLogger("mlrelay.serving")

Decision = tuple[str, Rollout]  # ("ready" | "failed", status)


@dataclass(frozen=True)
class Watcher:
    """Waits on InferenceServices of one namespace through the shared watch loop."""

    kube: Kube
    relist_interval: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic)

    def rollout(self, handle: RolloutHandle, timeout: float) -> RolloutStatus:
        """Until the new revision is ready or failed, or the canary step took effect."""
        name, revision, percent = handle.name, handle.revision, handle.step
        previous = handle.previous_revision

        def step_applied(r: Rollout) -> Decision | None:
            return (
                ("ready", r) if r.current and r.traffic().get(revision or "") == percent else None
            )

        def new_revision(r: Rollout) -> Decision | None:
            if r.ready_on(previous):
                return ("ready", r)
            if r.created not in (None, previous) and r.failure is not None:
                return ("failed", r)
            return None

        if percent is not None:
            decide, what = step_applied, f"{name} to {percent} %"
        else:
            decide, what = new_revision, f"{name} to be ready"
        try:
            decision = self.until(name, decide, timeout, what)
        except DeploymentFailed as exc:  # D3: the deadline, with the status last seen
            return RolloutStatus(
                state="timeout", reason=exc.reason, message=f"{what}: not done after {timeout:g}s",
                failure_info=exc.failure_info,
            )  # fmt: skip
        if decision is None or decision[0] == "failed":
            return RolloutStatus.failed(decision[1] if decision and decision[1].obj else None)
        return RolloutStatus.ready(decision[1])

    def restore(self, existing: Obj, timeout: float, old: Obj | None = None) -> Rollout | None:
        """Put the previous predictor spec back (``old``, else the one the annotation keeps);
        the Rollout once it serves, None if it did not."""
        name = existing["metadata"]["name"]
        notes = existing["metadata"].get("annotations") or {}
        old = old if old is not None else json.loads(notes[PREVIOUS])
        now = without_canary((existing.get("spec") or {}).get("predictor"))
        patch_predictor = {
            **{k: None for k in now if k not in old},
            **old,
            "canaryTrafficPercent": None,
        }
        annotations = {
            MODEL_VERSION: notes.get(PREVIOUS_VERSION),
            PREVIOUS: None,
            PREVIOUS_VERSION: None,
        }
        self.kube.patch(
            INFERENCE_SERVICES, name,
            {"metadata": {"annotations": annotations}, "spec": {"predictor": patch_predictor}},
        )  # fmt: skip
        failed_revision = Rollout(existing).created
        try:
            decision = self.until(
                name,
                lambda r: ("ready", r) if r.ready_on(failed_revision) else None,
                timeout,
                f"restoring {name}",
            )
        except DeploymentFailed as exc:
            log.error("could not restore the previous spec of %s: %s", name, exc)
            return None
        if decision is None or decision[0] == "failed":
            log.error("could not restore the previous spec of %s: it is gone", name)
            return None
        return decision[1]

    def until(
        self, name: str, decide: Callable[[Rollout], Decision | None], timeout: float, what: str,
        *, gone_ok: bool = False,
    ) -> Decision | None:  # fmt: skip
        """The first decision ``decide`` takes on the InferenceService's status; None when it is
        gone and ``gone_ok``; ("failed", empty) when it is gone otherwise (D3 on the deadline)."""
        last: list[Rollout] = []
        with Watch() as watch:
            informer = watch.add(
                self.kube, INFERENCE_SERVICES, self.kube.namespace,
                field_selector=f"metadata.name={name}", relist_interval=self.relist_interval,
            )  # fmt: skip

            def step() -> Decision | str | None:
                obj = informer.snapshot().get(name)
                if obj is None:
                    return "gone" if gone_ok else ("failed", Rollout({}))
                last[:] = [Rollout(obj)]
                return decide(last[0])

            try:
                result = watch.until(step, timeout=timeout, what=what, clock=self.clock)
            except OperationTimeout:
                status = last[0].summary() if last else {}
                raise DeploymentFailed(
                    f"{what}: not done after {timeout:g}s",
                    name=name, reason="Timeout", rolled_back=False, failure_info={"status": status},
                ) from None  # fmt: skip
        return result if isinstance(result, tuple) else None
