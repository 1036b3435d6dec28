"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and apply configurations.

Strategic merge patch is applied as a merge patch: the difference is only in how lists of
named items (containers, env) merge, which no client of ours depends on. Server-side apply is
applied as create-or-merge without field ownership (see ``app.py``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from mlrelay.testing.status import ApiError, bad_request

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
SUPPORTED = (MERGE, STRATEGIC, JSON_PATCH, APPLY)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def _add(doc: Any, parts: list[str], value: Any, *, replace: bool) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif replace:
            parent[int(last)] = value
        else:
            index = int(last)
            if index > len(parent):
                raise IndexError(last)
            parent.insert(index, value)
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise KeyError(last)
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        return parent.pop(int(parts[-1]))
    return parent.pop(parts[-1])


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test); a failed op is 422 like the server."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        try:
            name = op["op"]
            parts = _pointer(op["path"])
            if name == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]), replace=False)
            elif name == "replace":
                doc = _add(doc, parts, copy.deepcopy(op["value"]), replace=True)
            elif name == "remove":
                _remove(doc, parts)
            elif name in ("move", "copy"):
                source = _pointer(op["from"])
                value = (
                    _remove(doc, source) if name == "move" else copy.deepcopy(_walk(doc, source))
                )
                doc = _add(doc, parts, value, replace=False)
            elif name == "test":
                if _walk(doc, parts) != op["value"]:
                    raise ApiError(
                        422,
                        "Invalid",
                        f"the server rejected our request due to an error in our request: test failed at {op['path']}",
                    )
            else:
                raise bad_request(f"Unexpected kind: {name}")
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {json.dumps(op)}: {e!r}",
            ) from e
    return doc


def apply_patch(content_type: str, current: dict[str, Any], body: Any) -> dict[str, Any]:
    """The object after applying ``body`` of ``content_type`` to ``current``."""
    if content_type == JSON_PATCH:
        result = json_patch(current, body)
    elif content_type in (MERGE, STRATEGIC, APPLY):
        if not isinstance(body, dict):
            raise bad_request("patch body must be a JSON object")
        result = merge_patch(current, body)
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: {', '.join(SUPPORTED)}",
        )
    if not isinstance(result, dict):
        raise bad_request("patch result is not an object")
    return result
