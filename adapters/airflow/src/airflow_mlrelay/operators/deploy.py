"""``DeployModelOperator``: roll a registered model version out to a named, smoke-tested endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlrelay.exceptions import core_errors
from airflow_mlrelay.links import EndpointLink, MLflowModelVersionLink
from airflow_mlrelay.operators._base import ServingOperator, as_json

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlrelay.registry.spec import ModelVersionRef
    from mlrelay.serving.spec import Canary, Deployment, Replace


class DeployModelOperator(ServingOperator):
    """Deploy ``model`` to the endpoint ``name``; return the ``Deployment`` JSON.

    The previous version serves until the new one is ready and has answered a smoke test; a
    rollout that fails leaves it serving and fails the task with ``DeploymentFailed`` (saying
    whether it rolled back). Deploying the version that already serves only checks it again.
    The endpoint and the model version are the task's extra links.

    The local backend (the KServe model server on the worker, ``127.0.0.1``) runs inline. On
    ``backend="kserve"`` the rollout also runs inline for now: its wait moves to a trigger once
    the KServe backend has a handle to wait on.

    Args:
        name: the endpoint (DNS-1123) (templated).
        model: the ``ModelVersionRef`` of ``RegisterModelOperator`` (``register.output``), or
            ``"<model>@<alias>"`` / ``"<model>/<version>"`` (templated).
        strategy: ``"replace"``, or ``{"kind": "canary", "percent": 10}``, or the core's
            ``Replace()`` / ``Canary(10)`` (templated).
        sample_rows: rows for the smoke test; the model's input example when left out.
        backend: ``"local"`` or ``"kserve"`` (templated); ``backend_options`` are its arguments.
        kubernetes_conn_id, namespace: the cluster, for ``"kserve"``.
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

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.serving import deploy
        from mlrelay.serving.spec import DeploymentSpec

        with core_errors():
            spec = DeploymentSpec(
                name=self.name,
                model=self._model(),
                strategy={"kind": self.strategy}
                if isinstance(self.strategy, str)
                else self.strategy,  # type: ignore[arg-type]
                sample_rows=self.sample_rows or None,
                smoke_test=self.smoke_test,
                ready_timeout=self.ready_timeout,
                port=self.port,
            )
            deployment = deploy(spec, self.serving_backend())
        return persist_links(context, deployment, self.mlflow_ui)

    def _model(self) -> ModelVersionRef:
        from mlrelay.registry import get_version
        from mlrelay.registry.spec import ModelVersionRef

        if not isinstance(self.model, str):
            return ModelVersionRef.model_validate(self.model)
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
