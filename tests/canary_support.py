"""The one canary secret of a test run (FAULTS S2), and the scan every secrets test applies.

The value is random per process, so no fixture or example can contain it by accident; it is
passed through every path a secret takes (a job's env secret, the MLflow token, the kubeconfig
token, Prefect/Dagster secret config, an Airflow connection password), and whatever a run leaves
behind is searched for it, also base64-encoded (how a Kubernetes Secret stores it).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CANARY = f"canary-{secrets.token_hex(16)}"
ENCODED = base64.b64encode(CANARY.encode()).decode()


def assert_clean(found: Mapping[str, Any]) -> None:
    """Fail naming every place (``where -> text``) that holds the canary."""
    leaks = [
        where
        for where, text in found.items()
        if CANARY in (text if isinstance(text, str) else json.dumps(text, default=str))
        or ENCODED in (text if isinstance(text, str) else json.dumps(text, default=str))
    ]
    assert not leaks, f"the secret leaked into: {', '.join(leaks)}"


def files_text(root: Path) -> str:
    """Every file below ``root`` as text (state dirs, task logs)."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def mlflow_run_text(tracking_uri: str, run_id: str) -> str:
    """The run as anyone with MLflow access sees it: params, tags, metrics, artifact paths."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    listing = [a.path for a in client.list_artifacts(run_id)]
    return json.dumps([run.data.params, run.data.tags, run.data.metrics, listing])
