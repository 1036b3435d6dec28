"""ValidateDataOperator under Airflow: a broken dataset fails the task, with the numbers."""

from __future__ import annotations

import pytest
from airflow_support import SUITE, run_dag

pytestmark = pytest.mark.slow


def test_airflow_broken_dataset_fails_the_validate_task_with_the_numbers(
    dagbag, broken_fraud_data, capfd
):
    run = run_dag(
        dagbag,
        "mlrelay_validate",
        {"data": str(broken_fraud_data["transactions"]), "suite": str(SUITE)},
    )
    assert run.states == {"validate": "failed"}
    assert run.tries == {"validate": 1}

    report = run.result("validate")  # pushed before failing, for an all_done alert task
    assert report["success"] is False
    failed = {(f["expectation_type"], f["column"]): f for f in report["failed"]}
    amounts = failed[("expect_column_values_to_be_between", "amount")]
    missing = failed[("expect_column_values_to_not_be_null", "customer_id")]
    assert amounts["unexpected_count"] > 0
    assert missing["unexpected_count"] > 0

    out = capfd.readouterr().out
    stats = report["statistics"]
    assert "DataValidationFailed" in out
    assert (
        f"{stats['unsuccessful_expectations']} of {stats['evaluated_expectations']} "
        f"expectations unmet on {report['row_count']} rows" in out
    )
    assert (
        f"expect_column_values_to_be_between(amount), {amounts['unexpected_count']} unexpected"
        in out
    )
