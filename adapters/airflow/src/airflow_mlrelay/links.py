"""Extra links on the task: the MLflow run, the registered model version, the serving endpoint.

Airflow 3 resolves an operator's links from XCom (the UI never imports this module's code to
draw them), so an operator pushes each URL under its link's ``xcom_key`` when it knows it. The
URLs are built from the redacted tracking URI (or the connection's ``ui_url``): no credentials.

At the end of every try (and at a deferral) the task runner calls ``get_link`` and pushes its
answer under the same key. The task remembers what it decided, URL or none, so that call is
answered without reading back an XCom that was never pushed (a 404 Airflow logs as an error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class _XComLink(BaseOperatorLink):
    key: ClassVar[str]

    @property
    def xcom_key(self) -> str:
        return self.key

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        decided: dict[str, str] = getattr(operator, "_mlrelay_links", {})
        if self.key in decided:
            return decided[self.key]
        from airflow.sdk.execution_time.xcom import XCom

        return str(XCom.get_value(ti_key=ti_key, key=self.key) or "")

    @classmethod
    def persist(cls, context: Context, url: str | None) -> None:
        """Record the link for this task instance (nothing pushed when there is no URL)."""
        task = context.get("task")
        if task is not None:
            task.__dict__.setdefault("_mlrelay_links", {})[cls.key] = url or ""
        if url:
            context["ti"].xcom_push(key=cls.key, value=url)


class MLflowRunLink(_XComLink):
    name = "MLflow run"
    key = "mlrelay_mlflow_run"

    @staticmethod
    def url(ui: str | None, result: dict[str, Any]) -> str | None:
        if not ui or not result.get("run_id"):
            return None
        return f"{ui}/#/experiments/{result.get('experiment_id')}/runs/{result['run_id']}"


class MLflowModelVersionLink(_XComLink):
    name = "MLflow model version"
    key = "mlrelay_mlflow_model_version"

    @staticmethod
    def url(ui: str | None, name: str | None, version: str | None) -> str | None:
        if not ui or not name or not version:
            return None
        return f"{ui}/#/models/{quote(name, safe='')}/versions/{version}"


class EndpointLink(_XComLink):
    name = "Model endpoint"
    key = "mlrelay_endpoint"

    @staticmethod
    def url(deployment: dict[str, Any]) -> str | None:
        """The V2 model metadata URL (a GET that answers once the model serves)."""
        if not deployment.get("url"):
            return None
        return f"{str(deployment['url']).rstrip('/')}/v2/models/{deployment.get('name')}"
