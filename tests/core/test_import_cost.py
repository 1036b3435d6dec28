"""Importing mlrelay (and its spec modules) loads no heavy library.

Airflow parses DAG files in fresh processes and pays every module-level import on every parse,
so this is checked in a fresh interpreter, not in the test process where they are loaded anyway.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = [
    "mlflow",
    "great_expectations",
    "feast",
    "kserve",
    "pandas",
    "sklearn",
    "kubernetes",
    "numpy",
    "pyarrow",
]


def loaded_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_mlrelay_loads_no_heavy_library() -> None:
    assert loaded_after("import mlrelay").isdisjoint(HEAVY)


def test_specs_and_step_packages_load_no_heavy_library() -> None:
    code = "\n".join(
        [
            "import mlrelay",
            "from mlrelay import (TrainingJob, DeploymentSpec, Canary, PromotionGate, FeatureRequest,",
            "    ValidationPolicy, MLflowSettings, validate, build_training_set, train, register_model,",
            "    promote, deploy)",
            "import mlrelay.errors, mlrelay.lineage, mlrelay.cli",
        ]
    )
    heavy = loaded_after(code) & set(HEAVY)
    assert not heavy, f"importing the public API loaded {sorted(heavy)}"


def test_cluster_backends_load_no_heavy_library_until_they_connect() -> None:
    code = "\n".join(
        [
            "from mlrelay import KubernetesJobBackend, TrainJobBackend, PyTorchJobBackend, KServeBackend",
            "from mlrelay import KubernetesSettings, TrainingJob",
            "job = TrainingJob(name='j', image='python:3.11', command=['python'])",
            "KubernetesJobBackend(KubernetesSettings()).validate(job)",
        ]
    )
    heavy = loaded_after(code) & {*HEAVY, "tenacity", "urllib3"}
    assert not heavy, f"a cluster backend loaded {sorted(heavy)} before any call to the cluster"


def test_unknown_attribute_is_attribute_error() -> None:
    import mlrelay

    with pytest.raises(AttributeError, match="not_a_step"):
        mlrelay.not_a_step
