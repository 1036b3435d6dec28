"""The provider under real Airflow 3 processes: api-server, scheduler, dag-processor, triggerer.

``dag.test()`` runs everything in one process; here the DAG file is parsed by the
dag-processor, the task runs in a LocalExecutor worker process that talks to the api-server's
execution API, the trigger is serialised into the metadata DB and re-created by the triggerer
from its classpath, and the api-server finds the provider (and the task's extra link) through
its ``apache_airflow_provider`` entry point. A private home with a SQLite DB (``airflow db
migrate``), servers on 127.0.0.1 only (the log-serving sidecars are skipped); every process
is stopped by its process group.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from airflow_support import HERE, free_port, trainer_starts, unique

from mlrelay import _proc
from mlrelay.settings import LocalSettings, MLflowSettings

pytestmark = pytest.mark.slow
EXAMPLE_DAG = HERE.parents[1] / "examples" / "airflow" / "dags" / "fraud_detector.py"

COMMANDS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


@dataclass
class Airflow:
    url: str
    home: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v2", timeout=30)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.home.glob("*.out")
        )


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, mlflow_server) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-processes")
    dags = home / "dags"
    dags.mkdir()
    for dag_file in (EXAMPLE_DAG, *(HERE / "dags").glob("*.py")):
        (dags / dag_file.name).symlink_to(dag_file)
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": "mlrelay-test-" + "0" * 32,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MLRELAY_HOME": str(home / "mlrelay"),
    }
    env.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)
    python = [sys.executable, "-m", "airflow"]
    with open(home / "migrate.out", "wb") as out:
        _proc.spawn([*python, "db", "migrate"], env=env, stdout=out, stderr=out).wait()
    procs = []
    try:
        for name, argv in COMMANDS.items():
            out = open(home / f"{name}.out", "wb")  # noqa: SIM115 - the child holds it
            argv = [a.format(port=port) for a in argv]
            procs.append(_proc.spawn([*python, *argv], env=env, stdout=out, stderr=out))
            out.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, Airflow(url, home).logs()
            time.sleep(1)
        yield Airflow(url, home)
    finally:  # all at once: each group gets its grace period at the same time
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda p: _proc.stop_group(p.pid, grace=15, proc=p), procs))


def wait_for_run(client: httpx.Client, dag_id: str, run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(1)
    raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout}s")


def trigger(client: httpx.Client, dag_id: str, conf: dict, timeout: float = 120) -> str:
    """Start a run once the dag-processor has parsed the DAG."""
    deadline = time.monotonic() + timeout
    while client.get(f"/dags/{dag_id}").status_code != 200:
        assert time.monotonic() < deadline, f"{dag_id} was never parsed"
        time.sleep(1)
    answer = client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["dag_run_id"])


def test_real_airflow_defers_training_to_the_triggerer_and_links_the_run(
    airflow, mlflow_server, tmp_path
):
    marker = tmp_path / "marker"
    conf = {"name": "real", "experiment": unique("airflow-real"), "marker": str(marker), "sleep": 2}
    with airflow.api() as client:
        run_id = trigger(client, "mlrelay_train_deferred", conf)
        run = wait_for_run(client, "mlrelay_train_deferred", run_id, timeout=240)
        assert run["state"] == "success", airflow.logs()

        task = f"/dags/mlrelay_train_deferred/dagRuns/{run_id}/taskInstances/train"
        result = client.get(f"{task}/xcomEntries/return_value").json()["value"]
        ((_, mlflow_run),) = trainer_starts(marker)
        assert result["run_id"] == mlflow_run
        links = client.get(f"{task}/links").json()["extra_links"]
        assert links["MLflow run"].endswith(f"/runs/{mlflow_run}")
        assert links["MLflow run"].startswith(mlflow_server)

        providers = {p["package_name"] for p in client.get("/providers").json()["providers"]}
        assert "airflow-provider-mlrelay" in providers

    # The triggerer re-created the trigger from the DB and streamed the trainer's output into
    # the task's trigger log.
    (trigger_log,) = airflow.home.glob(
        f"logs/dag_id=mlrelay_train_deferred/run_id={run_id}/task_id=train/attempt=1.log.trigger.*"
    )
    assert "[real] epoch 1: loss 0.42" in trigger_log.read_text()


def test_real_airflow_runs_the_example_dag_end_to_end(airflow, mlflow_server):
    from mlrelay.serving import undeploy
    from mlrelay.serving.local import LocalServingBackend

    model = unique("fraud-real")
    started = time.monotonic()
    try:
        with airflow.api() as client:
            run_id = trigger(client, "fraud_detector", {"model_name": model})
            run = wait_for_run(client, "fraud_detector", run_id, timeout=600)
            tis = client.get(f"/dags/fraud_detector/dagRuns/{run_id}/taskInstances").json()
        states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
        assert run["state"] == "success", (states, airflow.logs())
        print(f"example DAG under real processes: {time.monotonic() - started:.1f}s")
    finally:
        local = LocalSettings(home=airflow.home / "mlrelay")
        undeploy(model, LocalServingBackend(MLflowSettings(tracking_uri=mlflow_server), local))
