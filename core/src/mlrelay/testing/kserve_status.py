"""The status of an InferenceService in Serverless mode, computed as KServe and Knative compute it.

Pure functions, no processes: the controller hands in the revisions and their states, and gets
back the ``status`` document and what the router should do. The rules follow KServe 0.15+
(``inference_service_status.go``: ``PropagateStatus``, ``PropagateModelStatus``; the Knative
Service reconciler's traffic targets) and Knative Serving's Route and Configuration:

- Traffic: with ``canaryTrafficPercent: P`` *and* a rolled-out revision, the latest ready
  revision gets P % and the rolled-out one ``100 - P`` % under the tag ``prev``; otherwise the
  latest ready revision gets 100 %. A ``latestRevision`` target always resolves to the latest
  READY revision, so while a canary loads (or after it failed) both targets name the old one.
  With the annotation ``serving.kserve.io/enable-tag-routing: "true"`` the latest target is
  tagged ``latest``; tagged targets carry a ``url``.
- Rollout bookkeeping: a latest ready revision that gets 100 % becomes
  ``latestRolledoutRevision`` (the one before it ``previousRolledoutRevision``); splitting the
  traffic of an already rolled-out latest revision (``canaryTrafficPercent`` set without a new
  template) hands ``latestRolledoutRevision`` back to the previous one: the rollback path.
- Conditions: ``PredictorReady`` is the Knative Service's Ready (Unknown while the latest
  revision loads, False with ``RevisionFailed`` when it failed); ``IngressReady`` follows it
  with the reason "Predictor ingress not created"; ``Ready`` needs both and, marked last by the
  ingress, carries that reason (the failure itself is in ``PredictorReady`` and
  ``modelStatus``). Conditions outside that set have ``severity: Info``; ``Stopped`` is False.
  ``status.url`` is set once the ingress is ready and kept afterwards.
- ``modelStatus``: ``targetModelState`` follows the latest created revision (Loading, Loaded,
  FailedToLoad); ``activeModelState`` only ever becomes Loaded (it stays Loaded when a canary
  fails, because the old model still serves); ``lastFailureInfo`` is kept after a later success,
  as KServe keeps it.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlrelay.testing.kserve_revision import FAILED, LOADING, READY, RevisionView

TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
_TRUE, _FALSE, _UNKNOWN = "True", "False", "Unknown"
Condition = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """The new status, and the traffic the router should apply (percent per revision, tags)."""

    status: dict[str, Any]
    weights: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def traffic_targets(
    predictor: Mapping[str, Any], annotations: Mapping[str, str], rolled_out: str | None
) -> list[dict[str, Any]]:
    """The Route's traffic as KServe writes it into the Knative Service."""
    canary = predictor.get("canaryTrafficPercent")
    latest: dict[str, Any] = {"latestRevision": True, "percent": 100}
    if annotations.get(TAG_ROUTING) == "true":
        latest["tag"] = "latest"
    if canary is None or not rolled_out:
        return [latest]
    latest["percent"] = int(canary)
    targets = [latest]
    if canary < 100:
        prev = {"tag": "prev", "revisionName": rolled_out, "latestRevision": False}
        targets.append(prev | {"percent": 100 - int(canary)})
    return targets


def resolve(
    targets: Sequence[Mapping[str, Any]],
    latest_ready: str | None,
    known: set[str],
    tag_urls: Mapping[str, str],
) -> list[dict[str, Any]] | None:
    """Knative's status.traffic: concrete revisions (None when a target cannot be served)."""
    if latest_ready is None:
        return None
    resolved = []
    for target in targets:
        name = latest_ready if target["latestRevision"] else target["revisionName"]
        if name not in known:
            return None
        entry: dict[str, Any] = {"revisionName": name}
        if target.get("tag"):
            entry = {"tag": target["tag"], **entry}
        entry |= {"latestRevision": target["latestRevision"], "percent": target["percent"]}
        if target.get("tag"):
            entry["url"] = tag_urls[target["tag"]]
        resolved.append(entry)
    return resolved


