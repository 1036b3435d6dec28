"""P1: what parsing the example DAG costs the dag-processor, next to EmptyOperators and the peers.

Three versions of the same pipeline (same DAG arguments, ``prepare`` task and dependencies):

- ``mlrelay``: the example, ``examples/airflow/dags/fraud_detector.py``, with our operators;
- ``empty``: ``benchmarks/dags/fraud_detector_empty.py``, every step an ``EmptyOperator`` (the floor);
- ``peers``: ``benchmarks/dags/fraud_detector_peers.py``, ``GXValidateDataFrameOperator``
  (airflow-provider-great-expectations) and ``KubernetesJobOperator`` (cncf-kubernetes), the other
  steps ``@task`` functions importing their libraries when they run. Its validation operator
  reads the dataset when the DAG is parsed (it calls ``configure_dataframe`` in its
  constructor), so the example data (2,000 rows) is generated where it looks first.

Each sample is a fresh interpreter holding what a parser process holds when the dag-processor's
manager forks it for a file: the manager's and the processor's modules imported, and their
objects frozen out of the garbage collector's reach (``gc.freeze()``, as the manager does;
without it a full collection of Airflow's heap lands in a random parse and adds 0.1-0.4 s of
noise). The DAG file pays for everything else it imports (``airflow.sdk`` and the standard
provider's operators included, the same for all three).

Figures: the CPU time of the ``BundleDagBag`` parse of the one file (the headline: on a machine
shared with other work, wall time mostly measures the wait for a core), the same parse's wall
time as Airflow records it (``dagbag_stats``, what ``airflow dags report`` shows), and the CPU
time to serialise the DAG (the dag-processor's next step). Rounds interleave the three files so
machine noise spreads evenly. An installed package has its bytecode compiled; a source checkout
run with ``PYTHONDONTWRITEBYTECODE`` does not, so the samples read bytecode from a private cache
(``PYTHONPYCACHEPREFIX``) that one unmeasured warm-up parse per file fills.

    uv run python benchmarks/p1_parse.py            # 9 rounds
    uv run python benchmarks/p1_parse.py --quick    # 1 round, no warm-up
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import emit, parser, result, summary, versions

ROOT = Path(__file__).resolve().parents[1]
DAGS = {
    "mlrelay": ROOT / "examples" / "airflow" / "dags" / "fraud_detector.py",
    "empty": ROOT / "benchmarks" / "dags" / "fraud_detector_empty.py",
    "peers": ROOT / "benchmarks" / "dags" / "fraud_detector_peers.py",
}
HEAVY = ("mlflow", "great_expectations", "feast", "kserve", "kubernetes", "pandas", "sklearn")
GOAL = 1.05

# One sample: Airflow imported, then one file parsed the way the dag-processor does it.
PROBE = """
import json, sys, time
import gc
import airflow.dag_processing.manager  # what a parser process inherits from the manager's fork
import airflow.dag_processing.processor
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.serialization.serialized_objects import DagSerialization
gc.collect()
gc.freeze()  # as the manager does before it forks
folder = sys.argv[1]
before = set(sys.modules)
cpu = time.process_time()
bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="p1", load_op_links=False)
parse_cpu = time.process_time() - cpu
assert not bag.import_errors, bag.import_errors
cpu = time.process_time()
for dag in bag.dags.values():
    DagSerialization.to_dict(dag)
