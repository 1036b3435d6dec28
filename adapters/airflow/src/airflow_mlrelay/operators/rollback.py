"""``RollbackDeploymentOperator``: serve the version an endpoint served before its last rollout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlrelay.exceptions import core_errors
from airflow_mlrelay.links import EndpointLink, MLflowModelVersionLink
from airflow_mlrelay.operators._base import ServingOperator
from airflow_mlrelay.operators.deploy import persist_links

if TYPE_CHECKING:
    from airflow.sdk import Context


class RollbackDeploymentOperator(ServingOperator):
    """Roll the endpoint ``name`` back to its previous version; return the ``Deployment`` JSON.

    Typically wired after a monitoring check, or with ``trigger_rule="one_failed"`` after a
    task that judges the new version in production.

    Args:
        name: the endpoint (templated).
        backend: ``"local"`` or ``"kserve"`` (templated); ``backend_options`` are its arguments.
        kubernetes_conn_id, namespace: the cluster, for ``"kserve"``.
    """

    template_fields: Sequence[str] = ("name", "backend", "namespace")
    operator_extra_links = (EndpointLink(), MLflowModelVersionLink())
    ui_color = "#f3ecfb"

    def __init__(self, *, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.serving import rollback

        with core_errors():
            deployment = rollback(self.name, self.serving_backend())
        return persist_links(context, deployment, self.mlflow_ui)