def compute(
    isvc: Mapping[str, Any],
    revisions: Sequence[RevisionView],
    *,
    url: str,
    tag_urls: Mapping[str, str],
    now: str,
    observed_generation: int | None = None,
) -> Outcome:
    """The status for ``isvc`` given its revisions (oldest first) and the router's URLs.

    ``observed_generation`` is what KServe copies into ``status.observedGeneration``: the
    Knative Service's generation (kserve#6081), which is not the InferenceService's own.
    """
    meta, spec = isvc["metadata"], isvc.get("spec") or {}
    previous: dict[str, Any] = copy.deepcopy(isvc.get("status") or {})
    predictor = spec.get("predictor") or {}
    component = dict((previous.get("components") or {}).get("predictor") or {})
    ready = [r.name for r in revisions if r.state == READY]
    latest_ready = ready[-1] if ready else None
    latest = revisions[-1] if revisions else None
    targets = traffic_targets(
        predictor, meta.get("annotations") or {}, component.get("latestRolledoutRevision")
    )
    traffic = resolve(targets, latest_ready, {r.name for r in revisions}, tag_urls)
    ksvc = f"{meta['name']}-predictor"

    config = _cond("PredictorConfigurationReady", _UNKNOWN)
    if latest is not None and latest.state == READY:
        config = _cond("PredictorConfigurationReady", _TRUE)
    elif latest is not None and latest.state == FAILED:
        why = (latest.failure or {}).get("message", "")
        message = f'Revision "{latest.name}" failed with message: {why}.'
        config = _cond("PredictorConfigurationReady", _FALSE, "RevisionFailed", message)
    if traffic is not None:
        route = _cond("PredictorRouteReady", _TRUE)
    elif latest is not None and latest.state == FAILED and latest_ready is None:
        message = f'Configuration "{ksvc}" does not have any ready Revision.'
        route = _cond("PredictorRouteReady", _FALSE, "RevisionMissing", message)
    else:
        message = f'Configuration "{ksvc}" is waiting for a Revision to become ready.'
        route = _cond("PredictorRouteReady", _UNKNOWN, "RevisionMissing", message)
    predictor_ready = _living("PredictorReady", config, route)

    if traffic is not None:
        _roll_out(component, traffic, latest_ready, latest.name if latest else None)
    if latest is not None:
        component["latestCreatedRevision"] = latest.name
    if latest_ready is not None:
        component["latestReadyRevision"] = latest_ready
    if predictor_ready["status"] == _TRUE:
        component["url"], component["address"] = url, {"url": url}
    if traffic is not None:
        component["traffic"] = traffic
    else:
        component.pop("traffic", None)
    status: dict[str, Any] = {}
    if predictor_ready["status"] == _TRUE:
        ingress = _cond("IngressReady", _TRUE)
        status["url"], status["address"] = url, {"url": url}
    else:
        reason = "Predictor ingress not created"
        ingress = _cond("IngressReady", predictor_ready["status"], reason)
        status = {k: previous[k] for k in ("url", "address") if k in previous}
    overall = _living("Ready", predictor_ready, ingress)
    conditions = [
        ingress,
        _info(_aggregate("LatestDeploymentReady", config)),
        _info(config),
        predictor_ready,
        _info(route),
        overall,
        _info(_aggregate("RoutesReady", route)),
        _info(_cond("Stopped", _FALSE)),
    ]
    running = latest is not None and latest.state == READY and latest.running
    status |= {
        "conditions": _stamped(conditions, previous.get("conditions") or [], now),
        "components": {"predictor": component},
        "modelStatus": _model_status(
            previous.get("modelStatus") or {},
            latest,
            loaded=overall["status"] == _TRUE
            and latest is not None
            and latest.name == latest_ready,
            copies=int(running),
        ),
        "observedGeneration": observed_generation or meta.get("generation"),
        "deploymentMode": "Serverless",
    }
    weights: Counter[str] = Counter()
    for entry in traffic or []:
        weights[entry["revisionName"]] += entry["percent"]
    tags = {e["tag"]: e["revisionName"] for e in traffic or [] if e.get("tag")}
    return Outcome(status, dict(weights), tags)


def invalid(isvc: Mapping[str, Any], message: str, now: str) -> dict[str, Any]:
    """The status of a spec no runtime can serve (KServe: InvalidSpec, PredictorReady False)."""
    previous: dict[str, Any] = copy.deepcopy(isvc.get("status") or {})
    predictor = _cond("PredictorReady", _FALSE, "InvalidPredictorSpec", message)
    ingress = _cond("IngressReady", _FALSE, "Predictor ingress not created")
    model = dict(previous.get("modelStatus") or {})
    states = dict(model.get("states") or {"activeModelState": ""})
    model |= {
        "transitionStatus": "InvalidSpec",
        "states": states | {"targetModelState": "FailedToLoad"},
        "lastFailureInfo": {"reason": "InvalidPredictorSpec", "message": message},
    }
    conditions = [ingress, predictor, _living("Ready", predictor, ingress)]
    return {k: previous[k] for k in ("url", "address", "components") if k in previous} | {
        "conditions": _stamped(conditions, previous.get("conditions") or [], now),
        "modelStatus": model,
        "observedGeneration": isvc["metadata"].get("generation"),
        "deploymentMode": "Serverless",
    }


