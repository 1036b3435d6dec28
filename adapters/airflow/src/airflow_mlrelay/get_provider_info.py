"""What Airflow's ProvidersManager learns about this provider (``apache_airflow_provider`` entry point).

Connection fields and their UI behaviour are declared here rather than in hook methods, as
Airflow 3.2+ expects: the UI builds the ``mlflow`` connection form without importing the hook.
"""

from __future__ import annotations

from typing import Any

_OPERATORS = (
    "validate", "training_set", "materialize", "train", "register", "promote", "deploy", "rollback"
)  # fmt: skip


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-mlrelay",
        "name": "mlrelay",
        "description": "ML lifecycle steps on real systems: Great Expectations validation, Feast "
        "training sets, training on Kubernetes or locally, the MLflow 3 registry, KServe serving.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "mlrelay",
                "external-doc-url": "https://github.com/mlrelay/mlrelay",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "mlrelay",
                "python-modules": [f"airflow_mlrelay.operators.{m}" for m in _OPERATORS],
            }
        ],
        "hooks": [
            {
                "integration-name": "mlrelay",
                "python-modules": [
                    "airflow_mlrelay.hooks.mlflow",
                    "airflow_mlrelay.hooks.kubernetes",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "mlrelay",
                "python-modules": [
                    "airflow_mlrelay.triggers.training",
                    "airflow_mlrelay.triggers.deploy",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "mlflow",
                "hook-class-name": "airflow_mlrelay.hooks.mlflow.MLflowHook",
                "hook-name": "MLflow",
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Only when the model registry is not the tracking server.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "training_tracking_uri": {
                        "label": "Tracking URI for training jobs",
                        "description": "The address a training pod uses (an in-cluster service "
                        "name) when it cannot reach the tracking URI above.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ui_url": {
                        "label": "MLflow UI URL",
                        "description": "Where people open MLflow, for the task's extra links "
                        "(defaults to the tracking URI).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "artifact_destinations": {
                        "label": "Artifact destinations (JSON)",
                        "description": "Maps mlflow-artifacts: prefixes onto the real store, e.g. "
                        '{"mlflow-artifacts:/": "s3://bucket/mlflow/"}.',
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"host": "Tracking URI", "password": "Token"},
                    "placeholders": {
                        "host": "https://mlflow.example.com",
                        "password": "MLflow tracking token (sent as a bearer token)",
                    },
                },
            }
        ],
        "extra-links": [
            "airflow_mlrelay.links.MLflowRunLink",
            "airflow_mlrelay.links.MLflowModelVersionLink",
            "airflow_mlrelay.links.EndpointLink",
        ],
    }
