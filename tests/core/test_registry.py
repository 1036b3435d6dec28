"""register_model / promote / lineage_of against the session's real MLflow server.

Runs with real logged sklearn models are made once per module; each test registers them under
its own model name, so tests share the server without seeing each other's versions. Faults
the server cannot produce on its own are injected around it, never by replacing it: an HTTP
proxy that loses a response or moves an alias at the worst moment (M1, M4), and the server's
own SQLite store, where a registry backend with asynchronous copies would record a pending or
failed registration (M2, M3).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlrelay import lineage
from mlrelay.errors import (
    ConfigError,
    ModelRejected,
    OperationTimeout,
    RegistrationFailed,
    ServiceUnavailable,
)
from mlrelay.registry import (
    ModelVersionRef,
    PromotionConflict,
    PromotionGate,
    decide,
    get_version,
    lineage_of,
    promote,
    register_model,
)
from mlrelay.settings import MLflowSettings
from mlrelay.training.spec import TrainingResult

pytestmark = pytest.mark.slow

RUN_LINEAGE = {
    lineage.JOB_NAME: "fraud-train-1",
    lineage.BACKEND: "local",
    lineage.DATASET_URI: "file:///data/transactions.parquet",
    lineage.DATASET_HASH: "sha256:abc123",
    lineage.VALIDATION_SUCCESS: "true",
    lineage.VALIDATION_SUITE: "transactions",
    lineage.VALIDATION_STATS: json.dumps({"evaluated_expectations": 8, "success_percent": 100.0}),
}
# run label -> (roc_auc, log_loss): "better" beats "base" on both, "worse" loses on both.
SCORES = {"base": (0.80, 0.40), "better": (0.85, 0.35), "worse": (0.75, 0.45)}


def _log_run(experiment_id: str, roc_auc: float, log_loss: float) -> TrainingResult:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.4, 0.6], [0.7, 0.2]])
    y = np.array([0, 1, 0, 1, 0, 1])
    with mlflow.start_run(experiment_id=experiment_id, tags=RUN_LINEAGE) as run:
        model = LogisticRegression().fit(x, y)
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=x[:2], pip_requirements=["scikit-learn"]
        )
        mlflow.log_metrics({"roc_auc": roc_auc, "log_loss": log_loss})
    return TrainingResult(
        job_name="fraud-train-1",
        backend="local",
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        metrics={"roc_auc": roc_auc, "log_loss": log_loss},
        model_uri=info.model_uri,
        duration_seconds=1.0,
    )


@contextmanager
def _fluent_tracking(uri: str) -> Iterator[None]:
    """Point MLflow's global (fluent) tracking URI at ``uri`` for logging, then unset it."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI, which it had exported


@pytest.fixture(scope="module")
def runs(mlflow_server: str) -> dict[str, TrainingResult]:
    """Three finished training runs with logged models, made once for the module."""
    import mlflow

    with _fluent_tracking(mlflow_server):
        experiment_id = mlflow.MlflowClient().create_experiment(f"registry-{uuid.uuid4().hex[:8]}")
        return {label: _log_run(experiment_id, *s) for label, s in SCORES.items()}


@pytest.fixture
def model_name() -> str:
    return f"fraud-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(mlflow_settings: MLflowSettings):
    import mlflow

    return mlflow.MlflowClient(mlflow_settings.tracking_uri)


