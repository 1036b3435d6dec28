"""DAGs for the deferred KServe deploy tests (tests/airflow/test_airflow_deploy_kserve.py).

The model version arrives as a param holding its JSON, as it would from ``register.output``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_mlrelay.operators import DeployModelOperator

COMMON = {
    "schedule": None,
    "start_date": datetime(2026, 1, 1),
    "catchup": False,
    "render_template_as_native_obj": True,
    "tags": ["mlrelay-test"],
}
PARAMS = {"name": "fraud", "model": {}, "strategy": "replace"}
KSERVE = {"backend": "kserve", "backend_options": {"relist_interval": 5.0}, "ready_timeout": 120}


def _deploy(**kwargs: object) -> DeployModelOperator:
    return DeployModelOperator(
        task_id="deploy",
        name="{{ params.name }}",
        model="{{ params.model }}",
        strategy="{{ params.strategy }}",
        **KSERVE,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


with DAG("mlrelay_deploy_kserve", params=PARAMS, **COMMON):  # type: ignore[arg-type]
    _deploy()

with DAG("mlrelay_deploy_kserve_deadline", params=PARAMS, **COMMON):  # type: ignore[arg-type]
    # No smoke test: the task starts (and reaches its deferral) without downloading the model.
    _deploy(smoke_test=False, execution_timeout=timedelta(seconds=4))
