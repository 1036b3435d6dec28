"""What parsing the example DAG costs the dag-processor, next to the same DAG of EmptyOperators.

Each measurement is a fresh interpreter, as the dag-processor parses files in fresh processes,
with Airflow itself already imported (its cost is the same for every DAG file): the time is
the ``BundleDagBag`` parse of one file as Airflow records it (``dagbag_stats``), and the heavy
libraries the parse imported are read from ``sys.modules``.

Run ``python tests/airflow/parse_cost.py`` (with an ``AIRFLOW_HOME``) to print the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "airflow" / "dags" / "fraud_detector.py"
HEAVY = ("mlflow", "great_expectations", "feast", "kserve", "kubernetes", "pandas", "sklearn")

# The example's tasks and dependencies, every mlrelay operator replaced by an EmptyOperator.
EMPTY_TWIN = """
from datetime import datetime
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, task

with DAG(dag_id="fraud_detector_empty", schedule=None, start_date=datetime(2026, 1, 1),
         catchup=False, tags=["mlrelay", "example"], default_args={"retries": 1}) as dag:

    @task
    def prepare(rows: int = 2000, run_id: str | None = None) -> dict[str, str]:
        return {}

    data = prepare()
    validate, training_set, materialize, train, register, promote, deploy = (
        EmptyOperator(task_id=t) for t in ("validate", "build_training_set",
        "materialize_features", "train", "register", "promote", "deploy"))
    data >> validate >> training_set >> [materialize, train]
    train >> register >> promote >> deploy
"""

PROBE = """
import json, sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.providers.standard.operators.empty import EmptyOperator
folder = sys.argv[1]
before = set(sys.modules)
bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="parse-cost")
assert not bag.import_errors, bag.import_errors
print(json.dumps({
    "seconds": sum(s.duration.total_seconds() for s in bag.dagbag_stats),
    "tasks": sum(len(d.tasks) for d in bag.dags.values()),
    "imported": sorted({m.split(".")[0] for m in set(sys.modules) - before}),
}))
"""


def parse(dag_file: Path | str, *, source: str | None = None) -> dict[str, object]:
    """Parse one DAG file in a fresh interpreter; its parse time and the top-level modules it imported."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / (Path(dag_file).name)
        if source is not None:
            target.write_text(source)
        else:
            shutil.copy(dag_file, target)
        out = subprocess.run(
            [sys.executable, "-c", PROBE, folder],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "MLRELAY_EXAMPLES": str(ROOT / "examples")},
            timeout=300,
        ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def compare(repeat: int = 3) -> dict[str, object]:
    """Median parse times of the example and its EmptyOperator twin, and what the example imported."""
    ours = [parse(EXAMPLE) for _ in range(repeat)]
    empty = [parse("fraud_detector_empty.py", source=EMPTY_TWIN) for _ in range(repeat)]
    return {
        "mlrelay_seconds": statistics.median(float(r["seconds"]) for r in ours),  # type: ignore[arg-type]
        "empty_seconds": statistics.median(float(r["seconds"]) for r in empty),  # type: ignore[arg-type]
        "tasks": (ours[0]["tasks"], empty[0]["tasks"]),
        "heavy_imported": sorted({m for r in ours for m in r["imported"] if m in HEAVY}),  # type: ignore[attr-defined]
    }


if __name__ == "__main__":
    print(json.dumps(compare(repeat=int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