def is_ready(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == _TRUE
        for c in status.get("conditions") or []
    )


# -- helpers -----------------------------------------------------------------------------------
def _roll_out(
    component: dict[str, Any],
    traffic: list[dict[str, Any]],
    latest_ready: str | None,
    latest_created: str | None,
) -> None:
    """KServe's rolled-out revision bookkeeping (see the module docstring)."""
    per_revision: Counter[str] = Counter()
    for entry in traffic:
        per_revision[entry["revisionName"]] += entry["percent"]
    for entry in traffic:
        if entry["revisionName"] != latest_ready or not entry["latestRevision"]:
            continue
        if component.get("latestRolledoutRevision") != latest_ready:
            if entry["percent"] == 100:
                if component.get("latestRolledoutRevision"):
                    component["previousRolledoutRevision"] = component["latestRolledoutRevision"]
                component["latestRolledoutRevision"] = latest_ready
        elif (
            latest_ready == latest_created
            and entry["percent"] < 100
            and per_revision[entry["revisionName"]] == 100
            and component.get("previousRolledoutRevision")
        ):
            component["latestRolledoutRevision"] = component["previousRolledoutRevision"]


def _model_status(
    previous: Mapping[str, Any], latest: RevisionView | None, *, loaded: bool, copies: int
) -> dict[str, Any]:
    model: dict[str, Any] = {"transitionStatus": "", **copy.deepcopy(dict(previous))}
    if latest is None:
        target = "Pending"
    elif latest.state == FAILED:
        target = "FailedToLoad"
        model["lastFailureInfo"] = dict(latest.failure or {"reason": "ModelLoadFailed"})
    elif loaded:
        target = "Loaded"
    else:
        target = "Loading" if latest.state == LOADING else "Pending"
    states = model.setdefault("states", {"activeModelState": ""})
    states["targetModelState"] = target
    if target == "Loaded":
        states["activeModelState"] = "Loaded"
    model["transitionStatus"] = {
        "Loaded": "UpToDate",
        "FailedToLoad": "BlockedByFailedLoad",
    }.get(target, "InProgress")
    model["copies"] = {"failedCopies": 0, "totalCopies": copies}
    return model


def _cond(type_: str, status: str, reason: str = "", message: str = "") -> Condition:
    cond: Condition = {"type": type_, "status": status}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _living(type_: str, *dependents: Condition) -> Condition:
    """Knative's living condition set, dependents given in the order they are marked: False if
    one is False, else Unknown if one is, else True; the reason is the last such one's (so an
    InferenceService's Ready says "Predictor ingress not created", as on a cluster)."""
    for wanted in (_FALSE, _UNKNOWN):
        for dep in reversed(dependents):
            if dep["status"] == wanted:
                return _cond(type_, wanted, dep.get("reason", ""), dep.get("message", ""))
    return _cond(type_, _TRUE)


def _info(cond: Condition) -> Condition:
    """Conditions outside the living set carry severity Info (also when True)."""
    return cond | {"severity": "Info"}


def _aggregate(type_: str, component: Condition) -> Condition:
    """RoutesReady / LatestDeploymentReady over the components (only the predictor here)."""
    if component["status"] == _TRUE:
        return _cond(type_, _TRUE)
    return _cond(type_, component["status"], f"{component['type']} not ready")


def _stamped(conditions: list[Condition], previous: list[Condition], now: str) -> list[Condition]:
    """Conditions sorted by type, keeping lastTransitionTime while the status is unchanged."""
    before = {c.get("type"): c for c in previous}
    out = []
    for cond in sorted(conditions, key=lambda c: str(c["type"])):
        old = before.get(cond["type"])
        same = old is not None and old.get("status") == cond["status"]
        stamp = old.get("lastTransitionTime", now) if same and old is not None else now
        out.append({**cond, "lastTransitionTime": stamp})
    return out
