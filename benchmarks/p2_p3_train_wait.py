"""P2 and P3: how fast a waiting training task notices its Job's end, and what waiting costs.

One emulator (``mlrelay.testing.server.default_emulator``: the API server, a Job controller and
a kubelet running ``python:*`` pods as local processes) and four ways of waiting on a Job:

- ``ours_train``: ``mlrelay.train`` on ``KubernetesJobBackend`` (the call returns the result);
- ``ours_trigger``: our ``TrainingJobTrigger`` on a job ``start_training`` submitted, run in an
  asyncio loop as the triggerer runs it (``async for event in trigger.run()``);
- ``peer_sync``: cncf-kubernetes' ``KubernetesJobOperator(wait_until_job_complete=True)``;
- ``peer_deferred``: the same with ``deferrable=True``;
- ``ours_deferred``: our ``TrainModelOperator(backend="kubernetes")``, deferred, for symmetry.

The operators run for real through Airflow's ``dag.test()`` (a private ``AIRFLOW_HOME``, its
SQLite DB migrated once): the task runner executes them, a deferred task's trigger runs in line
(Airflow's in-process triggerer), then ``execute_complete``. They reach the emulator through a
``kubernetes`` connection (``AIRFLOW_CONN_KUBERNETES_DEFAULT``) naming its kubeconfig file; the
peer keeps its defaults (``job_poll_interval`` 10 s), except under ``--quick`` (2 s). The P2
jobs run from 2 s to 2 s plus one poll interval, so their ends meet the peer's polls at every
phase (a fixed duration would measure one phase only: its best or its worst case).

P2: from the moment the Job controller writes the terminal condition (``SuccessCriteriaMet``, seen
through the store's own event stream: the emulator's clock) to the waiting call returning (the
operator's ``post_execute``: its last ``execute`` or ``execute_complete`` has returned).
P3: the API requests the emulator served while one client waited on a ``--wait``-second job, from
submission to return, by verb and resource (the clients run one at a time, so each count is one
client's), scaled to a minute.

    uv run python benchmarks/p2_p3_train_wait.py            # 8 jobs each, a 60-second wait
    uv run python benchmarks/p2_p3_train_wait.py --quick    # 1 job each, a 3-second wait
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import emit, parser, result, summary, versions


def p2_job(i: int, jobs: int, poll: float) -> list[str]:
    """The i-th P2 job: it runs 2 s and more, its end spread evenly over one peer poll interval
    (so the peer's polls meet Jobs ending at every phase, as they do in real life)."""
    seconds = 2.0 + poll * i / jobs
    return ["python", "-c", f"import time; time.sleep({seconds:.2f}); print('trained')"]


NAMESPACE = "default"
CONN = "kubernetes_default"
P2_GOAL, P2_FACTOR, P3_FACTOR = 0.5, 10.0, 10.0


class Clock:
    """When each Job met its success criteria, by the emulator's own event stream."""

    def __init__(self, emulator: Any) -> None:
        self.ended: dict[str, float] = {}
        emulator.store.subscribe(self._on_event, kinds=["jobs"])

    def _on_event(self, event: Any) -> None:  # under the store lock: record, never block
        conditions = (event.object.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "SuccessCriteriaMet" for c in conditions):
            self.ended.setdefault(event.object["metadata"]["name"], time.monotonic())

    def latency(self, run: Callable[[], float]) -> float:
        """Run one wait (``run`` returns when it returned); seconds since its Job ended."""
        before = set(self.ended)
        returned = run()
        (name,) = set(self.ended) - before  # one job per run
        return returned - self.ended[name]


def counted(emulator: Any, run: Callable[[], Any]) -> dict[str, Any]:
    """The requests the emulator served while ``run`` ran, by verb and resource, and per minute."""
    before, started = emulator.counter.snapshot(), time.monotonic()
    run()
    waited = time.monotonic() - started
    made = emulator.counter.snapshot() - before
    total = sum(made.values())
    by = Counter({f"{verb} {plural}": n for (verb, _, plural), n in made.items()})
    return {
        "requests": total,
        "waited_s": round(waited, 1),
        "per_minute": round(total * 60.0 / waited, 1),
        "by_verb": dict(sorted(by.items())),
    }


def prepare_airflow(home: Path, kubeconfig: Path, tracking_uri: str) -> None:
    """A private Airflow (set before Airflow is imported), its DB migrated, the connection set."""
    connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__USAGE_DATA_COLLECTION__ENABLED="False",
        SCARF_ANALYTICS="false",
        MLFLOW_TRACKING_URI=tracking_uri,
        **{f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(connection)},
    )
    (home / "dags").mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=600,
    )


