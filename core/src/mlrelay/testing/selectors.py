"""Label and field selectors, parsed the way ``k8s.io/apimachinery/pkg/labels`` parses them.

Label grammar: comma-separated requirements ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a,b)``, ``k`` (exists), ``!k`` (does not exist). Field selectors only support
``=``, ``==`` and ``!=`` on fields the resource declares; anything else is a 400, as on a real
API server ("field label not supported").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from mlrelay.testing.status import bad_request

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _label_requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    m = _EQ_RE.match(text)
    if m:
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    m = _SET_RE.match(text)
    if m:
        negate, key, op, values = m.groups()
        if op is None:
            if negate:
                return lambda labels: key not in labels
            return lambda labels: key in labels
        if negate:
            raise bad_request(f"unable to parse requirement: {text!r}")
        options = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in options
        return lambda labels: labels.get(key) not in options
    raise bad_request(f"unable to parse requirement: found '{text.strip()}', expected: selector")


def label_matcher(selector: str | None) -> Matcher:
    """A predicate over objects for a ``labelSelector`` string (empty matches everything)."""
    if not selector or not selector.strip():
        return lambda _obj: True
    reqs = [_label_requirement(p) for p in _split(selector)]

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return match


def match_labels(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a structured ``LabelSelector`` (matchLabels + matchExpressions) selects labels.

    Controllers of the next round use this for ``Job.spec.selector``.
    """
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form of a dotted field path ("" when absent), as field selectors compare it."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, dict):
        return str(current.get("component", ""))  # events' ``source`` selects on its component
    return str(current)


def field_matcher(selector: str | None, allowed: frozenset[str], kind: str) -> Matcher:
    """A predicate for a ``fieldSelector``; unsupported fields are rejected up front (400)."""
    if not selector or not selector.strip():
        return lambda _obj: True
    reqs: list[tuple[str, bool, str]] = []
    for part in _split(selector):
        m = _EQ_RE.match(part)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part.strip()}'")
        path, op, value = m.groups()
        if path not in allowed and path not in ("metadata.name", "metadata.namespace"):
            raise bad_request(f"field label not supported: {path}")
        reqs.append((path, op != "!=", value))

    def match(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, p) == v) == eq for p, eq, v in reqs)

    return match
