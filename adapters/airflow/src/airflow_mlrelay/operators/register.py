"""``RegisterModelOperator``: register a trained model as a version in the MLflow Model Registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlrelay.exceptions import core_errors
from airflow_mlrelay.links import MLflowModelVersionLink, MLflowRunLink
from airflow_mlrelay.operators._base import MLFLOW_CONN_ID, MLflowOperator, as_json

if TYPE_CHECKING:
    from airflow.sdk import Context


class RegisterModelOperator(MLflowOperator):
    """Register the model ``source`` logged as a version of ``name``; return the version's JSON.

    Idempotent: a retried task (or a re-run of the DAG on the same training run) gets the
    version registered the first time, never a second one. The version carries the training
    run's lineage (job, backend, dataset hash, validation result) as tags.

    Args:
        source: the ``TrainingResult`` of ``TrainModelOperator`` (``train.output``), or a
            logged model URI ``models:/m-...`` (templated).
        name: the registered model, created if missing (templated).
        run_id: the training run, when ``source`` is a URI (templated).
        tags: extra version tags (templated); keys starting with ``mlrelay.`` are reserved.
        timeout: seconds to wait for the version to leave ``PENDING_REGISTRATION``.
        mlflow_conn_id: the ``mlflow`` connection (see ``MLflowOperator``).
    """

    template_fields: Sequence[str] = ("source", "name", "run_id", "tags")
    template_fields_renderers = {"source": "json", "tags": "json"}
    operator_extra_links = (MLflowModelVersionLink(), MLflowRunLink())
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        source: dict[str, Any] | str,
        name: str,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        timeout: float = 300.0,
        mlflow_conn_id: str | None = MLFLOW_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.source = source
        self.name = name
        self.run_id = run_id
        self.tags = tags
        self.timeout = timeout

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.registry import register_model

        with core_errors():
            version = register_model(
                self.source,
                self.name,
                run_id=self.run_id or None,
                settings=self.mlflow_settings,
                tags=self.tags or None,
                timeout=self.timeout,
            )
        result = as_json(version)
        ui = self.mlflow_ui
        MLflowModelVersionLink.persist(
            context, MLflowModelVersionLink.url(ui, version.name, version.version)
        )
        if version.run_id and isinstance(self.source, dict):
            MLflowRunLink.persist(context, MLflowRunLink.url(ui, self.source))
        return result
