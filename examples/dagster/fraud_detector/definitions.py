"""The card-fraud detector as a Dagster asset graph: the steps of ``mlrelay demo``, as assets.

    fraud_data ──> transactions ──[transactions_suite: blocking]──> training_set ──> fraud_model ──> fraud_endpoint
               └─> customer_stats ──> online_features

``transactions_suite`` is a blocking Great Expectations check: when the extract is broken, the
training set, the model and the endpoint are not touched. The training set and the model are
daily partitioned: the model of day D is trained on the 30 days of transactions up to D, so a
backfill retrains every day's model, and each partition's MLflow run and model version is found
again by a retry. The endpoint serves ``fraud-detector@champion``, which the promotion gate
moves only when a new model beats the current one.

Run it from the repository root (the generated history ends on 2026-03-01)::

    dagster dev -m examples.dagster.fraud_detector.definitions   # needs dagster-webserver
    dagster asset materialize -m examples.dagster.fraud_detector.definitions \\
        --select '*' --partition 2026-03-01

On one machine, adding ``--config-json '{"execution": {"config": {"in_process": {}}}}'`` runs
every step in one process: about half the wall time, since Dagster's default multiprocess
executor starts an interpreter per step that imports Feast, Great Expectations or MLflow anew.

Everything is local by default: the trainer runs as a process, MLflow is ``MLFLOW_TRACKING_URI``
or a SQLite store under ``MLRELAY_HOME``, the endpoint is the KServe model server on 127.0.0.1
(stop it with ``mlrelay serve stop fraud-detector``). One setting trains on a cluster instead:
``FRAUD_BACKEND=kubernetes`` (with ``MLRELAY_K8S_KUBECONFIG`` or in-cluster credentials, and
``MLRELAY_TRAINING_TRACKING_URI`` if pods reach MLflow under another name). ``FRAUD_WORKDIR``
(default ``$MLRELAY_HOME/dagster-fraud``) holds the data, the Feast repo and the training sets.
"""

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import dagster as dg

from dagster_mlrelay import (
    FeastResource,
    KubernetesResource,
    MLflowResource,
    build_deployment_asset,
    build_feature_materialization_asset,
    build_model_asset,
    build_training_set_asset,
    build_validation_check,
)
from mlrelay.registry.spec import PromotionGate
from mlrelay.settings import LocalSettings
from mlrelay.training.spec import TrainingJob

EXAMPLES = Path(__file__).resolve().parents[2]
MODEL_NAME = "fraud-detector"
# The generated history covers 2026-01-01 to 2026-03-01; a model needs 30 days of it.
DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-31", end_date="2026-03-02")


def build_definitions(
    workdir: Path,
    *,
    backend: str = "local",
    rows: int = 5000,
    broken: bool = False,
    model_name: str = MODEL_NAME,
) -> dg.Definitions:
    """The pipeline's definitions; ``broken=True`` generates an extract the suite rejects."""
    repo = workdir / "feature_repo"

    @dg.multi_asset(
        outs={
            "transactions": dg.AssetOut(description="Card transactions: the entity rows."),
            "customer_stats": dg.AssetOut(description="Daily customer statistics (Feast source)."),
        },
        group_name="fraud",
    )
    def fraud_data(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        """Extract the data (here: generate it) into the Feast repository's data folder."""
        shutil.copytree(
            EXAMPLES / "feature_repo",
            repo,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("data", "__pycache__", "*.md", ".gitignore"),
        )
        paths = _generator().write(repo / "data", rows=rows, broken=broken)
        context.log.info(f"{rows} transactions written to {paths['transactions']}")
        for key in ("transactions", "customer_stats"):
            yield dg.MaterializeResult(
                asset_key=key,
                value=str(paths[key]),
                metadata={"file": dg.MetadataValue.path(str(paths[key]))},
            )

    transactions_suite = build_validation_check(
        "transactions", EXAMPLES / "expectations" / "transactions.json"
    )
    training_set = build_training_set_asset(
        "training_set",
        entities="transactions",
        feature_service="fraud_model_v1",
        output_dir=workdir / "training_sets",
        lookback=timedelta(days=30),
        partitions_def=DAILY,
        group_name="fraud",
    )
    online_features = build_feature_materialization_asset(
        "online_features", deps=["customer_stats"], partitions_def=DAILY, group_name="fraud"
    )
    fraud_model = build_model_asset(
        "fraud_model",
        training_set=training_set,
        job=TrainingJob(
            name="fraud-detector-train",
            # A pod runs the image's python; a local process runs this interpreter.
            command=["python" if backend == "kubernetes" else sys.executable],
            args=[str(EXAMPLES / "training" / "train.py")],
            image="python:3.11",
            experiment=model_name,
        ),
        model_name=model_name,
        gate=PromotionGate(metric="roc_auc", min_delta=0.001, on_reject="return"),
        backend="kubernetes" if backend == "kubernetes" else "local",
        validation=transactions_suite,
        partitions_def=DAILY,
        retry_policy=dg.RetryPolicy(max_retries=1),
        group_name="fraud",
    )
    fraud_endpoint = build_deployment_asset(
        "fraud_endpoint", model=fraud_model, model_name=model_name, group_name="fraud"
    )
    return dg.Definitions(
        assets=[fraud_data, training_set, online_features, fraud_model, fraud_endpoint],
        asset_checks=[transactions_suite],
        resources={
            "mlflow": MLflowResource(),  # MLFLOW_TRACKING_URI, else SQLite under MLRELAY_HOME
            "feast": FeastResource(repo=str(repo)),
            "kubernetes": KubernetesResource(),  # MLRELAY_K8S_*; used by FRAUD_BACKEND=kubernetes
        },
    )


def _generator() -> ModuleType:
    """The example's data generator (a script, not an installed module)."""
    spec = importlib.util.spec_from_file_location(
        "fraud_generate", EXAMPLES / "data" / "generate.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {EXAMPLES / 'data' / 'generate.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


defs = build_definitions(
    Path(os.environ.get("FRAUD_WORKDIR") or LocalSettings().home / "dagster-fraud").resolve(),
    backend=os.environ.get("FRAUD_BACKEND", "local"),
    rows=int(os.environ.get("FRAUD_ROWS", "5000")),
)
