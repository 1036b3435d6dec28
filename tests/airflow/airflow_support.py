"""What the Airflow tests share: running a DAG with ``dag.test()`` and reading back what it left.

Everything is read from the metadata DB the run wrote to (task instance states, XComs), as the
UI would show it.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRAINER = HERE / "trainer.py"
SUITE = HERE.parents[1] / "examples" / "expectations" / "transactions.json"


@dataclass
class DagResult:
    """A finished DAG run: task states, XComs by (task, key), and how long ``dag.test()`` took."""

    run_id: str
    state: str
    states: dict[str, str | None]
    tries: dict[str, int]
    xcom: dict[tuple[str, str], Any] = field(default_factory=dict)
    seconds: float = 0.0

    def result(self, task_id: str) -> Any:
        return self.xcom.get((task_id, "return_value"))


def run_dag(
    dagbag: Any,
    dag_id: str,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
) -> DagResult:
    """``dag.test()`` one run of ``dag_id`` and collect what it left in the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = dagbag.get_dag(dag_id)
    started = time.perf_counter()
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if (
        logical_date is not None
    ):  # with run_after too: the same run id, i.e. the same task instances
        kwargs["logical_date"] = kwargs["run_after"] = logical_date
    dr = dag.test(**kwargs)
    seconds = time.perf_counter() - started
    tis = dr.get_task_instances()
    with create_session() as session:
        rows = session.query(XComModel).filter(
            XComModel.dag_id == dag_id, XComModel.run_id == dr.run_id
        )
        xcom = {(row.task_id, row.key): row.value for row in rows}
    return DagResult(
        run_id=dr.run_id,
        state=str(dr.state),
        states={ti.task_id: (str(ti.state) if ti.state else None) for ti in tis},
        tries={ti.task_id: ti.try_number for ti in tis},
        xcom=xcom,
        seconds=seconds,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str) -> str:
    """A fresh name, so tests sharing the session MLflow server never see each other's runs."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def mlflow_connection(uri: str, token: str | None = None, **extra: Any) -> str:
    """An ``mlflow`` connection as Airflow reads it from ``AIRFLOW_CONN_<ID>``."""
    conn: dict[str, Any] = {"conn_type": "mlflow", "host": uri}
    if token:
        conn["password"] = token
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def trainer_starts(marker: Path) -> list[tuple[int, str]]:
    """``(pid, MLflow run id)`` of every start of the test trainer that wrote to ``marker``."""
    if not marker.exists():
        return []
    return [
        (int(p), r)
        for p, r in (line.split(" ", 1) for line in marker.read_text().split("\n") if line)
    ]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def dag_test_in_child(dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None):
    """``dag.test()`` in a child process (to be signalled); it prints ``STATES={...}`` at the end."""
    import subprocess
    import sys

    when = f"datetime.fromisoformat({logical_date.isoformat()!r})" if logical_date else "None"
    code = (
        "import json, os\n"
        "from datetime import datetime\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        "folder = os.environ['AIRFLOW__CORE__DAGS_FOLDER']\n"
        "bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name='dags-folder')\n"
        f"when = {when}\n"
        "kwargs = {'logical_date': when, 'run_after': when} if when else {}\n"
        f"run = bag.get_dag({dag_id!r}).test(run_conf={conf!r}, **kwargs)\n"
        "states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}\n"
        "print('STATES=' + json.dumps(states), flush=True)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def child_states(out: str) -> dict[str, str]:
    """The task states a ``dag_test_in_child`` process printed."""
    assert "STATES=" in out, out[-3000:]
    return json.loads(out.split("STATES=", 1)[1].splitlines()[0])
