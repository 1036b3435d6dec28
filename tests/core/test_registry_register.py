"""register_model against the session's real MLflow server: idempotency, refusals, faults.

Registration must create exactly one version per training run whatever happens on the wire:
a create replayed after a lost response (M1), a copy that fails (M2) or hangs (M3) while the
version is pending, an unreachable server (M5), and the in-process SQLite store of the local
backend. Faults come from ``registry_support``; the logged runs from ``conftest.py``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from registry_support import (
    RUN_LINEAGE,
    FakeClock,
    fluent_tracking,
    holder,
    log_run,
    register_champion,
    set_status,
    versions,
)

from mlrelay import lineage
from mlrelay.errors import ConfigError, OperationTimeout, RegistrationFailed, ServiceUnavailable
from mlrelay.registry import ModelVersionRef, PromotionGate, lineage_of, promote, register_model
from mlrelay.settings import MLflowSettings

pytestmark = pytest.mark.slow


def _pending_candidate(
    runs, name: str, settings: MLflowSettings, db: Path
) -> tuple[ModelVersionRef, ModelVersionRef]:
    """v1 holds @champion; v2, from the "better" run, shows PENDING_REGISTRATION in the store."""
    champion = register_champion(runs, name, settings)
    candidate = register_model(runs["better"], name, settings=settings)
    set_status(db, name, candidate.version, "PENDING_REGISTRATION")
    return champion, candidate


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
    assert versions(client, model_name) == ["1"]


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
    assert versions(client, model_name) == ["1", "2"]


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
    with fluent_tracking(settings.tracking_uri):
        result = log_run(experiment_id, 0.8, 0.4)

    mv = register_model(result, model_name, settings=settings)
    again = register_model(result, model_name, settings=settings)
    decision = promote(mv, PromotionGate(metric="roc_auc"), settings=settings)

    assert (mv.version, again.version, mv.status) == ("1", "1", "READY")
    assert mv.source == result.model_uri
    assert decision.promoted
    assert lineage_of(model_name, "champion", settings=settings)["run"]["id"] == result.run_id
    assert not (tmp_path / "mlflow.db").exists()


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
    assert versions(client, model_name) == ["1"]
    assert register_model(runs["base"], model_name, settings=settings).version == "1"


def test_m2_failed_registration_raises_with_status_message(
    runs, model_name, mlflow_settings, client, mlflow_server_db
) -> None:
    mv, candidate = _pending_candidate(runs, model_name, mlflow_settings, mlflow_server_db)
    clock = FakeClock()

    def copy_fails_while_waiting(seconds: float) -> None:
        clock.sleep(seconds)
        set_status(
            mlflow_server_db,
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
    assert holder(client, model_name) == mv.version  # aliases untouched

    # A later retry does not reuse the failed version: it registers the source afresh.
    retried = register_model(runs["better"], model_name, settings=mlflow_settings)
    assert retried.version == "3"
    assert retried.status == "READY"


def test_m3_pending_past_timeout_raises_and_a_retry_resumes(
    runs, model_name, mlflow_settings, client, mlflow_server_db
) -> None:
    mv, candidate = _pending_candidate(runs, model_name, mlflow_settings, mlflow_server_db)
    clock = FakeClock()

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
    assert holder(client, model_name) == mv.version

    set_status(mlflow_server_db, model_name, candidate.version, "READY")
    resumed = register_model(runs["better"], model_name, settings=mlflow_settings)
    assert resumed.version == candidate.version
    assert versions(client, model_name) == ["1", "2"]
