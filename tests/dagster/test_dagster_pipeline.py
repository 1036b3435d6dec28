"""The example's asset graph end to end, in-process, on local backends and the real MLflow server.

One run of the whole graph (data, blocking check, Feast training set and online store, training,
registration, promotion, a real KServe model server) is shared by the tests that read what it
recorded; its endpoint is undeployed at teardown. Then the graph on a broken extract, and the
check's warn policy.
"""

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from dagster_support import PARTITION, SUITE, materializations
from examples.dagster.fraud_detector.definitions import build_definitions

from dagster_mlrelay import build_validation_check
from mlrelay import _proc
from mlrelay.serving import undeploy
from mlrelay.serving.local import LocalServingBackend
from mlrelay.settings import LocalSettings
from mlrelay.training.spec import RunIdentity

pytestmark = pytest.mark.slow
ASSETS = ("fraud_data", "training_set", "online_features", "fraud_model", "fraud_endpoint")


@dataclass
class Pipeline:
    result: Any
    instance: dg.DagsterInstance
    model_name: str
    tracking_uri: str
    seconds: float

    def metadata(self, node: str) -> dict[str, Any]:
        [materialization] = materializations(self.result, node)
        return dict(materialization.metadata)


@pytest.fixture(scope="module")
def pipeline(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dagster-pipeline")
    name = f"dagster-{uuid.uuid4().hex[:8]}"
    home = LocalSettings(home=root / "home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLRELAY_HOME", str(home.home))
        env.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        defs = build_definitions(root / "work", rows=2000, model_name=name)
        job = defs.resolve_implicit_global_asset_job_def()
        instance = dg.DagsterInstance.ephemeral()
        started = time.monotonic()
        try:
            result = job.execute_in_process(
                partition_key=PARTITION, instance=instance, raise_on_error=False
            )
            yield Pipeline(result, instance, name, mlflow_server, time.monotonic() - started)
        finally:
            undeploy(name, LocalServingBackend(local=home))


@pytest.fixture(scope="module")
def client(mlflow_server: str):
    import mlflow

    return mlflow.MlflowClient(mlflow_server)


def test_the_example_graph_materializes_every_asset_and_passes_its_check(pipeline) -> None:
    assert pipeline.result.success
    for node in ASSETS:
        assert materializations(pipeline.result, node), node
    [check] = pipeline.result.get_asset_check_evaluations()
    assert check.check_name == "transactions_suite"
    assert check.passed
    assert check.metadata["unsuccessful_expectations"].value == 0
    print(f"in-process materialization of the whole graph: {pipeline.seconds:.1f}s")


def test_model_metadata_links_the_mlflow_run_and_version_and_holds_metrics_as_floats(
    pipeline, client
) -> None:
    meta = pipeline.metadata("fraud_model")
    run = client.get_run(meta["run_id"].value)
    assert meta["mlflow_run"] == dg.MetadataValue.url(
        f"{pipeline.tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    )
    assert meta["model_version"] == dg.MetadataValue.url(
        f"{pipeline.tracking_uri}/#/models/{pipeline.model_name}/versions/1"
    )
    assert set(run.data.metrics) >= {"roc_auc", "f1"}
    for metric, value in run.data.metrics.items():
        entry = meta[f"metric/{metric}"]
        assert isinstance(entry, dg.FloatMetadataValue)
        assert entry.value == pytest.approx(value)


def test_model_metadata_records_the_promotion_decision_and_the_lineage_trail(pipeline) -> None:
    meta = pipeline.metadata("fraud_model")
    assert meta["promoted"] == dg.MetadataValue.bool(True)
    decision = meta["promotion"].value
    assert decision["alias"] == "champion"
    assert decision["candidate_version"] == "1"
    assert decision["champion_version"] is None
    lineage = meta["lineage"].value
    assert f"{pipeline.model_name} v1  @champion" in lineage
    assert f"training_sets/{PARTITION}.parquet" in lineage
    assert "validation  transactions: passed" in lineage


def test_training_logs_reach_the_dagster_log_while_the_job_runs(pipeline, client) -> None:
    run = client.get_run(pipeline.metadata("fraud_model")["run_id"].value)
    logs = pipeline.instance.all_logs(pipeline.result.run_id)
    fitting = [
        e for e in logs if e.step_key == "fraud_model" and "fitting logreg" in e.user_message
    ]
    assert fitting, "the trainer's output is not in the run's log"
    # Logged as printed: well before the trainer logged its model and ended the run.
    assert fitting[0].timestamp < run.info.end_time / 1000


def test_the_mlflow_run_points_back_at_the_dagster_run_asset_and_partition(
    pipeline, client
) -> None:
    run = client.get_run(pipeline.metadata("fraud_model")["run_id"].value)
    tags = run.data.tags
    assert tags["dagster.run_id"] == pipeline.result.run_id
    assert tags["dagster.asset_key"] == "fraud_model"
    assert tags["dagster.partition_key"] == PARTITION
    identity = RunIdentity(
        orchestrator="dagster",
        run_id=pipeline.result.run_id,
        task_id="fraud_model",
        map_index=PARTITION,
    )
    assert tags["mlrelay.identity"] == identity.key


def test_the_endpoint_serves_the_champion_and_its_metadata_links_it(pipeline) -> None:
    meta = pipeline.metadata("fraud_endpoint")
    assert meta["version"] == dg.MetadataValue.int(1)
    assert meta["promoted"] == dg.MetadataValue.bool(True)
    assert isinstance(meta["smoke_test_latency_ms"], dg.FloatMetadataValue)
    assert "endpoint    " in meta["lineage"].value
    url = meta["endpoint"].value
    ready = httpx.get(f"{url}/v2/models/{pipeline.model_name}/ready", timeout=10)
    assert ready.status_code == 200
    assert _proc.alive(meta["pid"].value)


def test_a_broken_extract_fails_the_blocking_check_and_no_downstream_asset_runs(
    mlflow_settings, mlrelay_home, tmp_path: Path, model_name: str, client
) -> None:
    defs = build_definitions(tmp_path / "work", rows=2000, broken=True, model_name=model_name)
    selected = ["transactions", "customer_stats", "training_set", "fraud_model", "fraud_endpoint"]
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=PARTITION,
        asset_selection=[dg.AssetKey(k) for k in selected],
        raise_on_error=False,
    )
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    failed = check.metadata["failed_expectations"].value.records
    columns = {record.data["column"] for record in failed}
    assert {"amount", "customer_id"} <= columns
    assert all(record.data["unexpected_count"] > 0 for record in failed)
    for node in ("training_set", "fraud_model", "fraud_endpoint"):
        assert not materializations(result, node), node
    assert client.get_experiment_by_name(model_name) is None  # nothing was trained


def test_warn_policy_reports_a_warn_severity_failure_and_downstream_assets_run(
    broken_fraud_data: dict[str, Path], tmp_path: Path
) -> None:
    @dg.asset
    def transactions() -> dg.MaterializeResult:  # data kept outside Dagster's IO manager
        return dg.MaterializeResult()

    @dg.asset(deps=[transactions])
    def features() -> None:
        return None

    check = build_validation_check(
        transactions,
        SUITE,
        policy="warn",
        data=broken_fraud_data["transactions"],
        html_report_dir=tmp_path,
    )
    result = dg.materialize([transactions, features, check])
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.check_name == "transactions_suite"
    assert Path(evaluation.metadata["html_report"].value).is_file()
    assert materializations(result, "features")