def _versions(client, name: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def _holder(client, name: str, alias: str = "champion") -> str | None:
    return client.get_registered_model(name).aliases.get(alias)


# --- register_model ------------------------------------------------------------------------


def test_register_returns_ready_version_with_lineage_tags_from_the_run(
    runs, model_name, mlflow_settings, client
) -> None:
    result = runs["base"]

    mv = register_model(result, model_name, settings=mlflow_settings, tags={"team": "risk"})

    assert (mv.name, mv.version, mv.status) == (model_name, "1", "READY")
    assert (mv.run_id, mv.source, mv.aliases) == (result.run_id, result.model_uri, [])
    assert mv.uri == f"models:/{model_name}/1"
    stored = client.get_model_version(model_name, "1").tags
    for key, value in RUN_LINEAGE.items():
        assert stored[key] == value
    assert stored[lineage.RUN_ID] == result.run_id
    assert stored[lineage.REGISTERED_FROM] == f"{result.run_id}:{result.model_uri}"
    assert stored["team"] == "risk"
    assert mv.tags == stored


def test_register_twice_returns_same_version_and_creates_none(
    runs, model_name, mlflow_settings, client
) -> None:
    first = register_model(runs["base"], model_name, settings=mlflow_settings)
    again = register_model(
        runs["base"].model_dump(mode="json"), model_name, settings=mlflow_settings
    )
    by_uri = register_model(
        runs["base"].model_uri, model_name, run_id=runs["base"].run_id, settings=mlflow_settings
    )

    assert first.version == again.version == by_uri.version == "1"
    assert _versions(client, model_name) == ["1"]


def test_register_uri_without_run_id_takes_the_run_from_the_logged_model(
    runs, model_name, mlflow_settings
) -> None:
    mv = register_model(runs["better"].model_uri, model_name, settings=mlflow_settings)

    assert mv.run_id == runs["better"].run_id
    assert mv.tags[lineage.JOB_NAME] == "fraud-train-1"


def test_two_runs_register_as_two_versions(runs, model_name, mlflow_settings, client) -> None:
    one = register_model(runs["base"], model_name, settings=mlflow_settings)
    two = register_model(runs["better"], model_name, settings=mlflow_settings)

    assert (one.version, two.version) == ("1", "2")
    assert _versions(client, model_name) == ["1", "2"]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("", "name"),
        ("fraud/detector", "name"),
        ("a:b", "name"),
        (" fraud", "name"),
        ("x'y", "name"),
    ],
)
def test_bad_model_name_is_config_error_before_anything_is_created(
    runs, mlflow_settings, client, name: str, field: str
) -> None:
    before = len(client.search_registered_models(max_results=1000))

    with pytest.raises(ConfigError) as err:
        register_model(runs["base"], name, settings=mlflow_settings)

    assert err.value.field == field
    assert len(client.search_registered_models(max_results=1000)) == before


def test_training_result_without_model_is_config_error(
    runs, model_name, mlflow_settings, client
) -> None:
    no_model = runs["base"].model_copy(update={"model_uri": None})

    with pytest.raises(ConfigError, match=runs["base"].run_id) as err:
        register_model(no_model, model_name, settings=mlflow_settings)

    assert err.value.field == "source.model_uri"
    assert client.search_registered_models(f"name = '{model_name}'") == []


@pytest.mark.parametrize(
    "source",
    [
        "runs:/abc/model",  # MLflow 2 style: MLflow 3 logs models outside the run
        "models:/fraud/3",  # already a registered version
        "models:/m-0123456789abcdef0123456789abcdef",  # well-formed, but no such logged model
    ],
)
def test_source_that_is_not_a_logged_model_is_config_error(
    model_name, mlflow_settings, client, source
) -> None:
    with pytest.raises(ConfigError) as err:
        register_model(source, model_name, settings=mlflow_settings)

    assert err.value.field == "source"
    assert client.search_registered_models(f"name = '{model_name}'") == []


def test_logged_model_of_another_run_is_config_error(runs, model_name, mlflow_settings) -> None:
    with pytest.raises(ConfigError, match="was logged by run") as err:
        register_model(
            runs["base"].model_uri,
            model_name,
            run_id=runs["better"].run_id,
            settings=mlflow_settings,
        )

    assert err.value.field == "run_id"


def test_caller_tags_may_not_overwrite_lineage(runs, model_name, mlflow_settings) -> None:
    with pytest.raises(ConfigError) as err:
        register_model(
            runs["base"], model_name, settings=mlflow_settings, tags={lineage.RUN_ID: "forged"}
        )

    assert err.value.field == "tags"


