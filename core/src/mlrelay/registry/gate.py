"""The promotion gate as a pure function, and the checks made on names before MLflow is called.

Nothing here talks to MLflow, so the rules that decide which model serves production can be read
and tested on their own: ``decide`` takes two numbers and returns a ``PromotionDecision``.
"""

from __future__ import annotations

import math
import re

from mlrelay import lineage
from mlrelay.errors import ConfigError
from mlrelay.registry.spec import PromotionDecision, PromotionGate

# What MLflow refuses in a registered model name ('/' and ':' split model URIs), plus quotes and
# backticks, which would end the quoted value of a search filter this module builds.
_BAD_NAME_CHARS = frozenset("/:'\"`\\")
_MAX_NAME = 256  # the width of MLflow's registered_models.name column
_ALIAS = re.compile(r"^[\w-]{1,255}$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
_MAX_TAG_KEY = 250

# Relative slack for float noise: 0.85 - 0.80 (0.04999...) must clear a min_delta of 0.05.
_TOLERANCE = 1e-9


def check_model_name(name: object, *, field: str = "name") -> str:
    """Refuse a registered model name MLflow would refuse, before anything is created."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("a registered model name must be a non-empty string", field=field)
    if name != name.strip():
        raise ConfigError(f"{name!r} has leading or trailing whitespace", field=field)
    if len(name) > _MAX_NAME:
        raise ConfigError(f"must be at most {_MAX_NAME} characters (got {len(name)})", field=field)
    bad = sorted(_BAD_NAME_CHARS.intersection(name))
    if bad or name in (".", "..") or "\n" in name:
        shown = " ".join(bad) if bad else "a reserved name"
        raise ConfigError(f"{name!r} is not a valid model name ({shown})", field=field)
    return name


def check_alias(alias: object, *, field: str = "alias") -> str:
    """Refuse aliases MLflow reserves (``latest``, ``v3``) or cannot store."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise ConfigError(
            f"{alias!r} is not a valid alias: use 1-255 letters, digits, '_' or '-'", field=field
        )
    if alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
        raise ConfigError(f"{alias!r} is reserved by MLflow", field=field)
    return alias


def check_tags(tags: dict[str, str] | None, *, field: str = "tags") -> dict[str, str]:
    """Caller tags: string keys and values, and none that would overwrite mlrelay's lineage."""
    tags = dict(tags or {})
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_TAG_KEY:
            raise ConfigError(f"tag keys must be 1-{_MAX_TAG_KEY} characters", field=field)
        if key.startswith(lineage.PREFIX):
            raise ConfigError(
                f"{key!r}: the {lineage.PREFIX!r} prefix is reserved for lineage", field=field
            )
        if not isinstance(value, str):
            raise ConfigError(f"the value of {key!r} must be a string", field=f"{field}.{key}")
    return tags


def decide(
    gate: PromotionGate,
    *,
    model_name: str,
    alias: str,
    candidate_version: str,
    candidate_value: float,
    champion_version: str | None = None,
    champion_value: float | None = None,
) -> PromotionDecision:
    """Whether the candidate takes ``alias`` from the champion, and why, in one sentence.

    The candidate must first lie inside ``[gate.min_value, gate.max_value]`` (an absolute floor
    protects the very first model too), then improve on the champion by at least
    ``gate.min_delta`` in the gate's direction. With ``min_delta=0`` a tie promotes: the newer
    model was trained on newer data and scores no worse. Without a champion the candidate is the
    first model and is promoted on the bounds alone.

    Args:
        gate: the rule.
        model_name: the registered model (for the decision record).
        alias: the alias at stake.
        candidate_version: the version asking for the alias.
        candidate_value: its ``gate.metric``.
        champion_version: the version holding the alias, if any.
        champion_value: its ``gate.metric``; ``None`` or NaN leaves only the bounds to pass.
    """
    candidate = (candidate_version, candidate_value)
    champion = (champion_version, champion_value)
    promoted, reason = _judge(gate, alias, candidate, champion)
    return verdict(model_name, alias, gate.metric, candidate, champion, promoted, reason)


def verdict(
    model_name: str,
    alias: str,
    metric: str,
    candidate: tuple[str, float],
    champion: tuple[str | None, float | None],
    promoted: bool,
    reason: str,
) -> PromotionDecision:
    """The decision record, built one way by the gate and by a retry that finds the alias held.

    ``candidate`` and ``champion`` are ``(version, value)``; non-finite values are kept as ``None``.
    """
    (candidate_version, candidate_value), (champion_version, champion_value) = candidate, champion
    return PromotionDecision(
        model_name=model_name,
        alias=alias,
        metric=metric,
        candidate_version=candidate_version,
        candidate_value=finite_or_none(candidate_value),
        champion_version=champion_version,
        champion_value=finite_or_none(champion_value),
        promoted=promoted,
        reason=reason,
    )


def _judge(
    gate: PromotionGate,
    alias: str,
    candidate: tuple[str, float],
    champion: tuple[str | None, float | None],
) -> tuple[bool, str]:
    """The rule ``decide`` documents: whether the candidate is promoted, and the reason."""
    (candidate_version, candidate_value), (champion_version, champion_value) = candidate, champion
    metric = gate.metric
    cand = f"version {candidate_version} {metric}={candidate_value:.6g}"
    if not math.isfinite(candidate_value):
        return False, f"rejected {cand}: not a finite number"
    if gate.min_value is not None and candidate_value < gate.min_value:
        return False, f"rejected {cand}: below the floor min_value={gate.min_value:g}"
    if gate.max_value is not None and candidate_value > gate.max_value:
        return False, f"rejected {cand}: above the ceiling max_value={gate.max_value:g}"

    if champion_version is None:
        return True, f"promoted {cand} to @{alias}: first model, no version held @{alias}"
    if champion_value is None or not math.isfinite(champion_value):
        # A champion without a usable number cannot defend the alias; the bounds still held.
        return (
            True,
            f"promoted {cand} over @{alias} version {champion_version}, "
            f"whose {metric} is {champion_value} (passed the bounds alone)",
        )

    champ = f"@{alias} version {champion_version} {metric}={champion_value:.6g}"
    improvement = candidate_value - champion_value
    if not gate.greater_is_better:
        improvement = -improvement
    direction = "higher" if gate.greater_is_better else "lower"
    margin = f"improvement {improvement:+.4g}, needs >= {gate.min_delta:g}, {direction} is better"
    slack = _TOLERANCE * max(1.0, abs(candidate_value), abs(champion_value))
    if improvement >= gate.min_delta - slack:
        return True, f"promoted {cand} over {champ} ({margin})"
    return False, f"rejected {cand} against {champ} ({margin})"


def finite_or_none(value: float | None) -> float | None:
    """NaN and infinities are not JSON: a decision records them as ``None``."""
    return value if value is not None and math.isfinite(value) else None
