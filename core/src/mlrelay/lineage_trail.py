"""Resolve what ``mlrelay lineage`` is asked about and render the trail as text.

The target can be a local endpoint name (its record says which version it serves), or a model
reference: ``NAME/VERSION``, ``NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
or a bare ``NAME`` (its ``@champion``). Everything shown is read back from MLflow tags and the
endpoint record; nothing is inferred.
"""

from __future__ import annotations

import json
from typing import Any

from mlrelay.settings import LocalSettings, MLflowSettings

DEFAULT_ALIAS = "champion"


def parse_model_ref(target: str) -> tuple[str, str]:
    """Split a model reference into (name, version-or-alias)."""
    ref = target.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        return name, f"@{alias}"
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        return name, version
    return ref, f"@{DEFAULT_ALIAS}"


def trail(
    target: str,
    *,
    settings: MLflowSettings | None = None,
    local: LocalSettings | None = None,
) -> dict[str, Any]:
    """The lineage of an endpoint or model version: ``lineage_of``'s dict plus ``endpoint``."""
    from mlrelay import _mlflow
    from mlrelay.registry import lineage_of
    from mlrelay.serving.state import StateStore

    local = local or LocalSettings()
    settings = _mlflow.resolve(settings, local)
    endpoint = StateStore(local.state_dir).get(target) if "/" not in target else None
    if endpoint is not None:
        name, version = endpoint.model_name, endpoint.model_version
    else:
        name, version = parse_model_ref(target)
    found = lineage_of(name, version, settings=settings)
    found["endpoint"] = (
        None
        if endpoint is None
        else {"name": endpoint.name, "url": endpoint.url, "pid": endpoint.pid, "backend": "local"}
    )
    return found


def render(found: dict[str, Any]) -> str:
    """The trail as an indented tree, one hop per line."""
    lines: list[str] = []
    depth = 0

    def add(text: str) -> None:
        nonlocal depth
        lines.append(("   " * (depth - 1) + "└─ " if depth else "") + text)
        depth += 1

    endpoint, model, run = found.get("endpoint"), found["model"], found.get("run")
    job, dataset, validation = (
        found.get("job") or {},
        found.get("dataset") or {},
        found.get("validation") or {},
    )
    if endpoint:
        add(
            f"endpoint    {endpoint['name']}  {endpoint['url']}  ({endpoint['backend']}, pid {endpoint['pid']})"
        )
    aliases = " ".join(f"@{a}" for a in model.get("aliases") or [])
    add(f"model       {model['name']} v{model['version']}  {aliases}".rstrip())
    if run:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted((run.get("metrics") or {}).items()))
        add(
            f"run         {run['id']}  {run.get('name') or ''} {run.get('status') or ''}  {metrics}".rstrip()
        )
    add(f"job         {job.get('name') or '?'}  ({job.get('backend') or '?'} backend)")
    add(f"dataset     {dataset.get('uri') or '?'}  {dataset.get('hash') or ''}".rstrip())
    stats = validation.get("statistics")
    if isinstance(stats, str):
        try:
            stats = json.loads(stats)
        except ValueError:
            stats = None
    met = (
        f"{stats.get('successful_expectations')}/{stats.get('evaluated_expectations')} expectations met"
        if isinstance(stats, dict)
        else ""
    )
    success = validation.get("success")
    verdict = "passed" if success else ("FAILED" if success is False else "not recorded")
    add(f"validation  {validation.get('suite') or '?'}: {verdict}  {met}".rstrip())
    for alias, decision in (found.get("promotions") or {}).items():
        lines.append(f"promotion   @{alias}: {decision.get('reason', decision)}")
    return "\n".join(lines)
