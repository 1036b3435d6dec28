"""Registered card-fraud models for the serving tests (local and KServe): a real sklearn
pipeline logged as an MLflow 3 logged model and registered through the client API."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mlrelay import _mlflow
from mlrelay.registry.spec import ModelVersionRef

FEATURES = ["amount", "hour", "merchant_category", "is_online"]


def pipeline(c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("category", OneHotEncoder(handle_unknown="ignore"), ["merchant_category"]),
            ("numbers", StandardScaler(), ["amount", "hour", "is_online"]),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=c, max_iter=1000))])


def register(
    client: Any,
    model: Any,
    example: pd.DataFrame,
    workdir: Path,
    name: str,
    *,
    broken: bool = False,
    tamper: Callable[[Path], None] | None = None,
) -> ModelVersionRef:
    """Log ``model`` in a run as an MLflow 3 logged model and register it (client API only).

    ``broken`` corrupts the pickled model after saving: the version registers fine and fails to
    load in a model server, as a model built against another library version would. ``tamper``
    may change the saved model's files (its directory is passed) before they are logged.
    """
    import mlflow.sklearn

    local = workdir / f"model-{time.monotonic_ns()}"
    mlflow.sklearn.save_model(
        model, str(local), input_example=example, pip_requirements=["scikit-learn", "skops"]
    )
    if broken:
        for f in local.glob("model.*"):
            f.write_bytes(b"not a model")
    if tamper is not None:
        tamper(local)
    experiment = _mlflow.ensure_experiment(client, "serving-tests")
    run = client.create_run(experiment)
    logged = client.create_logged_model(experiment, name="model", source_run_id=run.info.run_id)
    client.log_model_artifacts(logged.model_id, str(local))
    client.finalize_logged_model(logged.model_id, "READY")
    client.set_terminated(run.info.run_id)
    if client.search_registered_models(filter_string=f"name = '{name}'") == []:
        client.create_registered_model(name)
    mv = client.create_model_version(
        name, source=f"models:/{logged.model_id}", run_id=run.info.run_id, model_id=logged.model_id
    )
    return ModelVersionRef(name=name, version=str(mv.version), source=mv.source, run_id=mv.run_id)
