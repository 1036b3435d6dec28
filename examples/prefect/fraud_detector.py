"""The card-fraud pipeline as a Prefect flow: validate, features, train, register, gate, deploy.

Local backends by default (a training subprocess, the KServe model server on 127.0.0.1);
``--backend kubernetes`` (or ``MLRELAY_BACKEND=kubernetes``) trains as a Kubernetes Job on the
cluster that ``MLRELAY_K8S_KUBECONFIG``/``KUBECONFIG`` points at. Nothing else changes.

    uv run python examples/prefect/fraud_detector.py                    # all local
    uv run mlrelay emulator --kubeconfig /tmp/kubeconfig &              # a cluster on this machine
    MLRELAY_K8S_KUBECONFIG=/tmp/kubeconfig \\
        uv run python examples/prefect/fraud_detector.py --backend kubernetes

Prefect: with ``PREFECT_API_URL`` set (``prefect server start``), the runs, task runs and
artifacts (validation table, MLflow links, promotion decision, endpoint, lineage) are in its UI;
without it, Prefect starts a temporary server for the run. MLflow: ``MLFLOW_TRACKING_URI``, or
a SQLite store under ``MLRELAY_HOME`` (``.mlrelay``). ``prefect.yaml`` beside this file deploys
the same flow on a schedule.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Literal

import pandas as pd
from prefect import flow

from prefect_mlrelay import KubernetesCluster, TrainAndDeployResult, train_and_deploy

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

EXAMPLES = Path(__file__).resolve().parents[1]


@flow(name="fraud-detector")
def fraud_detector(
    workdir: str = ".mlrelay/prefect-example",
    rows: int = 5000,
    backend: Literal["local", "kubernetes"] = "local",
    image: str = "python:3.11",
    canary_percent: int | None = 10,
) -> TrainAndDeployResult:
    """Write the example data into a private copy of the Feast repo, then train and deploy."""
    work = Path(workdir).resolve()
    repo = work / "feature_repo"
    shutil.copytree(
        EXAMPLES / "feature_repo",
        repo,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("data", "__pycache__", "*.md", ".gitignore"),
    )
    paths = _generator().write(repo / "data", rows=rows)
    stamps = pd.read_parquet(paths["customer_stats"], columns=["event_timestamp"])
    cluster = backend == "kubernetes"
    return train_and_deploy(
        data=str(paths["transactions"]),
        suite=str(EXAMPLES / "expectations" / "transactions.json"),
        feature_repo=str(repo),
        feature_service="fraud_model_v1",
        training_command=[
            "python" if cluster else sys.executable,
            str(EXAMPLES / "training" / "train.py"),
        ],
        model_name="fraud-detector",
        training_backend=backend,
        image=image if cluster else None,
        kubernetes=KubernetesCluster() if cluster else None,  # from MLRELAY_K8S_* / KUBECONFIG
        canary_percent=canary_percent,
        materialize_start=stamps.event_timestamp.min().to_pydatetime(),
        materialize_end=stamps.event_timestamp.max().to_pydatetime(),
    )


def _generator():  # the data generator is a script beside the other examples
    spec = importlib.util.spec_from_file_location(
        "fraud_generate", EXAMPLES / "data" / "generate.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError("examples/data/generate.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=["local", "kubernetes"],
        default=os.environ.get("MLRELAY_BACKEND", "local"),
        help="where to train (default: $MLRELAY_BACKEND or local)",
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--workdir", default=".mlrelay/prefect-example")
    parser.add_argument("--image", default="python:3.11", help="training image (cluster only)")
    args = parser.parse_args()

    started = time.perf_counter()
    result = fraud_detector(
        workdir=args.workdir, rows=args.rows, backend=args.backend, image=args.image
    )
    wall = time.perf_counter() - started
    decision, deployment = result.promotion, result.deployment
    print(f"\nfraud-detector flow finished in {wall:.1f}s ({args.backend} training)")
    print(
        f"  validation: {result.validation.statistics.successful_expectations}/"
        f"{result.validation.statistics.evaluated_expectations} expectations met on "
        f"{result.validation.row_count} rows"
    )
    print(f"  training set: {result.training_set.rows_out} of {result.training_set.rows_in} rows")
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(result.training.metrics.items()))
    print(f"  run {result.training.run_id} on {result.training.backend}: {metrics}")
    print(f"  {decision.reason}")
    if deployment is not None:
        print(f"  endpoint: {deployment.url}/v2/models/{deployment.model_name}/infer")
        print("  stop it with: uv run mlrelay serve stop fraud-detector")
    print("  lineage: uv run mlrelay lineage fraud-detector")


if __name__ == "__main__":
    main()
