"""What the operators that talk to MLflow share: the connection, the run identity, results as JSON.

Parse time matters here: the dag-processor constructs every operator of a DAG file on every
parse. Airflow wraps each ``__init__`` of an operator's class hierarchy, and every wrapped layer
merges the DAG's ``default_args`` and deep-copies its ``params`` again, so the bases below define
no ``__init__`` of their own where they can avoid it: an operator's own ``__init__`` takes
``mlflow_conn_id``. Hooks, the core and its libraries are imported when a task runs.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import BaseModel

    from airflow_mlrelay.hooks.mlflow import MLflowHook
    from mlrelay.settings import MLflowSettings
    from mlrelay.training.spec import RunIdentity

#: ``MLflowHook.default_conn_name``, without importing the hook when a DAG file is parsed.
MLFLOW_CONN_ID = "mlflow_default"


class MLflowOperator(BaseOperator):
    """Base of the operators that reach MLflow through an ``mlflow`` connection.

    Subclasses take ``mlflow_conn_id``: the ``mlflow`` connection. Without it (the default id
    undefined, or ``None``), the environment's ``MLFLOW_TRACKING_URI`` or a local store is used.
    """

    mlflow_conn_id: str | None = MLFLOW_CONN_ID

    @cached_property
    def mlflow_hook(self) -> MLflowHook:
        from airflow_mlrelay.hooks.mlflow import MLflowHook

        return MLflowHook(self.mlflow_conn_id)

    @cached_property
    def mlflow_settings(self) -> MLflowSettings:
        from mlrelay import _mlflow

        return _mlflow.resolve(self.mlflow_hook.get_settings())

    @cached_property
    def mlflow_ui(self) -> str | None:
        """The MLflow UI's base URL for the extra links (``None`` for a local store)."""
        return self.mlflow_hook.ui_url(self.mlflow_settings)


class ServingOperator(MLflowOperator):
    """Base of the operators that act on an endpoint: which serving backend, on which cluster.

    Args:
        backend: ``"local"`` or ``"kserve"`` (templated); ``backend_options`` are its arguments.
        kubernetes_conn_id, namespace: the cluster, for ``"kserve"``.
        mlflow_conn_id: the ``mlflow`` connection (see ``MLflowOperator``).
    """

    def __init__(
        self,
        *,
        mlflow_conn_id: str | None = MLFLOW_CONN_ID,
        backend: str = "local",
        backend_options: dict[str, Any] | None = None,
        kubernetes_conn_id: str | None = "kubernetes_default",
        namespace: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.backend = backend
        self.backend_options = backend_options
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace

    def serving_backend(self) -> Any:
        from airflow_mlrelay._backends import serving_backend

        return serving_backend(
            self.backend,
            self.backend_options,
            mlflow=self.mlflow_settings,
            kubernetes_conn_id=self.kubernetes_conn_id,
            namespace=self.namespace,
        )


def run_identity(context: Context) -> RunIdentity:
    """Who asks, in the core's terms: the same for every try of one task instance.

    A DAG run id is unique within its DAG only, so the DAG id goes with the task id. The try
    number is recorded but is not part of the identity: a retry must find what its first try
    started (FAULTS O2, O3).
    """
    from mlrelay.training.spec import RunIdentity

    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return RunIdentity(
        orchestrator="airflow",
        run_id=ti.run_id,
        task_id=f"{ti.dag_id}.{ti.task_id}",
        map_index=map_index if map_index is not None and map_index >= 0 else None,
        try_number=getattr(ti, "try_number", None),
    )


def as_json(result: BaseModel) -> dict[str, Any]:
    """A core result as XCom holds it: plain JSON, secrets left out by the models themselves."""
    return result.model_dump(mode="json")
