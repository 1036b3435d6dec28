"""The example as a user runs it: ``dagster asset materialize -m ... --select '*'`` from the root.

The run goes into a private DAGSTER_HOME (telemetry off), MLflow is the session server, and the
endpoint the run starts is undeployed afterwards. The run uses the in-process executor (run
config), which saves the ~50 s that Dagster's default multiprocess executor spends starting a
fresh interpreter per step and importing Feast, Great Expectations and MLflow in each one; the
assets and the loading path are the same.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_support import PARTITION, ROOT

from mlrelay import _proc
from mlrelay.serving import undeploy
from mlrelay.serving.local import LocalServingBackend

pytestmark = pytest.mark.slow
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
ASSETS = ("transactions", "customer_stats", "training_set", "online_features", "fraud_model")


def test_dagster_cli_materializes_the_whole_example_graph(
    dagster_home: Path, mlrelay_home, mlflow_settings, tmp_path: Path
) -> None:
    env = dict(os.environ, FRAUD_WORKDIR=str(tmp_path / "work"), FRAUD_ROWS="2000")
    argv = [
        str(Path(sys.executable).with_name("dagster")),
        "asset",
        "materialize",
        "-m",
        "examples.dagster.fraud_detector.definitions",
        "--select",
        "*",
        "--partition",
        PARTITION,
        "--config-json",
        json.dumps(IN_PROCESS),
    ]
    pid = None
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        instance = dg.DagsterInstance.get()  # the one in DAGSTER_HOME
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        for key in ASSETS:
            assert instance.get_latest_materialization_event(dg.AssetKey(key)), key
        endpoint = instance.get_latest_materialization_event(dg.AssetKey("fraud_endpoint"))
        assert endpoint is not None
        pid = endpoint.asset_materialization.metadata["pid"].value
        assert _proc.alive(pid)
        print(f"dagster asset materialize --select '*' (in-process executor): {seconds:.1f}s")
    finally:
        undeploy("fraud-detector", LocalServingBackend(local=mlrelay_home))
    assert pid is not None
    assert not _proc.alive(pid)
