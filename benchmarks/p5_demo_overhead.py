"""P5: the ``mlrelay demo`` steps vs a hand-written script making the same library calls.

Both sides run the card-fraud pipeline on the same generated data (5,000 transactions, the
demo's default), the same suite, Feast repository, training script and MLflow store (SQLite):

| step | ours (as ``mlrelay.demo`` calls it) | by hand (no mlrelay) |
|---|---|---|
| validate | ``validate(path, suite, fail, html_report=...)`` | pandas + GX ephemeral context, suite from JSON |
| build training set | ``build_training_set(FeatureRequest)`` | ``FeatureStore.get_historical_features(...).to_df()`` |
| materialize | ``materialize_features(...)`` | ``FeatureStore.materialize(start, end)`` |
| train | ``train(TrainingJob)``, local subprocess | ``MlflowClient.create_run`` + ``subprocess.run`` |
| register | ``register_model(result, name)`` | ``create_registered_model`` + ``create_model_version`` |
| promote | ``promote(version, gate)`` | compare ``roc_auc`` with ``@champion``, set the alias |
| deploy | ``LocalServingBackend.deploy`` (download, start, ready, smoke test) | download, start ``benchmarks/handserve.py``, poll ready, one V2 request |

Each run starts from a fresh Feast repository copy per side; the servers are stopped after each
run (not timed). GX, Feast and MLflow are imported before timing, and the sides alternate
order, so neither pays the other's first-use costs. Reported per step and in total: the
median over runs of each side, and the overhead ours/hand - 1 (goal <= 10 %).
``--quick`` runs the data steps once (validate, training set, materialize): the training
subprocess and the model server start take 10-40 s each on two busy cores.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import emit, parser, result, summary, versions
from handwritten import EXAMPLES, SERVICE, SUITE, TRAINER, Timer, event_range, run_hand

STEPS = ["validate", "build training set", "materialize", "train", "register", "promote", "deploy"]


def fresh_repo(work: Path, data: dict[str, Path], label: str) -> Path:
    """A copy of the example feature repo with the generated data in its data/ folder."""
    repo = work / f"repo-{label}"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(
        EXAMPLES / "feature_repo",
        repo,
        ignore=shutil.ignore_patterns("data", "__pycache__", "*.md", ".gitignore"),
    )
    (repo / "data").mkdir()
    for path in data.values():
        shutil.copy(path, repo / "data" / path.name)
    return repo


# -- ours: the demo's calls ----------------------------------------------------------------


def run_ours(repo: Path, work: Path, settings: Any, local: Any, *, full: bool) -> Timer:
    from mlrelay.features import build_training_set, materialize_features
    from mlrelay.features.spec import FeatureRequest, MaterializeRequest
    from mlrelay.registry import get_version, promote, register_model
    from mlrelay.registry.spec import PromotionGate
    from mlrelay.serving import deploy as deploy_model
    from mlrelay.serving import undeploy
    from mlrelay.serving.local import LocalServingBackend
    from mlrelay.serving.spec import DeploymentSpec
    from mlrelay.training import train
    from mlrelay.training.spec import TrainingJob
    from mlrelay.validation import validate
    from mlrelay.validation.spec import ValidationPolicy

    name = "p5-ours"
    transactions = repo / "data" / "transactions.parquet"
    t = Timer()
    with t.step("validate"):
        report = validate(
            transactions,
            SUITE,
            ValidationPolicy(on_failure="fail"),
            html_report=work / "validation.html",
        )
    with t.step("build training set"):
        tset = build_training_set(
            FeatureRequest(
                repo=str(repo),
                entity_source=str(transactions),
                feature_service=SERVICE,
                output=str(work / "training_set_ours.parquet"),
            )
        )
    with t.step("materialize"):
        start, end = event_range(repo / "data" / "customer_stats.parquet")
        materialize_features(MaterializeRequest(repo=str(repo), start=start, end=end))
    if not full:
        return t
    with t.step("train"):
        trained = train(
            TrainingJob(
                name="p5-ours-train",
                command=[sys.executable, str(TRAINER)],
                args=["--training-set", tset.path],
                experiment="p5-ours",
                dataset_uri=tset.path,
                dataset_hash=tset.data_hash,
                validation={"success": report.success, "data_hash": report.data_hash},
            ),
            settings=settings,
        )
    with t.step("register"):
        version = register_model(trained, name, settings=settings)
    with t.step("promote"):
        gate = PromotionGate(metric="roc_auc", min_delta=0.001, on_reject="return")
        promote(version, gate, alias="champion", settings=settings)
        champion = get_version(name, "@champion", settings=settings)
    backend = LocalServingBackend(settings=settings, local=local)
    try:
        with t.step("deploy"):
            deploy_model(DeploymentSpec(name=name, model=champion), backend)
    finally:
        undeploy(name, backend)
    return t


# -- the comparison ----------------------------------------------------------------------------


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--rows", type=int, default=5000)
    args = p.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    full = not args.quick
    with tempfile.TemporaryDirectory(prefix="mlrelay-p5-") as tmp:
        work = Path(tmp)
        os.environ["MLRELAY_HOME"] = str(work / "home")
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # our own store, always
            os.environ.pop(var, None)
        import feast  # noqa: F401 - imported before timing, by both sides alike
        import great_expectations  # noqa: F401
        import mlflow  # noqa: F401

        from mlrelay import _mlflow
        from mlrelay.settings import LocalSettings

        generate = _load(EXAMPLES / "data" / "generate.py")
        data = generate.write(work / "data", rows=args.rows)
        local = LocalSettings()
        settings = _mlflow.resolve(None, local)
        tracking_uri = settings.tracking_uri or ""
        sides: dict[str, Callable[[Path, Path], Timer]] = {
            "ours": lambda repo, w: run_ours(repo, w, settings, local, full=full),
            "hand": lambda repo, w: run_hand(repo, w, tracking_uri, full=full),
        }
        _mlflow.client(settings).search_experiments()  # creates the store's tables, untimed
        if full:  # warm-up of the in-process steps: first-use costs inside GX, Feast, MLflow
            for who, side in (("ours", run_ours), ("hand", run_hand)):
                warm = work / f"warm-{who}"
                warm.mkdir()
                repo = fresh_repo(work, data, f"warm-{who}")
                if who == "ours":
                    side(repo, warm, settings, local, full=False)
                else:
                    side(repo, warm, tracking_uri, full=False)
        timings: dict[str, list[dict[str, float]]] = {"ours": [], "hand": []}
        for i in range(runs):
            order = ["ours", "hand"] if i % 2 == 0 else ["hand", "ours"]
            for who in order:
                run_dir = work / f"run{i}-{who}"
                run_dir.mkdir()
                timer = sides[who](fresh_repo(work, data, f"{who}{i}"), run_dir)
                timer.steps["total"] = sum(timer.steps.values())
                timings[who].append(timer.steps)
                shown = {k: round(v, 2) for k, v in timer.steps.items()}
                print(f"run {i + 1} {who}: {shown}", file=sys.stderr)

    steps = [s for s in [*STEPS, "total"] if s in timings["ours"][0]]
    per_step = {}
    for step in steps:
        mine = summary(t[step] for t in timings["ours"])
        hand = summary(t[step] for t in timings["hand"])
        per_step[step] = {
            "ours_s": mine,
            "hand_s": hand,
            "overhead_pct": round((mine["p50"] / hand["p50"] - 1) * 100, 1)
            if hand["p50"]
            else None,
        }
    ratio = per_step["total"]["ours_s"]["p50"] / per_step["total"]["hand_s"]["p50"]
    emit(
        args,
        [
            result(
                "P5",
                "mlrelay demo steps vs the same library calls by hand",
                "overhead <= 10 %",
                met=ratio <= 1.10,
                ratio=ratio,
                ratio_label="ours / hand (median total s)",
                figures={
                    "runs": runs,
                    "rows": args.rows,
                    "steps": per_step,
                    "overhead_pct": round((ratio - 1) * 100, 1),
                    "steps_run": "all" if full else "data steps only (quick)",
                },
                versions=versions(
                    "mlrelay", "great-expectations", "feast", "mlflow", "kserve", "scikit-learn"
                ),
                quick=args.quick,
            )
        ],
    )


def _load(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
