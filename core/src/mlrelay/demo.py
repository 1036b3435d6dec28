"""``mlrelay demo``: the card-fraud pipeline end to end on local backends, timed step by step.

validate -> build training set -> materialize features -> train (subprocess) -> register ->
promote (gate) -> deploy (KServe model server on 127.0.0.1) -> smoke test. The data, suite,
feature repo and training script are the repository's ``examples/``; MLflow is a SQLite store
under ``MLRELAY_HOME`` unless ``MLFLOW_TRACKING_URI`` says otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mlrelay.errors import ConfigError

log = logging.getLogger("mlrelay.demo")

MODEL_NAME = "fraud-detector"
EXPERIMENT = "fraud-detector"
FEATURE_SERVICE = "fraud_model_v1"


@dataclass(frozen=True)
class DemoOptions:
    examples: Path = Path("examples")
    workdir: Path | None = None
    keep: bool = True
    rows: int = 5000
    port: int | None = None


@dataclass
class DemoSummary:
    steps: dict[str, float] = field(default_factory=dict)
    endpoint: str | None = None
    model_version: str | None = None
    promoted: bool | None = None
    total_seconds: float = 0.0


@contextmanager
def _step(summary: DemoSummary, name: str, out: Callable[[str], None]) -> Iterator[None]:
    out(f"==> {name}")
    start = time.perf_counter()
    yield
    summary.steps[name] = round(time.perf_counter() - start, 2)
    out(f"    {name} done in {summary.steps[name]:.1f}s")


def _load_script(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path}", field="examples")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_examples(examples: Path) -> dict[str, Path]:
    files = {
        "generator": examples / "data" / "generate.py",
        "suite": examples / "expectations" / "transactions.json",
        "feature_repo": examples / "feature_repo",
        "trainer": examples / "training" / "train.py",
    }
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise ConfigError(
            f"the example files are missing ({', '.join(missing)}): run the demo from the "
            "repository root or pass --examples PATH",
            field="examples",
        )
    return {k: v.resolve() for k, v in files.items()}


def run(options: DemoOptions, out: Callable[[str], None] = print) -> DemoSummary:
    """Run the whole pipeline; returns the timings and the endpoint."""
    from mlrelay import _mlflow
    from mlrelay.features import build_training_set, materialize_features
    from mlrelay.features.spec import FeatureRequest, MaterializeRequest
    from mlrelay.lineage_trail import trail
    from mlrelay.registry import get_version, promote, register_model
    from mlrelay.registry.spec import PromotionGate
    from mlrelay.serving import deploy, undeploy
    from mlrelay.serving.local import LocalServingBackend
    from mlrelay.serving.spec import DeploymentSpec
    from mlrelay.settings import LocalSettings
    from mlrelay.training import train
    from mlrelay.training.spec import TrainingJob
    from mlrelay.validation import validate
    from mlrelay.validation.spec import ValidationPolicy

    files = _check_examples(options.examples)
    local = LocalSettings()
    settings = _mlflow.resolve(None, local)
    workdir = (options.workdir or local.home / "demo").resolve()
    # The Feast repo is copied into the work dir and the data is written into its data/ folder:
    # every path in the repo is relative to it, so the copy is a complete local feature store.
    repo = _copy_feature_repo(files["feature_repo"], workdir / "feature_repo")
    data_dir = repo / "data"
    summary = DemoSummary()
    started = time.perf_counter()
    out(f"mlrelay demo: MLflow at {settings.display_uri}, work dir {workdir}")

    with _step(summary, "generate data", out):
        paths = _load_script(files["generator"], "fraud_generate").write(
            data_dir, rows=options.rows
        )

    with _step(summary, "validate", out):
        report = validate(
            paths["transactions"],
            files["suite"],
            ValidationPolicy(on_failure="fail"),
            html_report=workdir / "validation.html",
        )
        out(
            f"    {report.statistics.successful_expectations}/"
            f"{report.statistics.evaluated_expectations} expectations met on {report.row_count} "
            f"rows; report: {report.html_report}"
        )

    with _step(summary, "build training set", out):
        tset = build_training_set(
            FeatureRequest(
                repo=str(repo),
                entity_source=str(paths["transactions"]),
                feature_service=FEATURE_SERVICE,
                output=str(workdir / "training_set.parquet"),
            )
        )
        out(
            f"    {tset.rows_out} of {tset.rows_in} rows; Feast dropped {tset.dropped_count} "
            "(entities with no features inside the TTL)"
        )

    with _step(summary, "materialize features", out):
        start, end = _event_range(paths)
        mat = materialize_features(MaterializeRequest(repo=str(repo), start=start, end=end))
        out(f"    online store loaded: {', '.join(mat.feature_views)}")

    with _step(summary, "train", out):
        result = train(
            TrainingJob(
                name="fraud-detector-train",
                command=[sys.executable, str(files["trainer"])],
                args=["--training-set", tset.path],
                experiment=EXPERIMENT,
                dataset_uri=tset.path,
                dataset_hash=tset.data_hash,
                validation={
                    "success": report.success,
                    "suite": report.suite_name,
                    "statistics": report.statistics.model_dump(mode="json"),
                    "data_hash": report.data_hash,
                },
            ),
            settings=settings,
        )
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(result.metrics.items()))
        out(f"    run {result.run_id}: {metrics}")

    with _step(summary, "register", out):
        version = register_model(result, MODEL_NAME, settings=settings)
        out(f"    {MODEL_NAME} version {version.version} (from run {version.run_id})")

    with _step(summary, "promote", out):
        gate = PromotionGate(metric="roc_auc", min_delta=0.001, on_reject="return")
        decision = promote(version, gate, alias="champion", settings=settings)
        summary.promoted = decision.promoted
        verdict = "PROMOTED to @champion" if decision.promoted else "REJECTED, @champion kept"
        out(f"    {verdict}: {decision.reason}")
        champion = get_version(MODEL_NAME, "@champion", settings=settings)

    with _step(summary, "deploy", out):
        backend = LocalServingBackend(settings=settings, local=local)
        # Deploying the version that already serves only smoke-tests it again (promoted=False).
        deployment = deploy(
            DeploymentSpec(name=MODEL_NAME, model=champion, port=options.port), backend
        )
        smoke = deployment.smoke_test or {}
        if not deployment.promoted:
            out(f"    endpoint already serves {MODEL_NAME} v{champion.version}: left running")
        out(
            f"    smoke test: {smoke.get('predictions')} predictions for {smoke.get('rows')} rows "
            f"in {smoke.get('latency_ms')} ms"
        )
        summary.endpoint = deployment.url
        summary.model_version = deployment.model_version

    summary.total_seconds = round(time.perf_counter() - started, 2)
    _print_result(
        summary, deployment, paths, out, lineage=trail(MODEL_NAME, settings=settings, local=local)
    )
    _print_mlflow_hint(settings.tracking_uri or "", out)
    if options.keep:
        out(f"The endpoint keeps running; stop it with: uv run mlrelay serve stop {MODEL_NAME}")
    else:
        undeploy(MODEL_NAME, backend)
        out(f"endpoint {MODEL_NAME} stopped (--no-keep)")
    return summary


def _copy_feature_repo(template: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(
        template,
        target,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("data", "__pycache__", "*.md", ".gitignore"),
    )
    return target


def _event_range(paths: dict[str, Path]) -> tuple[Any, Any]:
    """The first and last statistics timestamps: the window to load into the online store."""
    import pandas as pd

    ts = pd.read_parquet(paths["customer_stats"], columns=["event_timestamp"])["event_timestamp"]
    return ts.min().to_pydatetime(), ts.max().to_pydatetime() + pd.Timedelta(seconds=1)


def _print_result(
    summary: DemoSummary,
    deployment: Any,
    paths: dict[str, Path],
    out: Callable[[str], None],
    *,
    lineage: dict[str, Any],
) -> None:
    from mlrelay.lineage_trail import render

    row = _sample_row(paths)
    inputs = [
        {"name": k, "shape": [1], "datatype": _v2_type(v), "data": [v]} for k, v in row.items()
    ]
    body = json.dumps({"inputs": inputs})
    timings = ", ".join(f"{k} {v:.1f}" for k, v in summary.steps.items())
    out("")
    out(f"Step timings (s): {timings} | total {summary.total_seconds:.1f}")
    out(
        f"Endpoint: {deployment.url}  ({MODEL_NAME} v{deployment.model_version}, "
        f"pid {deployment.pid})"
    )
    out("Try it:")
    out(
        f"  curl -s -H 'Content-Type: application/json' -d {shlex.quote(body)} "
        f"{deployment.url}/v2/models/{MODEL_NAME}/infer"
    )
    out("Lineage:")
    for line in render(lineage).splitlines():
        out(f"  {line}")


def _print_mlflow_hint(tracking_uri: str, out: Callable[[str], None]) -> None:
    if tracking_uri.startswith("sqlite:"):
        out(f"MLflow UI: uv run mlflow ui --backend-store-uri {tracking_uri} --port 5000")
    else:
        out(f"MLflow UI: {tracking_uri}")


def _sample_row(paths: dict[str, Path]) -> dict[str, Any]:
    import pandas as pd

    tx = pd.read_parquet(paths["transactions"]).iloc[0]
    stats = pd.read_parquet(paths["customer_stats"])
    latest = stats[stats.customer_id == tx.customer_id].iloc[-1]
    row = {
        "amount": float(tx.amount),
        "merchant_category": str(tx.merchant_category),
        "hour": int(tx.hour),
        "is_online": int(tx.is_online),
    }
    for col in ("avg_amount_30d", "tx_count_7d", "chargeback_rate", "account_age_days"):
        value = latest[col]
        row[col] = float(value) if isinstance(value, float) else int(value)
    return row


def _v2_type(value: Any) -> str:
    if isinstance(value, str):
        return "BYTES"
    return "FP64" if isinstance(value, float) else "INT64"
