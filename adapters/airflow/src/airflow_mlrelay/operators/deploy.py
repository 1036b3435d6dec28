"""``DeployModelOperator``: roll a registered model version out to a named, smoke-tested endpoint."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_mlrelay.exceptions import core_errors
from airflow_mlrelay.links import EndpointLink, MLflowModelVersionLink
from airflow_mlrelay.operators._base import ServingOperator, as_json

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlrelay.registry.spec import ModelVersionRef
    from mlrelay.serving.kserve import KServeBackend
    from mlrelay.serving.rollout import RolloutHandle
    from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec, Replace

# KServeBackend arguments a trigger rebuilds the backend with (JSON; the cluster comes from
# kubernetes_conn_id and the handle's namespace).
_TRIGGER_OPTIONS = ("relist_interval",)


class DeployModelOperator(ServingOperator):
    """Deploy ``model`` to the endpoint ``name``; return the ``Deployment`` JSON.

    The previous version serves until the new one is ready and has answered a smoke test; a
    rollout that fails leaves it serving and fails the task with ``DeploymentFailed`` (saying
    whether it rolled back). Deploying the version that already serves only checks it again.
    The endpoint and the model version are the task's extra links.

    The local backend (the KServe model server on the worker, ``127.0.0.1``) runs inline. On
    ``backend="kserve"`` the task applies the InferenceService and defers (``deferrable``
    defaults to True there): the triggerer waits for the new revision, the task resumes to
    smoke-test and promote it (once per canary step), with the same XCom as inline. The
    trigger's absolute deadline is ``ready_timeout`` or the task's ``execution_timeout``; at
    it the rollout is undone. A task killed while rolling out undoes the rollout too: the
    previous spec is restored (a first deploy removed), and the task fails.

    Args:
        name: the endpoint (DNS-1123) (templated).
        model: the ``ModelVersionRef`` of ``RegisterModelOperator`` (``register.output``), or
            ``"<model>@<alias>"`` / ``"<model>/<version>"`` (templated).
        strategy: ``"replace"``, or ``{"kind": "canary", "percent": 10}``, or the core's
            ``Replace()`` / ``Canary(10)`` (templated).
        sample_rows: rows for the smoke test; the model's input example when left out.
        backend: ``"local"`` or ``"kserve"`` (templated); ``backend_options`` are its arguments.
        kubernetes_conn_id, namespace: the cluster, for ``"kserve"``.
        deferrable: wait in the triggerer (default: on ``"kserve"``); the local backend
            always runs inline.
    """

    template_fields: Sequence[str] = (
        "name",
        "model",
        "strategy",
        "sample_rows",
        "backend",
        "namespace",
    )
    template_fields_renderers = {"model": "json", "strategy": "json", "sample_rows": "json"}
    operator_extra_links = (EndpointLink(), MLflowModelVersionLink())
    ui_color = "#f3ecfb"

    def __init__(
        self,
        *,
        name: str,
        model: dict[str, Any] | str,
        strategy: str | dict[str, Any] | Replace | Canary = "replace",
        sample_rows: list[dict[str, Any]] | None = None,
        smoke_test: bool = True,
        ready_timeout: float = 300.0,
        port: int | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.model = model
        self.strategy = strategy
        self.sample_rows = sample_rows
        self.smoke_test = smoke_test
        self.ready_timeout = ready_timeout
        self.port = port
        self.deferrable = deferrable
        self._stop: threading.Event | None = None
        self._rollout: tuple[KServeBackend, RolloutHandle] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.serving import deploy

        with core_errors():
            spec = self._spec()
            backend = self.serving_backend()
            if not hasattr(backend, "begin"):  # the local model server: one blocking call
                return persist_links(context, deploy(spec, backend), self.mlflow_ui)
            defer = self.backend == "kserve" and self.deferrable is not False
            self._stop = threading.Event()
            handle = backend.begin(spec)
            self._rollout = (backend, handle)
            if not defer:
                return persist_links(context, backend.run(handle, self._stop), self.mlflow_ui)
        self._defer(context, handle)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume from the trigger's event: its status decides (the object is not read again);
        the next canary step defers again."""
        from mlrelay.serving.rollout import RolloutHandle, RolloutStatus
        from mlrelay.serving.spec import Deployment

        handle = RolloutHandle.model_validate(event["handle"])
        if event.get("error"):
            status = RolloutStatus(
                state="failed", reason="WaitFailed", message=f"lost track: {event['error']}"
            )
        else:
            status = RolloutStatus.model_validate(event["status"])
        with core_errors():
            backend = self.serving_backend()
            self._rollout = (backend, handle)
            done = backend.complete(handle, status)
        if isinstance(done, Deployment):
            return persist_links(context, done, self.mlflow_ui)
        self._defer(context, done)

    def on_kill(self) -> None:
        """SIGTERM (or the execution timeout) during the rollout: undo it; the task fails."""
        if self._rollout is not None:
            backend, handle = self._rollout
            if self._stop is not None:  # an inline wait then ends the rollout as failed
                self._stop.set()
            self.log.info("task killed: undoing the rollout of %r", handle.name)
            backend.abort(handle)

    def _defer(self, context: Context, handle: RolloutHandle) -> NoReturn:
        from airflow_mlrelay.triggers.deploy import DeploymentTrigger
        from airflow_mlrelay.triggers.training import deadline

        options = self.backend_options or {}
        # No defer timeout: at it Airflow would fail the task and leave the rollout half done.
        self.defer(
            trigger=DeploymentTrigger(
                handle=as_json(handle),
                backend_options={k: v for k, v in options.items() if k in _TRIGGER_OPTIONS},
                kubernetes_conn_id=self.kubernetes_conn_id,
                namespace=handle.namespace,
                deadline=deadline(context, handle.spec.ready_timeout, self.execution_timeout),
            ),
            method_name="execute_complete",
        )

    def _spec(self) -> DeploymentSpec:
        from mlrelay.serving.spec import DeploymentSpec

        return DeploymentSpec(
            name=self.name,
            model=self._model(),
            strategy={"kind": self.strategy} if isinstance(self.strategy, str) else self.strategy,  # type: ignore[arg-type]
            sample_rows=self.sample_rows or None,
            smoke_test=self.smoke_test,
            ready_timeout=self.ready_timeout,
            port=self.port,
        )

    def _model(self) -> ModelVersionRef:
        from mlrelay.registry import get_version
        from mlrelay.registry.spec import ModelVersionRef

        if not isinstance(self.model, str):
            version: ModelVersionRef = ModelVersionRef.model_validate(self.model)
            return version
        name, sep, ref = self.model.partition("@")
        if not sep:
            name, _, ref = self.model.rpartition("/")
        return get_version(name, f"@{ref}" if sep else ref, settings=self.mlflow_settings)


def persist_links(context: Context, deployment: Deployment, ui: str | None) -> dict[str, Any]:
    """Push the endpoint and model version links; return the deployment's JSON."""
    result = as_json(deployment)
    EndpointLink.persist(context, EndpointLink.url(result))
    MLflowModelVersionLink.persist(
        context, MLflowModelVersionLink.url(ui, deployment.model_name, deployment.model_version)
    )
    return result