# The operators' DAGs, parsed from a file as dag.test() needs; each run's job name and code are
# its dag_run.conf. ``stamp`` (post_execute) records when execute(_complete) returned.
DAGS = """
import os
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow_mlrelay.operators import TrainModelOperator
from p2_clock import stamp

NAME, CODE = "{{ dag_run.conf['job'] }}", "{{ dag_run.conf['code'] }}"
POLL = float(os.environ["P2_PEER_POLL"])
for deferrable in (False, True):
    with DAG(dag_id=f"peer_{'deferred' if deferrable else 'sync'}", schedule=None,
             start_date=datetime(2026, 1, 1), catchup=False):
        KubernetesJobOperator(
            task_id="train", name=NAME, image="python:3.11", cmds=["python"],
            arguments=["-c", CODE], namespace="default", kubernetes_conn_id="kubernetes_default",
            wait_until_job_complete=True, deferrable=deferrable, job_poll_interval=POLL,
            post_execute=stamp,
        )
with DAG(dag_id="ours_deferred", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    TrainModelOperator(
        task_id="train", name=NAME, image="python:3.11", command=["python", "-c", CODE],
        experiment="bench", backend="kubernetes", kubernetes_conn_id="kubernetes_default",
        mlflow_conn_id=None, post_execute=stamp,
    )
"""
CLOCK = """import time

RETURNED = []


def stamp(context, result=None):
    RETURNED.append(time.monotonic())
"""


def load_dags(folder: Path, poll: float) -> Any:
    """The three operator DAGs, parsed the way Airflow parses them."""
    from airflow.dag_processing.dagbag import BundleDagBag

    os.environ["P2_PEER_POLL"] = str(poll)
    (folder / "p2_clock.py").write_text(CLOCK)  # no DAG in it: safe mode skips the file
    (folder / "p2_dags.py").write_text(DAGS)
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    if bag.import_errors:
        raise RuntimeError(f"the benchmark DAGs do not parse: {bag.import_errors}")
    return bag


def run_task(bag: Any, dag_id: str, job: str, command: list[str]) -> float:
    """``dag.test()`` one run; when its last execute(_complete) returned (monotonic)."""
    import p2_clock  # the DAG file's own module (the dags folder is on sys.path)

    run = bag.get_dag(dag_id).test(run_conf={"job": job, "code": command[-1]})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    if states != {"train": "success"}:
        raise RuntimeError(f"{dag_id} {job}: task ended {states}")
    returned: float = p2_clock.RETURNED[-1]
    return returned


def ours_train(name: str, command: list[str], mlflow: Any) -> float:
    from mlrelay.settings import KubernetesSettings
    from mlrelay.training import TrainingJob, train
    from mlrelay.training.kubernetes import KubernetesJobBackend

    backend = KubernetesJobBackend(KubernetesSettings(kubeconfig=os.environ["KUBECONFIG"]))
    job = TrainingJob(name=name, image="python:3.11", command=command, experiment="bench")
    train(job, backend, settings=mlflow)
    return time.monotonic()


def ours_trigger(name: str, command: list[str], mlflow: Any) -> float:
    from airflow_mlrelay.triggers.training import TrainingJobTrigger
    from mlrelay.settings import KubernetesSettings
    from mlrelay.training import TrainingJob, finish_training, start_training
    from mlrelay.training.kubernetes import KubernetesJobBackend
    from mlrelay.training.spec import JobStatus

    backend = KubernetesJobBackend(KubernetesSettings(kubeconfig=os.environ["KUBECONFIG"]))
    job = TrainingJob(name=name, image="python:3.11", command=command, experiment="bench")
    handle = start_training(job, backend, settings=mlflow)
    trigger = TrainingJobTrigger(
        handle=handle.model_dump(mode="json"), backend="kubernetes", kubernetes_conn_id=CONN
    )

    async def first_event() -> Any:
        async for event in trigger.run():
            return event
        raise RuntimeError("the trigger ended without an event")

    event = asyncio.run(first_event())
    returned = time.monotonic()
    if "status" not in event.payload:
        raise RuntimeError(f"trigger: {event.payload}")
    finish_training(handle, JobStatus.model_validate(event.payload["status"]), settings=mlflow)
    return returned


