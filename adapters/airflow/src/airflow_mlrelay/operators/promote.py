"""``PromoteModelOperator``: move an alias (``@champion``) to a version that beats its holder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlrelay.exceptions import PromotionRejected, core_errors
from airflow_mlrelay.links import MLflowModelVersionLink
from airflow_mlrelay.operators._base import MLFLOW_CONN_ID, MLflowOperator, as_json

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlrelay.registry.spec import PromotionGate

OnReject = Literal["fail", "skip", "return"]


class PromoteModelOperator(MLflowOperator):
    """Gate ``version`` against the holder of ``alias``; return the ``PromotionDecision`` JSON.

    The decision — both versions, both metric values, the reason — is recorded on the version
    in MLflow and returned, promoted or not. What a rejection does to the DAG is ``on_reject``:

    - ``"fail"`` (default): the task fails with ``PromotionRejected`` (not retried: the
      numbers will not change).
    - ``"skip"``: the task is skipped, and with it the tasks that need it (a deploy), by
      Airflow's trigger rules; the decision is still pushed to XCom.
    - ``"return"``: the task succeeds with ``promoted: false``; downstream tasks decide.

    Args:
        version: the ``ModelVersionRef`` of ``RegisterModelOperator`` (``register.output``)
            (templated).
        gate: a ``PromotionGate`` or its dict: ``metric``, ``min_delta``, ``greater_is_better``,
            ``min_value``, ``max_value`` (templated). Its own ``on_reject`` is ignored.
        alias: the alias at stake (templated).
        on_reject: ``"fail"``, ``"skip"`` or ``"return"``.
        mlflow_conn_id: the ``mlflow`` connection (see ``MLflowOperator``).
    """

    template_fields: Sequence[str] = ("version", "gate", "alias")
    template_fields_renderers = {"version": "json", "gate": "json"}
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        version: dict[str, Any],
        gate: PromotionGate | dict[str, Any],
        alias: str = "champion",
        on_reject: OnReject = "fail",
        mlflow_conn_id: str | None = MLFLOW_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        if on_reject not in ("fail", "skip", "return"):
            raise ValueError(f"on_reject must be 'fail', 'skip' or 'return', not {on_reject!r}")
        self.version = version
        self.gate = gate
        self.alias = alias
        self.on_reject = on_reject

    def execute(self, context: Context) -> dict[str, Any]:
        from mlrelay.registry import promote
        from mlrelay.registry.spec import PromotionGate

        with core_errors():
            gate = self.gate if isinstance(self.gate, PromotionGate) else PromotionGate(**self.gate)
            # The core returns a rejection; what it does to the DAG is decided below.
            decision = promote(
                self.version,
                gate.model_copy(update={"on_reject": "return"}),
                alias=self.alias,
                settings=self.mlflow_settings,
            )
        result = as_json(decision)
        MLflowModelVersionLink.persist(
            context,
            MLflowModelVersionLink.url(
                self.mlflow_ui, decision.model_name, decision.candidate_version
            ),
        )
        if decision.promoted or self.on_reject == "return":
            return result
        context["ti"].xcom_push(key="return_value", value=result)
        if self.on_reject == "skip":
            raise AirflowSkipException(f"not promoted to @{decision.alias}: {decision.reason}")
        raise PromotionRejected(result)
