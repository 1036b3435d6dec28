"""The Airflow tests' world: one private AIRFLOW_HOME for the session, its DB migrated once.

Airflow reads its configuration when it is first imported, so the environment is set here,
at collection, before any test module imports it: a temporary home, a DAG folder holding the
example DAG and this folder's test DAGs (as symlinks, so each file keeps its real path), no
example DAGs, no usage analytics. ``dag.test()`` runs a DAG's tasks — and their triggers —
in this process, against the real metadata DB.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLE_DAG = ROOT / "examples" / "airflow" / "dags" / "fraud_detector.py"

if "airflow" in sys.modules:  # its configuration would already point at the machine's home
    raise RuntimeError("airflow was imported before tests/airflow/conftest.py could isolate it")

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mlrelay-airflow-home-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)  # also if no test here runs
DAGS_FOLDER = AIRFLOW_HOME / "dags"
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
    AIRFLOW__USAGE_DATA_COLLECTION__ENABLED="False",
    SCARF_ANALYTICS="false",
    DO_NOT_TRACK="true",
    MLRELAY_EXAMPLES=str(ROOT / "examples"),
)
DAGS_FOLDER.mkdir()
for dag_file in (EXAMPLE_DAG, *sorted((HERE / "dags").glob("*.py"))):
    (DAGS_FOLDER / dag_file.name).symlink_to(dag_file)


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Path:
    """``airflow db migrate`` once per session (~4 s, SQLite)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return AIRFLOW_HOME


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    """The in-process task runner installs a SIGTERM handler and never removes it."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path):
    """The DAG folder as the dag-processor parses it (the bundle ``dag.test()`` syncs)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=DAGS_FOLDER, bundle_path=DAGS_FOLDER, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    return bag