print(json.dumps({
    "parse_s": sum(s.duration.total_seconds() for s in bag.dagbag_stats),
    "parse_cpu_s": parse_cpu,
    "serialize_cpu_s": time.process_time() - cpu,
    "tasks": sum(len(d.tasks) for d in bag.dags.values()),
    "imported": sorted({m.split(".")[0] for m in set(sys.modules) - before}),
}))
"""


def sample(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Parse the one DAG file in ``folder`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode:
        raise RuntimeError(f"parsing {folder.name} failed:\n{proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def child_env(tmp: Path, pycache: Path, *, write_bytecode: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "MLRELAY_HOME": str(tmp / "mlrelay"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MLRELAY_EXAMPLES": str(ROOT / "examples"),
        "PYTHONPYCACHEPREFIX": str(pycache),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def pycache_dir() -> Path:
    """Bytecode kept between runs (Python checks it against each source's mtime)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlrelay-bench" / "pycache"


def measure(
    rounds: int, *, names: tuple[str, ...] = tuple(DAGS), warm_up: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` interleaved samples of each DAG file ``names``, after a warm-up parse of each.

    ``tests/airflow/test_airflow_provider.py`` runs this too (one round, ours and the floor):
    the example DAG must parse without importing a heavy library.
    """
    with tempfile.TemporaryDirectory(prefix="p1-") as tmp:
        pycache = pycache_dir()
        (Path(tmp) / "airflow").mkdir()
        if "peers" in names:  # GXValidateDataFrameOperator reads the data when parsed
            data = Path(tmp) / "mlrelay" / "airflow" / "fraud_detector" / "feature_repo" / "data"
            generate = ROOT / "examples" / "data" / "generate.py"
            subprocess.run([sys.executable, str(generate), str(data), "--rows", "2000"],
                           check=True, capture_output=True, timeout=300)  # fmt: skip
        folders = {}
        for name in names:  # one file per bundle folder, as parsed for real
            folders[name] = Path(tmp) / "bundles" / name
            folders[name].mkdir(parents=True)
            (folders[name] / DAGS[name].name).write_text(DAGS[name].read_text())
        for folder in folders.values() if warm_up else ():
            sample(folder, child_env(Path(tmp), pycache, write_bytecode=True))
        env = child_env(Path(tmp), pycache, write_bytecode=False)
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for _ in range(rounds):
            for name, folder in folders.items():
                samples[name].append(sample(folder, env))
    return samples


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--rounds", type=int, default=9, help="fresh interpreters per file")
    args = args_parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    samples = measure(rounds, warm_up=not args.quick)

    def stat(key: str) -> dict[str, dict[str, float | int]]:
        return {name: summary(s[key] for s in runs) for name, runs in samples.items()}

    cpu, wall, serialize = stat("parse_cpu_s"), stat("parse_s"), stat("serialize_cpu_s")
    ratio = cpu["mlrelay"]["p50"] / cpu["empty"]["p50"]
    figures = {
        "rounds": rounds,
        "parse_cpu_s": cpu,
        "parse_wall_s": wall,
        "serialize_cpu_s": serialize,
        "ratio_wall": round(wall["mlrelay"]["p50"] / wall["empty"]["p50"], 3),
        "ratio_serialize": round(serialize["mlrelay"]["p50"] / serialize["empty"]["p50"], 3),
        "ratio_peers_over_empty": round(cpu["peers"]["p50"] / cpu["empty"]["p50"], 3),
        "ratio_ours_over_peers": round(cpu["mlrelay"]["p50"] / cpu["peers"]["p50"], 4),
        "tasks": {name: runs[0]["tasks"] for name, runs in samples.items()},
        "heavy_imported": {
            name: sorted({m for s in runs for m in s["imported"] if m in HEAVY})
            for name, runs in samples.items()
        },
    }
    emit(
        args,
        [
            result(
                "P1",
                "DAG parse time: the example DAG, ours vs EmptyOperator (and the peers')",
                f"ours <= {GOAL}x EmptyOperator",
                met=ratio <= GOAL,
                ratio=ratio,
                ratio_label="ours / EmptyOperator (p50 parse CPU time)",
                figures=figures,
                versions=versions(
                    "apache-airflow",
                    "apache-airflow-task-sdk",
                    "apache-airflow-providers-standard",
                    "apache-airflow-providers-cncf-kubernetes",
                    "airflow-provider-great-expectations",
                    "great-expectations",
                    "kubernetes",
                    "airflow-provider-mlrelay",
                    "mlrelay",
                ),
                quick=args.quick,
            )
        ],
    )


if __name__ == "__main__":
    main()
