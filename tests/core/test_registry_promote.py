"""promote and the gate against the session's real MLflow server: who holds @champion, and why.

Every decision is checked on the server itself (the alias holder, the decision tag on the
candidate). The gate's arithmetic is also tested without MLflow, through ``decide``. A rival
promoter moving the alias at the worst moment (M4) is played by the proxy of ``registry_support``.
"""

from __future__ import annotations

import json
import logging
import math

import pytest
from registry_support import holder, register_champion

from mlrelay import lineage
from mlrelay.errors import ConfigError, ModelRejected
from mlrelay.registry import PromotionConflict, PromotionGate, decide, promote, register_model
from mlrelay.settings import MLflowSettings

pytestmark = pytest.mark.slow


def test_first_promotion_sets_the_alias_and_says_why(
    runs, model_name, mlflow_settings, client, caplog
) -> None:
    mv = register_model(runs["base"], model_name, settings=mlflow_settings)

    with caplog.at_level(logging.INFO, logger="mlrelay.registry"):
        decision = promote(mv, PromotionGate(metric="roc_auc"), settings=mlflow_settings)

    assert decision.promoted
    assert (decision.candidate_value, decision.champion_version) == (0.80, None)
    assert "first model" in decision.reason
    assert holder(client, model_name) == "1"
    assert any("first model" in r.getMessage() for r in caplog.records)


def test_better_candidate_takes_the_alias(
    runs, model_name, mlflow_settings, client, caplog
) -> None:
    register_champion(runs, model_name, mlflow_settings)
    candidate = register_model(runs["better"], model_name, settings=mlflow_settings)

    with caplog.at_level(logging.INFO, logger="mlrelay.registry"):
        decision = promote(candidate, PromotionGate(metric="roc_auc"), settings=mlflow_settings)

    assert decision.promoted
    assert (decision.candidate_value, decision.champion_value) == (0.85, 0.80)
    assert (decision.candidate_version, decision.champion_version) == ("2", "1")
    assert holder(client, model_name) == "2"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "0.85" in logged
    assert "0.8" in logged


def test_worse_candidate_is_rejected_and_the_alias_stays(
    runs, model_name, mlflow_settings, client
) -> None:
    register_champion(runs, model_name, mlflow_settings)
    candidate = register_model(runs["worse"], model_name, settings=mlflow_settings)

    with pytest.raises(ModelRejected) as err:
        promote(candidate, PromotionGate(metric="roc_auc"), settings=mlflow_settings)

    decision = err.value.decision
    assert not decision.promoted
    assert (decision.candidate_value, decision.champion_value) == (0.75, 0.80)
    assert "0.75" in str(err.value)
    assert "0.8" in str(err.value)
    assert holder(client, model_name) == "1"

    returned = promote(
        candidate, PromotionGate(metric="roc_auc", on_reject="return"), settings=mlflow_settings
    )
    assert not returned.promoted
    assert holder(client, model_name) == "1"


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
    register_champion(runs, model_name, mlflow_settings)
    mv = register_model(runs[candidate], model_name, settings=mlflow_settings)

    decision = promote(mv, PromotionGate(**gate, on_reject="return"), settings=mlflow_settings)

    assert decision.promoted is promoted, decision.reason
    assert holder(client, model_name) == ("2" if promoted else "1")


def test_floor_protects_the_first_model_too(runs, model_name, mlflow_settings, client) -> None:
    mv = register_model(runs["base"], model_name, settings=mlflow_settings)

    with pytest.raises(ModelRejected, match="floor"):
        promote(mv, PromotionGate(metric="roc_auc", min_value=0.9), settings=mlflow_settings)

    assert "champion" not in client.get_registered_model(model_name).aliases


def test_decisions_are_recorded_on_the_candidate_promoted_or_not(
    runs, model_name, mlflow_settings, client
) -> None:
    champion = register_champion(runs, model_name, mlflow_settings)
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
    champion = register_champion(runs, model_name, mlflow_settings)
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


def test_m4_alias_moved_between_set_and_read_back_raises_conflict(
    runs, model_name, mlflow_settings, proxy, client
) -> None:
    register_champion(runs, model_name, mlflow_settings)  # v1 holds @champion
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
    assert holder(client, model_name) == rival.version
    tags = client.get_model_version(model_name, ours.version).tags
    assert json.loads(tags[lineage.promotion_tag("champion")])["promoted"] is False