def test_m5_unreachable_server_names_the_uri_and_never_the_token(
    runs, model_name, monkeypatch
) -> None:
    # _mlflow.client exports the token for MLflow; registering the variable here removes it again.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "placeholder")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = MLflowSettings(tracking_uri=f"http://127.0.0.1:{port}", token="s3cr3t-token")

    with pytest.raises(ServiceUnavailable) as err:
        register_model(runs["base"], model_name, settings=settings)

    assert settings.display_uri in str(err.value)
    assert "s3cr3t-token" not in str(err.value)
    assert "s3cr3t-token" not in repr(err.value.__cause__)


def test_register_and_promote_on_a_local_sqlite_store(
    mlrelay_home, tmp_path, monkeypatch, model_name
) -> None:
    """The local backend's store is in-process: MLflow resolves models:/ through its global URI."""
    from mlrelay import _mlflow

    monkeypatch.chdir(tmp_path)  # where MLflow's default store would appear if it were used
    settings = _mlflow.resolve(None, mlrelay_home)
    assert settings.tracking_uri.startswith("sqlite:")
    experiment_id = _mlflow.ensure_experiment(_mlflow.client(settings), "local", mlrelay_home)
    with _fluent_tracking(settings.tracking_uri):
        result = _log_run(experiment_id, 0.8, 0.4)

    mv = register_model(result, model_name, settings=settings)
    again = register_model(result, model_name, settings=settings)
    decision = promote(mv, PromotionGate(metric="roc_auc"), settings=settings)

    assert (mv.version, again.version, mv.status) == ("1", "1", "READY")
    assert mv.source == result.model_uri
    assert decision.promoted
    assert lineage_of(model_name, "champion", settings=settings)["run"]["id"] == result.run_id
    assert not (tmp_path / "mlflow.db").exists()


# --- promote -------------------------------------------------------------------------------


def _champion(runs, name: str, settings: MLflowSettings, label: str = "base") -> ModelVersionRef:
    mv = register_model(runs[label], name, settings=settings)
    promote(mv, PromotionGate(metric="roc_auc"), settings=settings)
    return mv


def test_first_promotion_sets_the_alias_and_says_why(
    runs, model_name, mlflow_settings, client, caplog
) -> None:
    mv = register_model(runs["base"], model_name, settings=mlflow_settings)

    with caplog.at_level(logging.INFO, logger="mlrelay.registry"):
        decision = promote(mv, PromotionGate(metric="roc_auc"), settings=mlflow_settings)

    assert decision.promoted
    assert (decision.candidate_value, decision.champion_version) == (0.80, None)
    assert "first model" in decision.reason
    assert _holder(client, model_name) == "1"
    assert any("first model" in r.getMessage() for r in caplog.records)


def test_better_candidate_takes_the_alias(
    runs, model_name, mlflow_settings, client, caplog
) -> None:
    _champion(runs, model_name, mlflow_settings)
    candidate = register_model(runs["better"], model_name, settings=mlflow_settings)

    with caplog.at_level(logging.INFO, logger="mlrelay.registry"):
        decision = promote(candidate, PromotionGate(metric="roc_auc"), settings=mlflow_settings)

    assert decision.promoted
    assert (decision.candidate_value, decision.champion_value) == (0.85, 0.80)
    assert (decision.candidate_version, decision.champion_version) == ("2", "1")
    assert _holder(client, model_name) == "2"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "0.85" in logged
    assert "0.8" in logged


def test_worse_candidate_is_rejected_and_the_alias_stays(
    runs, model_name, mlflow_settings, client
) -> None:
    _champion(runs, model_name, mlflow_settings)
    candidate = register_model(runs["worse"], model_name, settings=mlflow_settings)

    with pytest.raises(ModelRejected) as err:
        promote(candidate, PromotionGate(metric="roc_auc"), settings=mlflow_settings)

    decision = err.value.decision
    assert not decision.promoted
    assert (decision.candidate_value, decision.champion_value) == (0.75, 0.80)
    assert "0.75" in str(err.value)
    assert "0.8" in str(err.value)
    assert _holder(client, model_name) == "1"

    returned = promote(
        candidate, PromotionGate(metric="roc_auc", on_reject="return"), settings=mlflow_settings
    )
    assert not returned.promoted
    assert _holder(client, model_name) == "1"


