"""FAULTS O1 under Prefect's real cancellation: a served flow run cancelled from the API.

``served_flows.py`` is served with ``flow.serve()`` in a subprocess (Prefect's runner, as in
production). Two runs train "forever": one calls ``train_model`` directly (the main thread, where
the runner's SIGTERM lands), one ``.submit()``s it (a worker thread no signal reaches). Both are
cancelled through the API, as the UI's Cancel button does; each trainer must stop, its MLflow run
must end KILLED, and the flow runs must end Cancelled.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Cancelling
from prefect_support import eventually, settled_task_runs, unique

from mlrelay import _proc
from mlrelay.settings import MLflowSettings

pytestmark = pytest.mark.slow


def test_o1_prefect_cancelling_a_flow_run_stops_its_training_job(
    runner: None, mlflow_settings: MLflowSettings, tmp_path: Path
) -> None:
    runs = {}
    for submit in (False, True):
        pid_file = tmp_path / f"trainer-{submit}.pid"
        experiment = unique("prefect-o1")
        flow_run = run_deployment(
            "long-training/o1",
            parameters={"experiment": experiment, "pid_file": str(pid_file), "submit": submit},
            timeout=0,
        )
        runs[submit] = (flow_run.id, pid_file, experiment)

    for _, pid_file, _ in runs.values():
        assert eventually(pid_file.exists, bool, timeout=120), "the trainer did not start"
    trainers = {submit: int(pid_file.read_text()) for submit, (_, pid_file, _) in runs.items()}
    assert all(_proc.alive(pid) for pid in trainers.values())

    cancelled_at = time.monotonic()
    with get_client(sync_client=True) as client:
        for flow_run_id, _, _ in runs.values():
            client.set_flow_run_state(flow_run_id, Cancelling(), force=True)

        def final() -> bool:
            states = [client.read_flow_run(i).state for i, _, _ in runs.values()]
            return all(s is not None and s.is_final() for s in states)

        assert eventually(lambda: final(), bool, timeout=90)
        states = {s: client.read_flow_run(i).state for s, (i, _, _) in runs.items()}
    stopped_in = time.monotonic() - cancelled_at

    mlflow = MlflowClient(mlflow_settings.tracking_uri)
    for submit, (flow_run_id, _, experiment) in runs.items():
        where = "submitted" if submit else "direct"
        assert states[submit].is_cancelled(), (where, states[submit])
        assert not _proc.alive(trainers[submit]), f"{where}: the trainer kept running"
        exp = mlflow.get_experiment_by_name(experiment)
        (run,) = mlflow.search_runs([exp.experiment_id])
        assert run.info.status == "KILLED", (where, run.info.status)
        (task_run,) = settled_task_runs(flow_run_id, 1)
        assert task_run.run_count == 1, f"{where}: a cancelled job must not be retried"
        assert not task_run.state.is_completed()
    assert stopped_in < 60, f"cancellation took {stopped_in:.0f}s"
