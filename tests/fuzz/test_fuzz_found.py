"""The inputs the fuzz tests found getting through (or failing unclearly), kept as plain tests.

Each was a spec that built fine and then failed later: a 422 from the API server or KServe's
webhook, a ``ValueError: embedded null byte`` from the local backend, traffic moving back to the
old version, a gate that can never pass, or a ``ConfigError`` that named no field.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlrelay.errors import ConfigError
from mlrelay.features.spec import FeatureRequest
from mlrelay.registry.spec import ModelVersionRef, PromotionGate
from mlrelay.serving.spec import Canary, DeploymentSpec
from mlrelay.training.spec import TrainingJob
from mlrelay.validation.gx import build_suite

JOB = {"name": "fraud-train", "command": ["python", "train.py"]}
FEATURES = {"repo": "repo", "output": "out.parquet"}


def env(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "A", **fields}]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"command": ["x\x00"]}, "TrainingJob.command.0"),
        ({"args": ["--a\x00"]}, "TrainingJob.args.0"),
        ({"env": env(value="a\x00b")}, "TrainingJob.env.0.value"),
        ({"env": env(secret_value="s\x00")}, "TrainingJob.env.0.secret_value"),
        ({"env": env(value="1") * 2}, "TrainingJob.env"),
        ({"env": [{"name": "MLFLOW_RUN_ID", "value": "x"}]}, "TrainingJob.env"),
        ({"tags": {"mlrelay.run": "x"}}, "TrainingJob.tags"),
        ({"tolerations": [{"operator": "Exists", "value": "x"}]}, "TrainingJob.tolerations.0.value"),
        ({"tolerations": [{"value": "x"}]}, "TrainingJob.tolerations.0.operator"),
        ({"tolerations": [{"key": "k", "toleration_seconds": 5}]}, "TrainingJob.tolerations.0.toleration_seconds"),
        ({"tolerations": [{"key": "bad key!", "operator": "Exists"}]}, "TrainingJob.tolerations.0"),
        ({"volumes": [{"name": "v", "mount_path": "/d", "pvc": "Not A Claim"}]}, "TrainingJob.volumes.0.pvc"),
        ({"volumes": [{"name": "v", "mount_path": "/d", "empty_dir": True}] * 2}, "TrainingJob.volumes"),
        ({"resources": {"cpu": "2", "cpu_limit": "500m"}}, "TrainingJob.resources.cpu_limit"),
        ({"resources": {"memory": "2Gi", "memory_limit": "1G"}}, "TrainingJob.resources.memory_limit"),
        ({"labels": {"team": "a b"}}, "TrainingJob.labels"),
        ({"labels": {"x" * 64: "v"}}, "TrainingJob.labels"),
        ({"node_selector": {"pool": "-gpu"}}, "TrainingJob.node_selector"),
        ({"annotations": {"bad key!": "any value is fine"}}, "TrainingJob.annotations"),
        ({"timeout": float("inf")}, "TrainingJob.timeout"),
    ],
)  # fmt: skip
def test_s3_jobs_the_cluster_or_a_process_would_refuse_are_config_errors(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TrainingJob(**{**JOB, **changes})
    assert info.value.field == field
    assert "s\x00" not in str(info.value)  # a secret value is never repeated


def test_s3_valid_resources_tolerations_and_volumes_still_build() -> None:
    job = TrainingJob(
        **JOB,
        resources={"cpu": "500m", "cpu_limit": "1", "memory": "1Gi", "memory_limit": "1Gi"},
        tolerations=[
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {"key": "spot", "value": "yes", "effect": "NoExecute", "toleration_seconds": 60},
        ],
        volumes=[{"name": "data", "mount_path": "/data", "pvc": "fraud-data.v1"}],
        labels={"example.com/team": "risk", "empty": ""},
        annotations={"example.com/why": "any text at all: spaces, / and :"},
    )
    assert job.resources.cpu_limit == "1"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Canary(10, steps=[50, 20]), "Canary.steps"),
        (lambda: Canary(50, steps=[20, 80]), "Canary.steps"),
        (lambda: Canary(10, steps=[50, 50]), "Canary.steps"),
        (
            lambda: DeploymentSpec(name="0fraud", model=ModelVersionRef(name="m", version="1")),
            "DeploymentSpec.name",
        ),
        (
            lambda: DeploymentSpec(
                name="fraud", model=ModelVersionRef(name="m", version="1"), ready_timeout=1e999
            ),
            "DeploymentSpec.ready_timeout",
        ),
        (lambda: PromotionGate(metric="auc", min_value=0.9, max_value=0.5), "PromotionGate.max_value"),
        (lambda: PromotionGate(metric="auc", min_delta=float("inf")), "PromotionGate.min_delta"),
        (lambda: FeatureRequest(**FEATURES), "FeatureRequest.features"),
        (lambda: FeatureRequest(**FEATURES, features=["v:f"], feature_service="s"), "FeatureRequest.feature_service"),
        (lambda: FeatureRequest(**FEATURES, features=["a:b:c"]), "FeatureRequest.features"),
        (lambda: FeatureRequest(**FEATURES, features=[" view:f"]), "FeatureRequest.features"),
    ],
)  # fmt: skip
def test_s3_deployments_gates_and_feature_refs_found_by_fuzzing_name_the_field(
    build: Any, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field
    assert Canary(10, steps=[25, 50]).steps == [25, 50]


@pytest.mark.parametrize("expectations", [True, 3, "expect_column_to_exist", {"type": "x"}])
def test_s4_a_suite_whose_expectations_are_not_a_list_is_a_config_error(expectations: Any) -> None:
    # was TypeError: 'bool' object is not iterable, from the check for a GX 0.x suite
    with pytest.raises(ConfigError) as info:
        build_suite({"name": "transactions", "expectations": expectations})
    assert info.value.field == "suite.expectations"
