"""P5's hand-written side: the demo's pipeline as the same library calls, with no mlrelay.

What a user would write with Great Expectations, Feast, MLflow's client and the KServe model
server directly (``handserve.py`` is that server); ``p5_demo_overhead.py`` times it against
the ``mlrelay`` steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
SUITE = EXAMPLES / "expectations" / "transactions.json"
TRAINER = EXAMPLES / "training" / "train.py"
SERVICE = "fraud_model_v1"


class Timer:
    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.steps[name] = time.perf_counter() - start


def event_range(stats: Path) -> tuple[Any, Any]:
    import pandas as pd

    ts = pd.read_parquet(stats, columns=["event_timestamp"])["event_timestamp"]
    return ts.min().to_pydatetime(), ts.max().to_pydatetime() + pd.Timedelta(seconds=1)


def gx_validate(frame: Any, suite_file: Path, name: str) -> bool:
    """What a user writes with GX 1.x alone (the documented pandas-dataframe recipe)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset("transactions")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(gx.ExpectationSuite(**json.loads(suite_file.read_text())))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    outcome = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
    )
    return bool(outcome.success)


def run_hand(repo: Path, work: Path, tracking_uri: str, *, full: bool) -> Timer:
    import mlflow
    import pandas as pd
    from feast import FeatureStore
    from mlflow import MlflowClient

    name = "p5-hand"
    transactions = repo / "data" / "transactions.parquet"
    client = MlflowClient(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    t = Timer()
    with t.step("validate"):
        frame = pd.read_parquet(transactions)
        checked = gx_validate(frame, SUITE, "hand")
        if not checked:
            raise SystemExit("validation failed")
    with t.step("build training set"):
        store = FeatureStore(repo_path=str(repo))
        if not store.list_feature_services():  # what `feast apply` does, once per repo
            store.apply(_repo_objects(repo))
        training = store.get_historical_features(
            entity_df=frame, features=store.get_feature_service(SERVICE)
        ).to_df()
        training_set = work / "training_set_hand.parquet"
        training.to_parquet(training_set, index=False)
    with t.step("materialize"):
        start, end = event_range(repo / "data" / "customer_stats.parquet")
        store.materialize(start_date=start, end_date=end)
    if not full:
        return t
    with t.step("train"):
        experiment = client.get_experiment_by_name("p5-hand")
        experiment_id = (
            experiment.experiment_id
            if experiment
            else client.create_experiment("p5-hand", artifact_location=(work / "hand").as_uri())
        )
        run = client.create_run(experiment_id, tags={"dataset": str(training_set)})
        env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_RUN_ID=run.info.run_id)
        subprocess.run(
            [sys.executable, str(TRAINER), "--training-set", str(training_set)],
            env=env,
            check=True,
            capture_output=True,
        )
        client.set_terminated(run.info.run_id)
        metrics = client.get_run(run.info.run_id).data.metrics
    with t.step("register"):
        logged = client.search_logged_models(
            experiment_ids=[experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
        )[0]
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        version = client.create_model_version(
            name, logged.artifact_location, run_id=run.info.run_id, model_id=logged.model_id
        )
    with t.step("promote"):
        try:
            current = client.get_model_version_by_alias(name, "champion")
            best = client.get_run(current.run_id).data.metrics.get("roc_auc", float("-inf"))
        except mlflow.exceptions.MlflowException:
            best = float("-inf")
        if metrics["roc_auc"] >= best + 0.001:
            client.set_registered_model_alias(name, "champion", version.version)
        champion = client.get_model_version_by_alias(name, "champion")
    with t.step("deploy"):
        proc = _hand_deploy(client, name, champion.version, work)
    _stop(proc)
    return t


def _repo_objects(repo: Path) -> list[Any]:
    import importlib.util

    from feast import Entity, FeatureService, FeatureView

    spec = importlib.util.spec_from_file_location(f"hand_features_{id(repo)}", repo / "features.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kinds = (Entity, FeatureView, FeatureService)
    return [v for v in vars(module).values() if isinstance(v, kinds)]


def _hand_deploy(client: Any, name: str, version: str, work: Path) -> subprocess.Popen[bytes]:
    import httpx
    import mlflow
    from mlflow.models import Model

    target = work / f"hand-model-{version}-{time.monotonic_ns()}"
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, version),
            dst_path=str(target),
        )
    )
    example = Model.load(str(model_dir)).load_input_example(str(model_dir))
    argv = [sys.executable, str(HERE / "handserve.py"), str(model_dir), name]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}/v2/models/{name}"
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("the hand-written server exited")
                try:
                    if http.get(f"{url}/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            inputs = [_tensor(c, example[c]) for c in example.columns]
            http.post(f"{url}/infer", json={"inputs": inputs}).raise_for_status()
    except BaseException:
        _stop(proc)
        raise
    return proc


def _tensor(name: str, column: Any) -> dict[str, Any]:
    kind = column.dtype.kind
    datatype = {"f": "FP64", "i": "INT64", "b": "BOOL"}.get(kind, "BYTES")
    data = column.tolist() if datatype != "BYTES" else [str(v) for v in column]
    return {"name": name, "shape": [len(column)], "datatype": datatype, "data": data}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
