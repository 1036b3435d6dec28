"""``DeploymentTrigger``: wait for a KServe rollout in the triggerer, not on a worker.

The task applies the InferenceService (``KServeBackend.begin``) and defers with the rollout's
handle; the trigger runs the core's wait (``KServeBackend.wait``: the shared watch loop, FAULTS
D1-D3) and fires one event carrying the final ``RolloutStatus``. The task resumes from that
status (O7) to smoke-test and promote, or restore the previous spec; a canary with several
steps defers once per step. The smoke test and the promotion stay on the worker: the trigger
only reads, so a triggerer restart can repeat it at no risk, and the V2 requests of the smoke
test go from where the task runs, as they do without deferral.

- **Deadline** (O6): at the handle's absolute deadline (the spec's ``ready_timeout`` or the
  task's ``execution_timeout``, whichever ends first) the trigger undoes the rollout itself
  (the previous spec restored, a first deploy removed) and reports ``Timeout``, so nothing is
  left half rolled out even if the task never runs again.
- **Kill** (O4): a user who marks the deferred task failed makes Airflow 3.3+ call
  ``on_kill``, which undoes the rollout. A triggerer restart calls only ``cleanup``, which
  leaves it alone: the trigger is re-created and waits on the same handle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlrelay.triggers.training import _daemon

if TYPE_CHECKING:
    from mlrelay.serving.kserve import KServeBackend
    from mlrelay.serving.rollout import RolloutHandle, RolloutStatus

# A deadline that passed while no trigger ran (a triggerer restart) still gets one last look.
LAST_LOOK = 2.0


class DeploymentTrigger(BaseTrigger):
    """Fires once the rollout of ``handle`` reached its next decision (or the deadline passed).

    Event payload: ``handle`` (as given), and either ``status`` (the ``RolloutStatus`` JSON),
    or ``error`` when the rollout could not be followed (the API unreachable, ...), in which
    case the task undoes it when it resumes.

    Args:
        handle: the ``RolloutHandle`` JSON of the rollout.
        backend_options: JSON keyword arguments of ``KServeBackend`` (``relist_interval``).
        kubernetes_conn_id, namespace: the cluster.
        deadline: POSIX time at which the rollout is undone and reported as ``Timeout``.
    """

    def __init__(
        self,
        *,
        handle: dict[str, Any],
        backend_options: dict[str, Any] | None = None,
        kubernetes_conn_id: str | None = None,
        namespace: str | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.handle = handle
        self.backend_options = backend_options or {}
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.deadline = deadline
        self._backend: KServeBackend | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "handle": self.handle,
                "backend_options": self.backend_options,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "namespace": self.namespace,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlrelay.serving.rollout import RolloutHandle

        handle = RolloutHandle.model_validate(self.handle)
        try:
            backend = await self._get_backend()
            status = await _daemon(self._wait, backend, handle)
        except Exception as exc:
            self.log.exception("could not follow the rollout of %r", handle.name)
            yield _event(handle=self.handle, error=f"{type(exc).__name__}: {exc}")
            return
        yield _event(handle=self.handle, status=status.model_dump(mode="json"))

    async def on_kill(self) -> None:
        """The user acted on the deferred task (Airflow 3.3+): undo the rollout (O4)."""
        from mlrelay.serving.rollout import RolloutHandle

        handle = RolloutHandle.model_validate(self.handle)
        backend = await self._get_backend()
        self.log.info("task killed while deferred: undoing the rollout of %r", handle.name)
        await _daemon(backend.abort, handle)

    async def cleanup(self) -> None:
        # Every exit, a triggerer restart included: the rollout is left as it is, to be waited
        # on again by the re-created trigger (or undone by on_kill / at the deadline).
        return None

    async def _get_backend(self) -> KServeBackend:
        if self._backend is None:  # reads a connection: off the event loop
            self._backend = await asyncio.to_thread(self._build_backend)
        return self._backend

    def _build_backend(self) -> KServeBackend:
        from airflow_mlrelay._backends import serving_backend

        backend: KServeBackend = serving_backend(  # type: ignore[assignment]
            "kserve", self.backend_options, mlflow=None,  # type: ignore[arg-type]
            kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace,
        )  # fmt: skip
        return backend

    def _wait(self, backend: KServeBackend, handle: RolloutHandle) -> RolloutStatus:
        if self.deadline is None:
            return backend.wait(handle)
        status = backend.wait(handle, timeout=max(self.deadline - time.time(), LAST_LOOK))
        if status.state != "timeout":
            return status
        restored = backend.abort(handle)
        deadline = datetime.fromtimestamp(self.deadline, UTC).isoformat()
        self.log.warning("rollout of %r not done at its deadline %s: undone", handle.name, deadline)
        message = f"{status.message} (the task's deadline, {deadline}): the rollout was undone"
        return status.model_copy(update={"restored": restored, "message": message})


def _event(**payload: Any) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]