def p2_result(lat: dict[str, list[float]], quick: bool, vers: dict[str, str]) -> dict[str, Any]:
    stats = {name: summary(xs, 3) for name, xs in lat.items()}
    ours = max(stats["ours_train"]["p50"], stats["ours_trigger"]["p50"])
    best_peer = min(stats["peer_sync"]["p50"], stats["peer_deferred"]["p50"])
    ratio = ours / best_peer
    return result(
        "P2",
        "Job completion to the waiting call returning: ours vs KubernetesJobOperator",
        f"p50 <= {P2_GOAL} s, >= {P2_FACTOR:g}x better than the peer",
        met=ours <= P2_GOAL and ratio <= 1 / P2_FACTOR,
        ratio=ratio,
        ratio_label="ours (slower of train/trigger) / peer (faster mode), p50",
        figures={"completion_to_return_s": stats},
        versions=vers,
        quick=quick,
    )


def p3_result(
    counts: dict[str, dict[str, Any]], quick: bool, vers: dict[str, str]
) -> dict[str, Any]:
    ours = max(counts["ours_train"]["per_minute"], counts["ours_trigger"]["per_minute"])
    best_peer = min(counts["peer_sync"]["per_minute"], counts["peer_deferred"]["per_minute"])
    ratio = ours / best_peer if best_peer else None
    return result(
        "P3",
        "API requests while waiting on one job: ours vs KubernetesJobOperator",
        f"<= 1/{P3_FACTOR:g} of the peer's requests",
        met=ratio is not None and ratio <= 1 / P3_FACTOR,
        ratio=ratio,
        ratio_label="ours (busier of train/trigger) / peer (quieter mode), requests per minute",
        figures={"while_waiting": counts},
        versions=vers,
        quick=quick,
    )


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--jobs", type=int, default=8, help="jobs per way of waiting (P2)")
    args_parser.add_argument("--wait", type=float, default=60.0, help="the P3 job's seconds")
    args = args_parser.parse_args()
    jobs, wait = (1, 3.0) if args.quick else (args.jobs, args.wait)
    poll = 2.0 if args.quick else 10.0  # the peer's default job_poll_interval, but in a smoke run
    logging.basicConfig(level=logging.WARNING)
    from mlrelay.settings import MLflowSettings
    from mlrelay.testing.server import default_emulator

    with tempfile.TemporaryDirectory(prefix="p2p3-") as tmp, default_emulator() as emulator:
        kubeconfig = emulator.write_kubeconfig(Path(tmp) / "kubeconfig")
        os.environ["KUBECONFIG"] = str(kubeconfig)
        tracking = f"sqlite:///{tmp}/mlflow.db"
        mlflow = MLflowSettings(tracking_uri=tracking)
        prepare_airflow(Path(tmp) / "airflow", kubeconfig, tracking)
        bag = load_dags(Path(tmp) / "airflow" / "dags", poll)
        clock = Clock(emulator)
        sleep = ["python", "-c", f"import time; time.sleep({wait})"]
        ways: dict[str, Callable[[str, list[str]], float]] = {
            "ours_train": lambda name, cmd: ours_train(name, cmd, mlflow),
            "ours_trigger": lambda name, cmd: ours_trigger(name, cmd, mlflow),
            "ours_deferred": lambda name, cmd: run_task(bag, "ours_deferred", name, cmd),
            "peer_sync": lambda name, cmd: run_task(bag, "peer_sync", name, cmd),
            "peer_deferred": lambda name, cmd: run_task(bag, "peer_deferred", name, cmd),
        }
        lat: dict[str, list[float]] = {name: [] for name in ways}
        for i in range(jobs):  # interleaved: machine noise spreads evenly
            command = p2_job(i, jobs, poll)
            for name, way in ways.items():
                job = f"p2-{name.replace('_', '-')}-{i}"
                lat[name].append(clock.latency(lambda: way(job, command)))  # noqa: B023
        counts = {
            name: counted(emulator, lambda: way(f"p3-{name.replace('_', '-')}", sleep))  # noqa: B023
            for name, way in ways.items()
        }
    vers = versions(
        "apache-airflow",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-cncf-kubernetes",
        "kubernetes",
        "kubernetes-asyncio",
        "airflow-provider-mlrelay",
        "mlrelay",
    )
    vers["peer_job_poll_interval_s"] = str(poll)
    emit(args, [p2_result(lat, args.quick, vers), p3_result(counts, args.quick, vers)])


if __name__ == "__main__":
    main()
