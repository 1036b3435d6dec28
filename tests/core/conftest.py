"""Fixtures of the core tests: the registry's logged runs, and an MLflow client.

They live here rather than in ``registry_support`` because a fixture imported into several
modules runs once per module: from a conftest, ``runs`` logs its training runs once a session.
Each test registers them under its own ``model_name``, so tests share the server without
seeing each other's versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from registry_support import SCORES, Proxy, fluent_tracking, log_run

from mlrelay.settings import MLflowSettings
from mlrelay.training.spec import TrainingResult


@pytest.fixture(scope="session")
def runs(mlflow_server: str) -> dict[str, TrainingResult]:
    """Three finished training runs with logged models, made once for the session."""
    import mlflow

    with fluent_tracking(mlflow_server):
        experiment_id = mlflow.MlflowClient().create_experiment(f"registry-{uuid.uuid4().hex[:8]}")
        return {label: log_run(experiment_id, *s) for label, s in SCORES.items()}


@pytest.fixture
def model_name() -> str:
    return f"fraud-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(mlflow_settings: MLflowSettings):
    """A client of the session MLflow server, to check what a step left in it."""
    import mlflow

    return mlflow.MlflowClient(mlflow_settings.tracking_uri)


@pytest.fixture
def proxy(mlflow_server: str) -> Iterator[Proxy]:
    p = Proxy(mlflow_server)
    yield p
    p.close()