@pytest.mark.parametrize(
    ("candidate", "gate", "promoted"),
    [
        # 0.85 - 0.80 is 0.04999... in floating point: it must still clear min_delta=0.05.
        ("better", {"metric": "roc_auc", "min_delta": 0.05}, True),
        ("better", {"metric": "roc_auc", "min_delta": 0.06}, False),
        ("better", {"metric": "roc_auc", "min_value": 0.85}, True),
        ("better", {"metric": "roc_auc", "min_value": 0.9}, False),
        ("better", {"metric": "roc_auc", "max_value": 0.85}, True),
        ("better", {"metric": "roc_auc", "max_value": 0.84}, False),
        ("better", {"metric": "log_loss", "greater_is_better": False}, True),
        ("worse", {"metric": "log_loss", "greater_is_better": False}, False),
        ("better", {"metric": "log_loss", "greater_is_better": False, "min_delta": 0.1}, False),
    ],
)
def test_gate_applies_min_delta_bounds_and_direction(
    runs, model_name, mlflow_settings, client, candidate, gate, promoted
) -> None:
    _champion(runs, model_name, mlflow_settings)
    mv = register_model(runs[candidate], model_name, settings=mlflow_settings)

    decision = promote(mv, PromotionGate(**gate, on_reject="return"), settings=mlflow_settings)

    assert decision.promoted is promoted, decision.reason
    assert _holder(client, model_name) == ("2" if promoted else "1")


def test_floor_protects_the_first_model_too(runs, model_name, mlflow_settings, client) -> None:
    mv = register_model(runs["base"], model_name, settings=mlflow_settings)

    with pytest.raises(ModelRejected, match="floor"):
        promote(mv, PromotionGate(metric="roc_auc", min_value=0.9), settings=mlflow_settings)

    assert "champion" not in client.get_registered_model(model_name).aliases


def test_decisions_are_recorded_on_the_candidate_promoted_or_not(
    runs, model_name, mlflow_settings, client
) -> None:
    champion = _champion(runs, model_name, mlflow_settings)
    loser = register_model(runs["worse"], model_name, settings=mlflow_settings)
    promote(loser, PromotionGate(metric="roc_auc", on_reject="return"), settings=mlflow_settings)

    key = lineage.promotion_tag("champion")
    won = json.loads(client.get_model_version(model_name, champion.version).tags[key])
    lost = json.loads(client.get_model_version(model_name, loser.version).tags[key])
    assert (won["promoted"], won["candidate_value"], won["champion_version"]) == (True, 0.8, None)
    assert (lost["promoted"], lost["candidate_value"], lost["champion_value"]) == (False, 0.75, 0.8)
    assert lost["gate"]["metric"] == "roc_auc"
    assert "decided_at" in lost


def test_promoting_the_holder_again_is_a_noop(runs, model_name, mlflow_settings, client) -> None:
    champion = _champion(runs, model_name, mlflow_settings)
    key = lineage.promotion_tag("champion")
    recorded = client.get_model_version(model_name, "1").tags[key]

    decision = promote(champion, PromotionGate(metric="roc_auc"), settings=mlflow_settings)

    assert decision.promoted
    assert "already holds" in decision.reason
    assert client.get_model_version(model_name, "1").tags[key] == recorded  # first reason kept


def test_missing_metric_is_config_error_naming_metric_and_run(
    runs, model_name, mlflow_settings, client
) -> None:
    mv = register_model(runs["base"], model_name, settings=mlflow_settings)

    with pytest.raises(ConfigError, match="'f1'") as err:
        promote(mv, PromotionGate(metric="f1"), settings=mlflow_settings)

    assert runs["base"].run_id in str(err.value)
    assert err.value.field == "gate.metric"
    assert "champion" not in client.get_registered_model(model_name).aliases


def test_bad_alias_is_config_error(runs, model_name, mlflow_settings) -> None:
    mv = register_model(runs["base"], model_name, settings=mlflow_settings)

    for alias in ("latest", "v2", "with space"):
        with pytest.raises(ConfigError) as err:
            promote(mv, PromotionGate(metric="roc_auc"), alias=alias, settings=mlflow_settings)
        assert err.value.field == "alias"


