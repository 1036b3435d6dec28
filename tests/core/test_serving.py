"""deploy / rollback / undeploy on the local backend: the real KServe model server, real MLflow.

Two versions of a card-fraud sklearn pipeline (raw columns, a one-hot encoded category) are
registered on the session's MLflow server. One endpoint is deployed once for the module (a
server start costs 6-20 s) and the tests that do not change it share it; the rollout tests
leave it serving version 1 again. The last test undeploys it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest
from models_support import FEATURES, pipeline, register

from mlrelay import _mlflow
from mlrelay.errors import ConfigError, DeploymentFailed, OperationTimeout
from mlrelay.registry.spec import ModelVersionRef
from mlrelay.serving import deploy, list_deployments, rollback, undeploy
from mlrelay.serving.local import LocalServingBackend
from mlrelay.serving.spec import Canary, DeploymentSpec
from mlrelay.settings import LocalSettings, MLflowSettings

pytestmark = pytest.mark.slow

NAME = "fraud-endpoint"
MODEL = "mlrelay-serving-test"


def _servers(name: str) -> list[int]:
    """Every running model server process of endpoint ``name`` (from /proc, not our records)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if "mlrelay.serving.server" in argv and name in argv:
            found.append(proc.pid)
    return found


def _infer(url: str, rows: pd.DataFrame, name: str = NAME) -> dict[str, Any]:
    inputs = []
    for col in rows.columns:
        values = rows[col].tolist()
        datatype = {"f": "FP64", "i": "INT64"}.get(rows[col].dtype.kind, "BYTES")
        inputs.append({"name": col, "shape": [len(rows)], "datatype": datatype, "data": values})
    r = httpx.post(f"{url}/v2/models/{name}/infer", json={"inputs": inputs}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def env(
    mlflow_server: str, fraud_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two registered versions and the endpoint serving version 1."""
    started = time.monotonic()
    settings = MLflowSettings(tracking_uri=mlflow_server)
    local = LocalSettings(home=tmp_path_factory.mktemp("serving-home"))
    frame = pd.read_parquet(fraud_data["transactions"])
    X, y = frame[FEATURES], frame["is_fraud"]
    v1_model, v2_model = pipeline(1.0).fit(X, y), pipeline(0.01).fit(X, y)
    client = _mlflow.client(settings)
    workdir = tmp_path_factory.mktemp("serving-models")
    v1 = register(client, v1_model, X.head(3), workdir, MODEL)
    v2 = register(client, v2_model, X.head(3), workdir, MODEL)
    backend = LocalServingBackend(settings, local)
    first = deploy(DeploymentSpec(name=NAME, model=v1), backend=backend)
    print(f"\nfirst deploy: {first.timings} (fixture total {time.monotonic() - started:.1f}s)")
    try:
        yield {
            "settings": settings,
            "local": local,
            "backend": backend,
            "v1": v1,
            "v2": v2,
            "X": X,
            "models": {"1": v1_model, "2": v2_model},
            "first": first,
        }
    finally:
        for name in (NAME, "pinned", "taken-port", "never-ready"):
            backend.undeploy(name)
        assert _servers(NAME) == []


def _current(env: dict[str, Any]) -> Any:
    deployment = env["backend"].get(NAME)
    assert deployment is not None
    return deployment


def test_deploy_returns_endpoint_with_lineage_and_smoke_test(env: dict[str, Any]) -> None:
    first = env["first"]
    assert first.url.startswith("http://127.0.0.1:")
    assert (first.model_name, first.model_version) == (MODEL, env["v1"].version)
    assert first.run_id == env["v1"].run_id
    assert first.traffic == {env["v1"].version: 100}
    assert first.smoke_test is not None
    assert first.smoke_test["ok"]
    assert first.smoke_test["source"] == "input_example"
    assert first.smoke_test["predictions"] == 3
    assert {"download", "start_to_ready", "smoke_test", "total"} <= set(first.timings)


def test_v2_infer_gives_one_prediction_per_row_equal_to_the_model(env: dict[str, Any]) -> None:
    rows = env["X"].sample(25, random_state=3)
    body = _infer(_current(env).url, rows)
    assert body["model_version"] == env["v1"].version
    (output,) = body["outputs"]
    assert output["shape"] == [25]
    assert output["data"] == env["models"]["1"].predict(rows).tolist()


def test_v2_infer_casts_json_numbers_to_the_signature_types(env: dict[str, Any]) -> None:
    rows = env["X"].head(4).astype({"hour": "float64", "is_online": "float64"})
    body = _infer(_current(env).url, rows)  # hour/is_online sent as FP64, signature says long
    assert body["outputs"][0]["data"] == env["models"]["1"].predict(env["X"].head(4)).tolist()


def test_v2_infer_with_missing_column_is_400_naming_it(env: dict[str, Any]) -> None:
    url = _current(env).url
    r = httpx.post(
        f"{url}/v2/models/{NAME}/infer",
        timeout=10,
        json={"inputs": [{"name": "amount", "shape": [1], "datatype": "FP64", "data": [12.5]}]},
    )
    assert r.status_code == 400
    assert "merchant_category" in r.json()["error"]


def test_v2_metadata_describes_the_signature(env: dict[str, Any]) -> None:
    r = httpx.get(f"{_current(env).url}/v2/models/{NAME}", timeout=10)
    assert r.status_code == 200
    inputs = {i["name"]: i["datatype"] for i in r.json()["inputs"]}
    assert inputs == {
        "amount": "FP64",
        "hour": "INT64",
        "merchant_category": "BYTES",
        "is_online": "INT64",
    }
    assert r.json()["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]


def test_v1_predict_accepts_records_and_rows(env: dict[str, Any]) -> None:
    rows = env["X"].head(5)
    expected = env["models"]["1"].predict(rows).tolist()
    url = f"{_current(env).url}/v1/models/{NAME}:predict"
    records = httpx.post(url, json={"instances": rows.to_dict(orient="records")}, timeout=10)
    positional = httpx.post(url, json={"instances": rows.values.tolist()}, timeout=10)
    assert records.json() == {"predictions": expected}
    assert positional.json() == {"predictions": expected}


def test_server_listens_on_loopback_only(env: dict[str, Any]) -> None:
    listening = [
        c
        for c in psutil.Process(_current(env).pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "the server listens nowhere"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_list_from_a_fresh_backend_reads_the_state_dir(env: dict[str, Any]) -> None:
    fresh = LocalServingBackend(env["settings"], env["local"])
    (listed,) = [d for d in list_deployments(fresh) if d.name == NAME]
    assert listed.url == _current(env).url
    assert listed.pid == _current(env).pid
    assert listed.model_version == env["v1"].version


def test_redeploying_the_serving_version_keeps_its_server(env: dict[str, Any]) -> None:
    before = _current(env)
    again = deploy(DeploymentSpec(name=NAME, model=env["v1"]), backend=env["backend"])
    assert again.promoted is False
    assert again.pid == before.pid
    assert again.smoke_test is not None
    assert again.smoke_test["ok"]


def test_unregistered_version_is_config_error_before_any_start(env: dict[str, Any]) -> None:
    missing = ModelVersionRef(name=MODEL, version="999")
    with pytest.raises(ConfigError) as err:
        deploy(DeploymentSpec(name=NAME, model=missing), backend=env["backend"])
    assert err.value.field == "model"
    assert _servers(NAME) == [_current(env).pid]


def test_sample_rows_missing_a_column_is_config_error_before_any_start(
    env: dict[str, Any],
) -> None:
    rows = [{"amount": 10.0, "hour": 3, "merchant_categroy": "travel", "is_online": 1}]
    with pytest.raises(ConfigError) as err:
        deploy(DeploymentSpec(name=NAME, model=env["v2"], sample_rows=rows), backend=env["backend"])
    assert err.value.field == "sample_rows"
    assert "merchant_category" in str(err.value)
    assert "merchant_categroy" in str(err.value)
    assert _servers(NAME) == [_current(env).pid]


def test_d4_smoke_test_failure_keeps_previous_version_serving(env: dict[str, Any]) -> None:
    before = _current(env)
    bad = [{"amount": "a lot", "hour": 3, "merchant_category": "travel", "is_online": 1}]
    with pytest.raises(DeploymentFailed) as err:
        deploy(DeploymentSpec(name=NAME, model=env["v2"], sample_rows=bad), backend=env["backend"])
    failure = err.value
    assert failure.reason == "SmokeTestFailed"
    assert failure.rolled_back is True
    assert failure.failure_info["smoke_test"]["status_code"] == 400
    assert "amount" in failure.failure_info["smoke_test"]["response"]
    assert not psutil.pid_exists(failure.failure_info["pid"])  # the new server is gone...
    assert _servers(NAME) == [before.pid]  # ...and the old one still runs
    assert _current(env).pid == before.pid
    assert _infer(before.url, env["X"].head(2))["model_version"] == env["v1"].version


def test_replace_stops_v1_only_after_v2_passed_and_rollback_returns_to_v1(
    env: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    v1 = _current(env)
    seen_while_starting: list[tuple[bool, str | None]] = []

    def watching_sleep(seconds: float) -> None:
        # Called only while the new server starts: v1 must be running and answering then.
        answer = None
        if not seen_while_starting:
            answer = _infer(v1.url, env["X"].head(1))["model_version"]
        seen_while_starting.append((psutil.pid_exists(v1.pid), answer))
        time.sleep(seconds)

    backend = LocalServingBackend(env["settings"], env["local"], sleep=watching_sleep)
    caplog.set_level(logging.INFO, logger="mlrelay.serving")
    v2 = deploy(DeploymentSpec(name=NAME, model=env["v2"], strategy=Canary(25)), backend=backend)

    assert seen_while_starting
    assert all(alive for alive, _ in seen_while_starting)
    assert seen_while_starting[0][1] == env["v1"].version
    messages = [r.getMessage() for r in caplog.records]
    assert any("canary (25%) is not supported by the local backend" in m for m in messages)
    passed = next(i for i, m in enumerate(messages) if "now serves" in m)
    stopped = next(i for i, m in enumerate(messages) if m.startswith("stopped version 1"))
    assert passed < stopped
    assert v2.traffic == {env["v2"].version: 100}
    assert v2.pid != v1.pid
    assert not psutil.pid_exists(v1.pid)
    assert _servers(NAME) == [v2.pid]
    body = _infer(v2.url, env["X"].head(10))
    assert body["model_version"] == env["v2"].version
    assert body["outputs"][0]["data"] == env["models"]["2"].predict(env["X"].head(10)).tolist()

    back = rollback(NAME, backend=env["backend"])
    assert back.model_version == env["v1"].version
    assert back.pid not in (v1.pid, v2.pid)
    assert not psutil.pid_exists(v2.pid)
    assert _servers(NAME) == [back.pid]
    assert _infer(back.url, env["X"].head(1))["model_version"] == env["v1"].version
    assert back.timings["download"] < 5  # the version was downloaded before: reused


def test_pinned_port_is_recreated_in_place_and_restored_when_the_new_version_fails(
    env: dict[str, Any],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend, X = env["backend"], env["X"]
    v1 = deploy(DeploymentSpec(name="pinned", model=env["v1"], port=port), backend=backend)
    assert v1.url == f"http://127.0.0.1:{port}"

    bad = [{"amount": "a lot", "hour": 3, "merchant_category": "travel", "is_online": 1}]
    failing = DeploymentSpec(name="pinned", model=env["v2"], port=port, sample_rows=bad)
    with pytest.raises(DeploymentFailed) as err:
        deploy(failing, backend=backend)
    assert err.value.rolled_back is True
    restored = backend.get("pinned")
    assert restored.url == v1.url
    assert restored.pid != v1.pid
    assert _servers("pinned") == [restored.pid]
    assert _infer(v1.url, X.head(1), "pinned")["model_version"] == env["v1"].version

    v2 = deploy(DeploymentSpec(name="pinned", model=env["v2"], port=port), backend=backend)
    assert v2.url == v1.url
    assert _servers("pinned") == [v2.pid]
    assert _infer(v2.url, X.head(1), "pinned")["model_version"] == env["v2"].version
    undeploy("pinned", backend=backend)
    assert _servers("pinned") == []


def test_taken_port_is_deployment_failed_with_the_server_log(env: dict[str, Any]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        spec = DeploymentSpec(name="taken-port", model=env["v1"], port=port)
        with pytest.raises(DeploymentFailed) as err:
            deploy(spec, backend=env["backend"])
    assert err.value.reason == "ServerExited"
    assert err.value.rolled_back is False
    assert any("cannot bind" in line for line in err.value.failure_info["log_tail"])
    assert _servers("taken-port") == []
    assert env["backend"].get("taken-port") is None


def test_ready_timeout_stops_the_new_server(env: dict[str, Any]) -> None:
    ticks = iter(range(0, 10**9, 1000))  # every clock reading is 1000 s after the last
    backend = LocalServingBackend(
        env["settings"], env["local"], startup_timeout=60, clock=lambda: float(next(ticks))
    )
    with pytest.raises(DeploymentFailed) as err:
        deploy(DeploymentSpec(name="never-ready", model=env["v1"]), backend=backend)
    assert err.value.reason == "ReadyTimeout"
    assert isinstance(err.value.__cause__, OperationTimeout)
    assert _servers("never-ready") == []


def test_undeploy_stops_the_server_and_forgets_it(env: dict[str, Any]) -> None:
    pid = _current(env).pid
    record = env["backend"].store.get(NAME)
    undeploy(NAME, backend=env["backend"])
    assert _servers(NAME) == []
    assert not psutil.pid_exists(pid)
    fresh = LocalServingBackend(env["settings"], env["local"])
    assert [d.name for d in fresh.list()] == []
    assert not (env["local"].state_dir / f"{NAME}.json").exists()
    undeploy(NAME, backend=fresh)  # nothing left to undeploy: not an error
    assert not Path(record.log_file).exists()
