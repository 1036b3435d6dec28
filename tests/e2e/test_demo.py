"""`mlrelay demo` end to end, as `make demo` runs it: a real pipeline on local backends.

Runs the console script in a subprocess with a private MLRELAY_HOME and a local SQLite MLflow
(the demo's default), sends a real V2 request to the endpoint it printed, then runs it again to
see the promotion gate decide and `--no-keep` stop the endpoint.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlrelay import _proc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_demo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(MLRELAY_HOME=str(home), MLFLOW_DISABLE_TELEMETRY="true")
    mlrelay = Path(sys.executable).with_name("mlrelay")
    return subprocess.run(
        [str(mlrelay), "demo", "--rows", "3000", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_demo_runs_the_pipeline_serves_predictions_and_gates_the_rerun(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_demo(home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    for step in ("validate", "build training set", "train", "register", "promote", "deploy"):
        assert f"{step} done in" in out
    assert "PROMOTED to @champion" in out
    endpoint = re.search(r"Endpoint: (http://127\.0\.0\.1:\d+)", out)
    pid = re.search(r"pid (\d+)\)", out)
    assert endpoint, out
    assert pid, out
    try:
        curl = re.search(r"-d '(\{.*\})' (\S+/infer)", out)
        assert curl, out
        reply = httpx.post(
            curl.group(2),
            content=curl.group(1),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        outputs = reply.json()["outputs"]
        assert len(outputs[0]["data"]) == 1
        lineage = out.split("Lineage:", 1)[1]
        for hop in ("endpoint", "model", "run", "job", "dataset", "validation"):
            assert f"└─ {hop}" in lineage or lineage.lstrip().startswith(hop), lineage

        second = run_demo(home, "--no-keep")
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        # Same data, same seed: the retrained model cannot beat the champion by min_delta.
        assert "REJECTED, @champion kept" in second.stdout
        assert "already serves" in second.stdout
        assert "stopped (--no-keep)" in second.stdout
        assert not _proc.alive(int(pid.group(1)))
    finally:
        if _proc.alive(int(pid.group(1))):
            _proc.stop_group(int(pid.group(1)), grace=5)
