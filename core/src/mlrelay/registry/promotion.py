"""Move an alias (``@champion``) to a candidate version when the promotion gate says so.

MLflow alias moves are atomic but last-writer-wins, and MLflow has no compare-and-set. So a
promotion reads the holder, gates against it, re-reads the holder just before writing (gating
again if it moved), sets the alias, and reads it back: when another promoter wrote in between,
this one raises ``PromotionConflict`` naming both versions (FAULTS M4) instead of reporting a
promotion that did not stick. Every decision is kept on the candidate as a JSON tag.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlrelay import _mlflow, lineage
from mlrelay.errors import ConfigError, ModelRejected, PromotionConflict
from mlrelay.registry._boundary import boundary, not_found_raises
from mlrelay.registry.gate import check_alias, check_model_name, decide, verdict
from mlrelay.registry.mlflow import READY
from mlrelay.registry.spec import ModelVersionRef, PromotionDecision, PromotionGate
from mlrelay.registry.trail import alias_holder, alias_holder_version, get_model_version
from mlrelay.settings import MLflowSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger("mlrelay.registry")

# How often the holder may change under us while gating before we give up as a conflict.
_GATE_ATTEMPTS = 3


def promote(
    version: ModelVersionRef | Mapping[str, Any],
    gate: PromotionGate | Mapping[str, Any],
    *,
    alias: str = "champion",
    settings: MLflowSettings | None = None,
) -> PromotionDecision:
    """Give ``alias`` to ``version`` if it beats the version holding it, and record why.

    The candidate's ``gate.metric`` is read from its training run, the holder's likewise. The
    decision (both numbers, the gate, the time) is stored as JSON in the version tag
    ``mlrelay.promotion.<alias>``, promoted or not. Promoting the version that already holds
    the alias succeeds without writing anything, so a retried task is harmless and the first
    decision's reason is kept.

    Args:
        version: the candidate (a ``ModelVersionRef`` or its JSON, e.g. from XCom).
        gate: the rule (a ``PromotionGate`` or its JSON).
        alias: the alias at stake.
        settings: how to reach MLflow; the environment by default.

    Raises:
        ConfigError: bad alias, unknown or unfinished version, a run without ``gate.metric``.
        ModelRejected: the gate said no and ``gate.on_reject == "raise"`` (alias unchanged).
        PromotionConflict: another promoter moved the alias while this one set it (M4).
        ServiceUnavailable: the tracking server did not answer.
    """
    ref: ModelVersionRef = (
        version if isinstance(version, ModelVersionRef) else ModelVersionRef.model_validate(version)
    )
    rule: PromotionGate = (
        gate if isinstance(gate, PromotionGate) else PromotionGate.model_validate(gate)
    )
    name = check_model_name(ref.name, field="version.name")
    alias = check_alias(alias)
    settings = _mlflow.resolve(settings)
    started = time.perf_counter()

    with boundary(settings, f"promoting {name} v{ref.version} to @{alias}"):
        client = _mlflow.client(settings)
        mv = get_model_version(client, name, ref.version, settings)
        if mv.status != READY:
            raise ConfigError(f"{name} v{mv.version} is {mv.status}, not READY", field="version")
        run_id = mv.run_id or ref.run_id
        if not run_id:
            raise ConfigError(f"{name} v{mv.version} has no training run", field="version.run_id")
        decision = _gate_and_set(client, mv, run_id, rule, alias)

    elapsed = time.perf_counter() - started
    log.info("%s (candidate run %s, %.2fs)", decision.reason, run_id, elapsed)
    if not decision.promoted and rule.on_reject == "raise":
        raise ModelRejected(decision)
    return decision


def _gate_and_set(
    client: MlflowClient, mv: ModelVersion, run_id: str, gate: PromotionGate, alias: str
) -> PromotionDecision:
    name, ours = mv.name, str(mv.version)
    candidate_value = _metric(client, run_id, gate.metric, f"{name} v{ours}")
    for _ in range(_GATE_ATTEMPTS):
        holder = alias_holder(client, name, alias)
        if holder is not None and str(holder.version) == ours:
            return _already_holds(name, alias, ours, gate.metric, candidate_value)
        champion_value = None
        if holder is not None:
            label = f"{name} v{holder.version} (@{alias})"
            champion_value = _metric(client, holder.run_id, gate.metric, label)
        decision = decide(
            gate,
            model_name=name,
            alias=alias,
            candidate_version=ours,
            candidate_value=candidate_value,
            champion_version=None if holder is None else str(holder.version),
            champion_value=champion_value,
        )
        if not decision.promoted:
            _record(client, decision, gate)
            return decision
        if alias_holder_version(client, name, alias) == decision.champion_version:
            return _set_and_verify(client, decision, gate)
        log.info("%s@%s moved while v%s was gated: gating again", name, alias, ours)
    holder_now = alias_holder_version(client, name, alias)
    raise PromotionConflict(model_name=name, alias=alias, ours=ours, holder=str(holder_now))


def _set_and_verify(
    client: MlflowClient, decision: PromotionDecision, gate: PromotionGate
) -> PromotionDecision:
    name, alias, ours = decision.model_name, decision.alias, decision.candidate_version
    client.set_registered_model_alias(name, alias, ours)
    holder = alias_holder_version(client, name, alias)
    if holder != ours:
        conflict = PromotionConflict(model_name=name, alias=alias, ours=ours, holder=str(holder))
        lost = decision.model_copy(update={"promoted": False, "reason": str(conflict)})
        _record(client, lost, gate)
        raise conflict
    _record(client, decision, gate)
    return decision


def _already_holds(
    name: str, alias: str, version: str, metric: str, value: float
) -> PromotionDecision:
    """A retry's answer: the alias is the candidate's already, so there is nothing to decide."""
    held = (version, value)
    reason = f"{name} v{version} already holds @{alias}: nothing to do"
    return verdict(name, alias, metric, held, held, promoted=True, reason=reason)


def _record(client: MlflowClient, decision: PromotionDecision, gate: PromotionGate) -> None:
    """Keep the decision on the candidate, so the registry itself says why a version serves."""
    record = {
        **decision.model_dump(mode="json"),
        "gate": gate.model_dump(mode="json"),
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    client.set_model_version_tag(
        decision.model_name,
        decision.candidate_version,
        lineage.promotion_tag(decision.alias),
        json.dumps(record, sort_keys=True),
    )


def _metric(client: MlflowClient, run_id: str, metric: str, who: str) -> float:
    """``metric`` of a training run; a run without it is a ``ConfigError`` naming both."""
    missing = ConfigError(f"the run {run_id} of {who} does not exist", field="gate.metric")
    with not_found_raises(missing):
        run = client.get_run(run_id)
    metrics = run.data.metrics
    if metric not in metrics:
        logged = ", ".join(sorted(metrics)) or "no metrics"
        raise ConfigError(
            f"the run {run_id} of {who} has no metric {metric!r} (it logged: {logged})",
            field="gate.metric",
        )
    return float(metrics[metric])
