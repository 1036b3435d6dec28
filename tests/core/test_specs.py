"""Specs reject bad input with a ConfigError naming the field, before anything can be created."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from mlrelay._model import safe_name
from mlrelay.errors import ConfigError
from mlrelay.registry.spec import ModelVersionRef, PromotionGate
from mlrelay.serving.spec import Canary, DeploymentSpec, Replace
from mlrelay.settings import KubernetesSettings, MLflowSettings
from mlrelay.training.spec import EnvVar, Resources, TrainingJob


def job(**overrides):
    return TrainingJob(**{"name": "fraud-train", "command": ["python", "train.py"], **overrides})


@pytest.mark.parametrize("name", ["My..Job/", "a" * 64, "-leading-dash", "UPPER", ""])
def test_s1_job_name_must_be_dns1123(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        job(name=name)
    assert err.value.field == "TrainingJob.name"


def test_s1_safe_name_is_dns1123_short_and_collision_free() -> None:
    long = safe_name("x" * 100)
    assert len(long) <= 63
    job(name=long)  # accepted by the spec
    assert safe_name("My..Job/") != safe_name("my-job")
    assert safe_name("My..Job/") == safe_name("My..Job/")  # deterministic, so retries find it
    assert safe_name("my-job") == "my-job"  # already valid names are kept as they are
    assert safe_name("dag", "task", "2026-11-22T10:00:00+00:00").startswith("dag-task-2026")


def test_s1_bad_namespace_rejected_before_any_call() -> None:
    with pytest.raises(ValueError, match="DNS-1123"):
        KubernetesSettings(namespace="Team_A")


@pytest.mark.parametrize(
    ("resources", "field"),
    [({"cpu": "2 cores"}, "cpu"), ({"gpu": -1}, "gpu"), ({"memory": "lots"}, "memory")],
)
def test_s3_bad_resources_name_the_field(resources: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        job(resources=resources)
    assert field in str(err.value)
    assert str(err.value).startswith("TrainingJob.resources")


def test_s3_canary_150_percent_is_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        Canary(150)
    assert err.value.field == "Canary.percent"
    assert Canary(10).percent == 10


def test_s3_deployment_spec_rejects_bad_strategy_before_deploy() -> None:
    model = ModelVersionRef(name="fraud", version="1")
    with pytest.raises(ConfigError, match="percent"):
        DeploymentSpec(name="fraud", model=model, strategy={"kind": "canary", "percent": 150})
    spec = DeploymentSpec(name="fraud", model=model)
    assert isinstance(spec.strategy, Replace)


def test_env_var_needs_exactly_one_source() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        EnvVar(name="TOKEN", value="a", secret_value=SecretStr("b"))
    with pytest.raises(ConfigError, match="env"):
        job(env=[EnvVar(name="A", value="1"), EnvVar(name="A", value="2")])


def test_secret_env_value_never_in_json_dump_or_error() -> None:
    spec = job(env=[EnvVar(name="API_TOKEN", secret_value=SecretStr("canary-s3cr3t"))])
    assert "canary-s3cr3t" not in json.dumps(spec.model_dump(mode="json"))
    assert "canary-s3cr3t" not in repr(spec)
    with pytest.raises(ConfigError) as err:  # a bad spec holding a secret must not echo it
        job(name="Bad Name", env=[{"name": "T", "secret_value": "canary-s3cr3t"}])
    assert "canary-s3cr3t" not in str(err.value)
    assert (err.value.__cause__ is None and err.value.__context__ is None) or (
        "canary-s3cr3t" not in str(err.value.__context__)
    )


def test_specs_round_trip_through_json() -> None:
    spec = job(resources=Resources(cpu="500m", memory="2Gi", gpu=1), labels={"team": "risk"})
    again = TrainingJob.model_validate(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert again == spec
    gate = PromotionGate(metric="roc_auc", min_delta=0.01)
    assert PromotionGate.model_validate(gate.model_dump(mode="json")) == gate


def test_specs_are_frozen() -> None:
    spec = job()
    with pytest.raises(Exception, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


def test_tracking_uri_with_password_is_rejected() -> None:
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_TOKEN") as err:
        MLflowSettings(tracking_uri="https://user:hunter2@mlflow.example.com")
    assert "hunter2" not in str(err.value)


def test_promotion_gate_bounds_in_order() -> None:
    with pytest.raises(ConfigError, match="min_value"):
        PromotionGate(metric="roc_auc", min_value=0.9, max_value=0.8)


def test_mlflow_settings_take_every_field_by_name_as_well_as_by_environment(monkeypatch) -> None:
    from mlrelay.settings import MLflowSettings

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    given = MLflowSettings(
        token="t0ken", training_tracking_uri="http://mlflow.ml:5000",
        artifact_destinations={"mlflow-artifacts:/": "s3://bucket/mlflow/"},
    )  # fmt: skip
    assert given.token is not None
    assert given.token.get_secret_value() == "t0ken"
    assert given.training_tracking_uri == "http://mlflow.ml:5000"
    assert given.artifact_destinations == {"mlflow-artifacts:/": "s3://bucket/mlflow/"}
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "from-env")
    assert MLflowSettings().token.get_secret_value() == "from-env"  # type: ignore[union-attr]