# --- lineage read-back ---------------------------------------------------------------------


def test_lineage_of_reads_the_trail_back_by_alias_or_number(
    runs, model_name, mlflow_settings
) -> None:
    _champion(runs, model_name, mlflow_settings)

    trail = lineage_of(model_name, "@champion", settings=mlflow_settings)

    assert trail["model"]["version"] == "1"
    assert trail["model"]["aliases"] == ["champion"]
    assert trail["run"]["id"] == runs["base"].run_id
    assert trail["run"]["status"] == "FINISHED"
    assert trail["run"]["metrics"]["roc_auc"] == 0.80
    assert trail["job"] == {"name": "fraud-train-1", "backend": "local"}
    assert trail["dataset"] == {"uri": "file:///data/transactions.parquet", "hash": "sha256:abc123"}
    assert trail["validation"]["success"] is True
    assert trail["validation"]["statistics"]["evaluated_expectations"] == 8
    assert trail["promotions"]["champion"]["promoted"] is True
    assert lineage_of(model_name, 1, settings=mlflow_settings) == trail
    json.dumps(trail)  # JSON-ready as documented
    assert get_version(model_name, "champion", settings=mlflow_settings).version == "1"


def test_lineage_of_unknown_alias_is_config_error(runs, model_name, mlflow_settings) -> None:
    register_model(runs["base"], model_name, settings=mlflow_settings)

    with pytest.raises(ConfigError, match="@staging"):
        lineage_of(model_name, "staging", settings=mlflow_settings)


# --- the gate without MLflow ---------------------------------------------------------------


def test_decide_rejects_a_non_finite_candidate_and_keeps_the_record_json() -> None:
    decision = decide(
        PromotionGate(metric="roc_auc"),
        model_name="m",
        alias="champion",
        candidate_version="2",
        candidate_value=math.nan,
        champion_version="1",
        champion_value=0.8,
    )

    assert not decision.promoted
    assert decision.candidate_value is None
    json.dumps(decision.model_dump(mode="json"), allow_nan=False)


def test_decide_tie_promotes_only_without_min_delta() -> None:
    def tie(min_delta: float) -> bool:
        gate = PromotionGate(metric="rmse", greater_is_better=False, min_delta=min_delta)
        return decide(
            gate,
            model_name="m",
            alias="champion",
            candidate_version="2",
            candidate_value=1.5,
            champion_version="1",
            champion_value=1.5,
        ).promoted

    assert tie(0.0) is True
    assert tie(0.01) is False


# --- faults --------------------------------------------------------------------------------


