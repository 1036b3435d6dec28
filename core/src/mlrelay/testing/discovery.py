"""Discovery documents (``/version``, ``/api``, ``/apis``, group versions) built from the store's kinds.

kubectl and the dynamic client map ``jobs`` or ``isvc`` to a group/version/resource through these,
so every registered kind appears with its verbs, scope, kind and short names. kubectl 1.32 first
asks for aggregated discovery (``apidiscovery.k8s.io/v2``); we answer with the legacy documents
and a plain ``application/json`` content type, which it accepts as the fallback.
"""

from __future__ import annotations

from typing import Any

from mlrelay.testing.kinds import ResourceKind

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-mlrelay-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
AUTHORIZATION_GROUP = "authorization.k8s.io"


def _resources(kinds: list[ResourceKind]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in sorted(kinds, key=lambda x: x.plural):
        entry: dict[str, Any] = {
            "name": kind.plural,
            "singularName": kind.singular or kind.kind.lower(),
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": VERBS,
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        out.append(entry)
        if kind.status_subresource:
            out.append(
                {
                    "name": f"{kind.plural}/status",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if kind.plural == "pods" and kind.group == "":
            out.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
    return out


def resource_list(group: str, version: str, kinds: list[ResourceKind]) -> dict[str, Any]:
    """``APIResourceList`` for ``/api/v1`` or ``/apis/<group>/<version>``."""
    resources = _resources([x for x in kinds if x.group == group and x.version == version])
    if group == AUTHORIZATION_GROUP:
        resources = [
            {
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": False,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }
        ]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _groups(kinds: list[ResourceKind]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for kind in kinds:
        if kind.group and kind.version not in groups.setdefault(kind.group, []):
            groups[kind.group].append(kind.version)
    groups[AUTHORIZATION_GROUP] = ["v1"]
    return groups


def group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def group_list(kinds: list[ResourceKind]) -> dict[str, Any]:
    """``APIGroupList`` for ``/apis``."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group_entry(g, v) for g, v in sorted(_groups(kinds).items())],
    }


def group(kinds: list[ResourceKind], name: str) -> dict[str, Any] | None:
    versions = _groups(kinds).get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **group_entry(name, versions)}


def served_group_versions(kinds: list[ResourceKind]) -> set[tuple[str, str]]:
    served = {(k.group, k.version) for k in kinds}
    served.add((AUTHORIZATION_GROUP, "v1"))
    return served


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_index(kinds: list[ResourceKind]) -> dict[str, Any]:
    """``/openapi/v3``: one entry per served group version."""
    paths = {
        _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}"}
        for g, v in sorted({(x.group, x.version) for x in kinds})
    }
    return {"paths": paths}


def openapi_v3_group_version(kinds: list[ResourceKind], group: str, version: str) -> dict[str, Any]:
    """A schema-less OpenAPI v3 document that only declares the operations and ``fieldValidation``.

    kubectl's apply/create check whether the server supports the ``fieldValidation`` query
    parameter for a kind (``x-kubernetes-group-version-kind`` + a PATCH operation declaring it);
    when it does, kubectl leaves validation to the server and never needs ``/openapi/v2``
    schemas. The emulator accepts ``fieldValidation`` but does not check unknown fields.
    """
    paths: dict[str, Any] = {}
    for kind in kinds:
        if (kind.group, kind.version) != (group, version):
            continue
        gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        param = {
            "name": "fieldValidation",
            "in": "query",
            "schema": {"type": "string", "uniqueItems": True},
        }
        prefix = f"/{_gv_path(group, version)}" + (
            "/namespaces/{namespace}" if kind.namespaced else ""
        )
        op = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [param],
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"{prefix}/{kind.plural}/{{name}}"] = {"patch": op, "put": op}
        paths[f"{prefix}/{kind.plural}"] = {"post": op}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
    }