class _Proxy:
    """A real HTTP proxy in front of the MLflow server; ``hook`` may replace a response."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.hook: Callable[[str, str, bytes, Callable[[], tuple[int, bytes]]], tuple[int, bytes]]
        self.hook = lambda method, path, body, forward: forward()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))

                def forward() -> tuple[int, bytes]:
                    return proxy.send(self.command, self.path, body, dict(self.headers))

                status, payload = proxy.hook(self.command, self.path, body, forward)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def send(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def proxy(mlflow_server: str) -> Iterator[_Proxy]:
    p = _Proxy(mlflow_server)
    yield p
    p.close()


def test_m1_create_replayed_after_lost_response_leaves_one_version(
    runs, model_name, proxy, client
) -> None:
    creates: list[int] = []

    def lose_first_create_response(method, path, body, forward):
        status, payload = forward()
        if path.endswith("/model-versions/create"):
            creates.append(status)
            if len(creates) == 1:
                return 503, b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "lost"}'
        return status, payload

    proxy.hook = lose_first_create_response
    settings = MLflowSettings(tracking_uri=proxy.uri)

    mv = register_model(runs["base"], model_name, settings=settings)

    assert len(creates) == 2  # the client replayed the create: the server made two versions
    assert mv.version == "1"
    assert _versions(client, model_name) == ["1"]
    assert register_model(runs["base"], model_name, settings=settings).version == "1"


@pytest.fixture(scope="module")
def server_db(mlflow_server_db: Path) -> Path:
    return mlflow_server_db


def _set_status(db: Path, name: str, version: str, status: str, message: str | None = None) -> None:
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(
            "UPDATE model_versions SET status = ?, status_message = ? WHERE name = ? AND version = ?",
            (status, message, name, int(version)),
        )


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_m2_failed_registration_raises_with_status_message(
    runs, model_name, mlflow_settings, client, server_db
) -> None:
    mv = _champion(runs, model_name, mlflow_settings)
    candidate = register_model(runs["better"], model_name, settings=mlflow_settings)
    _set_status(server_db, model_name, candidate.version, "PENDING_REGISTRATION")
    clock = _FakeClock()

    def copy_fails_while_waiting(seconds: float) -> None:
        clock.sleep(seconds)
        _set_status(
            server_db,
            model_name,
            candidate.version,
            "FAILED_REGISTRATION",
            "copy to s3 failed: 403",
        )

    with pytest.raises(RegistrationFailed) as err:
        register_model(
            runs["better"],
            model_name,
            settings=mlflow_settings,
            clock=clock,
            sleep=copy_fails_while_waiting,
        )

    assert err.value.status_message == "copy to s3 failed: 403"
    assert "copy to s3 failed: 403" in str(err.value)
    assert (err.value.model_name, err.value.version) == (model_name, candidate.version)
    assert len(clock.sleeps) == 1
    assert _holder(client, model_name) == mv.version  # aliases untouched

    # A later retry does not reuse the failed version: it registers the source afresh.
    retried = register_model(runs["better"], model_name, settings=mlflow_settings)
    assert retried.version == "3"
    assert retried.status == "READY"


def test_m3_pending_past_timeout_raises_and_a_retry_resumes(
    runs, model_name, mlflow_settings, client, server_db
) -> None:
    mv = _champion(runs, model_name, mlflow_settings)
    candidate = register_model(runs["better"], model_name, settings=mlflow_settings)
    _set_status(server_db, model_name, candidate.version, "PENDING_REGISTRATION")
    clock = _FakeClock()

    with pytest.raises(OperationTimeout) as err:
        register_model(
            runs["better"],
            model_name,
            settings=mlflow_settings,
            timeout=10,
            clock=clock,
            sleep=clock.sleep,
        )

    assert err.value.timeout == 10
    assert "PENDING_REGISTRATION" in str(err.value)
    assert clock.now == pytest.approx(10)
    assert clock.sleeps[:3] == [0.2, 0.4, 0.8]  # backs off between polls
    assert _holder(client, model_name) == mv.version

    _set_status(server_db, model_name, candidate.version, "READY")
    resumed = register_model(runs["better"], model_name, settings=mlflow_settings)
    assert resumed.version == candidate.version
    assert _versions(client, model_name) == ["1", "2"]


def test_m4_alias_moved_between_set_and_read_back_raises_conflict(
    runs, model_name, mlflow_settings, proxy, client
) -> None:
    _champion(runs, model_name, mlflow_settings)  # v1 holds @champion
    rival = register_model(runs["worse"], model_name, settings=mlflow_settings)  # v2
    ours = register_model(runs["better"], model_name, settings=mlflow_settings)  # v3

    def rival_promoter_moves_it_right_after(method, path, body, forward):
        status, payload = forward()
        if method == "POST" and path.endswith("/registered-models/alias"):
            client.set_registered_model_alias(model_name, "champion", rival.version)
        return status, payload

    proxy.hook = rival_promoter_moves_it_right_after

    with pytest.raises(PromotionConflict) as err:
        promote(
            ours, PromotionGate(metric="roc_auc"), settings=MLflowSettings(tracking_uri=proxy.uri)
        )

    assert f"version {ours.version}" in str(err.value)
    assert f"version {rival.version}" in str(err.value)
    assert _holder(client, model_name) == rival.version
    tags = client.get_model_version(model_name, ours.version).tags
    assert json.loads(tags[lineage.promotion_tag("champion")])["promoted"] is False
