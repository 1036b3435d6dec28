"""The HTTP face of the emulator: a Starlette app routing Kubernetes REST paths to the store.

Paths are resolved the way the API server's ``RequestInfoFactory`` does it (``/api/v1`` or
``/apis/<group>/<version>``, optional ``namespaces/<ns>``, resource, name, subresource), then
authenticated, authorized against the token's rules, and dispatched by verb.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mlrelay.testing import discovery, patch, protobuf, tables
from mlrelay.testing.auth import Authenticator, Principal, allowed, forbidden
from mlrelay.testing.kinds import Obj, ResourceKind
from mlrelay.testing.selectors import field_matcher, label_matcher
from mlrelay.testing.status import (
    ApiError,
    bad_request,
    method_not_allowed,
    no_such_resource,
)
from mlrelay.testing.store import Store
from mlrelay.testing.watch import open_watch

#: ``(namespace, pod, query) -> chunks`` for ``pods/log``; the kubelet of a later round sets it.
LogSource = Callable[[str, str, dict[str, str]], AsyncIterator[bytes]]
# Built-ins whose DELETE answers with the object (custom resources do too); other built-ins
# answer a ``Success`` Status.
_RETURNS_OBJECT = {("", "pods"), ("", "namespaces")}


@dataclass
class Target:
    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    # As RequestInfoFactory: namespaces/<ns>/status|finalize are the Namespace's own subresources.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    return Target(group, version, namespace, rest[0], *[*rest[1:], None, None][:2])


def _json(body: Any, code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=code, headers=headers)


def _error(error: ApiError) -> Response:
    # ``Connection: close`` after a failure: the official client does not return a connection
    # whose request raised to its pool, so it could never be closed by ``ApiClient.close()`` and
    # would hold the server's graceful shutdown. Clients simply reconnect.
    return _json(error.status(), error.code, {**error.headers, "Connection": "close"})


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    if "protobuf" in request.headers.get("content-type", ""):
        # client-go (1.32+) falls back to JSON for the rest of its life after a 415.
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
        )
    try:
        if request.headers.get("content-type", "").startswith(patch.APPLY):
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as e:
        raise bad_request(f"the body of the request could not be decoded: {e}") from e


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


class Api:
    """Request handling, separate from Starlette wiring so it reads top to bottom."""

    def __init__(
        self, store: Store, auth: Authenticator, *, bookmark_interval: float = 1.0
    ) -> None:
        self.store = store
        self.auth = auth
        self.bookmark_interval = bookmark_interval
        self.log_source: LogSource | None = None

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except ApiError as error:
            return _error(error)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return Response("ok", media_type="text/plain")
        if path == "/version":
            return _json(discovery.VERSION)
        principal = self.auth.authenticate(request.headers.get("authorization"))
        kinds = self.store.kinds()
        if path.startswith("/openapi/v2"):
            raise no_such_resource()
        if path == "/openapi/v3":
            return _json(discovery.openapi_v3_index(kinds))
        if path.startswith("/openapi/v3/"):
            gv = path.removeprefix("/openapi/v3/").split("/")
            group, version = (
                ("", gv[1]) if gv[0] == "api" else (gv[1], gv[2] if len(gv) > 2 else "")
            )
            return _json(discovery.openapi_v3_group_version(kinds, group, version))
        if path == "/api":
            return _json(discovery.core_versions())
        if path == "/apis":
            return _json(discovery.group_list(kinds))
        if path == "/api/v1":
            return _json(discovery.resource_list("", "v1", kinds))
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "apis":
            doc = discovery.group(kinds, parts[1])
            return _json(doc) if doc else _error(no_such_resource())
        if len(parts) == 3 and parts[0] == "apis":
            if (parts[1], parts[2]) not in discovery.served_group_versions(kinds):
                return _error(no_such_resource())
            return _json(discovery.resource_list(parts[1], parts[2], kinds))
        target = parse_path(path)
        if target is None:
            raise no_such_resource()
        if (target.group, target.plural) == (
            discovery.AUTHORIZATION_GROUP,
            "selfsubjectaccessreviews",
        ):
            return await self._access_review(request, principal)
        kind = self.store.find(target.group, target.version, target.plural)
        if kind is None or (target.namespace is not None and not kind.namespaced):
            raise no_such_resource()
        verb = self._verb(request, target)
        resource = target.plural + (f"/{target.subresource}" if target.subresource else "")
        namespace = target.namespace if kind.namespaced else None
        if not allowed(principal, verb, kind.group, resource, namespace):
            raise forbidden(principal, verb, kind.group, resource, namespace, target.name)
        return await self._dispatch(request, verb, kind, target)

    @staticmethod
    def _verb(request: Request, target: Target) -> str:
        method = request.method
        if method == "GET":
            if target.name:
                return "get"
            return "watch" if _truthy(request.query_params.get("watch")) else "list"
        if method == "DELETE":
            return "delete" if target.name else "deletecollection"
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method)
        if verb is None or (verb != "create") != bool(target.name):
            raise method_not_allowed(method)
        return verb

    async def _dispatch(
        self, request: Request, verb: str, kind: ResourceKind, t: Target
    ) -> Response:
        q = request.query_params
        if t.subresource not in (None, "status") and not (
            t.subresource == "log" and kind.plural == "pods"
        ):
            raise no_such_resource()
        if t.subresource == "status" and not kind.status_subresource:
            raise no_such_resource()
        if q.get("dryRun") and verb not in ("get", "list", "watch"):
            # Loud rather than silently persisting what the caller meant as a rehearsal.
            raise bad_request("dryRun is not supported by the mlrelay Kubernetes emulator")
        if verb == "get" and t.subresource == "log" and t.name:
            return await self._logs(t.namespace or "default", t.name, dict(q))
        as_table = tables.wants_table(request.headers.get("accept", ""))
        if verb == "get" and t.name:
            obj = self.store.get(kind, t.namespace, t.name)
            return _json(tables.table(kind, [obj], None) if as_table else obj)
        if verb in ("list", "watch", "deletecollection"):
            labels = label_matcher(q.get("labelSelector"))
            fields = field_matcher(q.get("fieldSelector"), kind.field_selectors, kind.kind)

            def match(obj: Obj) -> bool:
                return labels(obj) and fields(obj)

            if verb == "watch":
                return self._watch(kind, t.namespace, match, q, as_table)
            items, rv = self.store.list(kind, t.namespace, match)
            if verb == "deletecollection":
                opts = await _body(request)
                for obj in items:
                    meta = obj["metadata"]
                    self.store.delete(
                        kind, meta.get("namespace"), meta["name"], **_delete_options(opts, q)
                    )
            # LIST ignores resourceVersion/limit and always serves the latest state: allowed by
            # "Not older than" semantics for rv="0"/unset; an exact rv is not honoured (see report).
            if as_table and verb == "list":
                return _json(tables.table(kind, items, str(rv)))
            return _json(
                {
                    "kind": kind.list_kind,
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": str(rv)},
                    "items": items,
                }
            )
        if verb == "create":
            body = await _body(request)
            if not isinstance(body, dict):
                raise bad_request("the body of the request must be an object")
            return _json(self.store.create(kind, body, t.namespace), 201)
        assert t.name is not None
        if verb == "update":
            body = await _body(request)
            return _json(
                self.store.replace(kind, t.namespace, t.name, body, subresource=t.subresource)
            )
        if verb == "patch":
            return await self._patch(request, kind, t, t.name)
        opts = await _body(request)
        obj = self.store.delete(kind, t.namespace, t.name, **_delete_options(opts, q))
        code = 202 if obj["metadata"].get("deletionTimestamp") and self._exists(kind, t) else 200
        if kind.key in _RETURNS_OBJECT or kind.group not in ("", "batch"):
            return _json(obj, code)
        meta = obj["metadata"]
        details = {"name": meta["name"], "kind": kind.plural, "uid": meta["uid"]}
        if kind.group:
            details["group"] = kind.group
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
            code,
        )

    def _exists(self, kind: ResourceKind, t: Target) -> bool:
        try:
            self.store.get(kind, t.namespace, t.name or "")
        except ApiError:
            return False
        return True

    async def _patch(self, request: Request, kind: ResourceKind, t: Target, name: str) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        body = await _body(request)
        if content_type == patch.APPLY:
            # Server-side apply as create-or-merge: no managedFields, no conflicts, no removal of
            # fields the manager stopped applying (a documented difference from the real server).
            if not request.query_params.get("fieldManager"):
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                )
            if not self._exists(kind, t) and t.subresource is None:
                body.setdefault("metadata", {})["name"] = name
                return _json(self.store.create(kind, body, t.namespace), 201)

        def mutate(current: Obj) -> Obj:
            return patch.apply_patch(content_type, current, body)

        return _json(self.store.patch(kind, t.namespace, name, mutate, subresource=t.subresource))

    def _watch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        match: Callable[[Obj], bool],
        q: Any,
        as_table: bool,
    ) -> Response:
        rv = q.get("resourceVersion")
        try:
            since = None if rv in (None, "", "0") else int(rv)
        except ValueError as e:
            raise bad_request(f"invalid resourceVersion: {rv!r}") from e
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        stream = open_watch(
            self.store,
            kind,
            namespace,
            since,
            match,
            timeout=timeout,
            bookmarks=_truthy(q.get("allowWatchBookmarks")),
            bookmark_interval=self.bookmark_interval,
            render=(lambda obj: tables.table(kind, [obj], None)) if as_table else None,
        )
        return StreamingResponse(stream, media_type="application/json")

    async def _logs(self, namespace: str, name: str, query: dict[str, str]) -> Response:
        pod = self.store.get("pods", namespace, name)
        if self.log_source is None:
            container = query.get("container") or pod["spec"]["containers"][0]["name"]
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        return StreamingResponse(self.log_source(namespace, name, query), media_type="text/plain")

    async def _access_review(self, request: Request, principal: Principal) -> Response:
        if request.method != "POST":
            raise method_not_allowed(request.method)
        if "protobuf" in request.headers.get("content-type", ""):
            try:
                body = protobuf.self_subject_access_review(await request.body())
            except (ValueError, IndexError, UnicodeDecodeError) as e:
                raise bad_request(f"the body of the request could not be decoded: {e}") from e
        else:
            body = await _body(request)
        spec = body.get("spec") or {}
        attrs = spec.get("resourceAttributes")
        if attrs:
            resource = attrs.get("resource", "") + (
                f"/{attrs['subresource']}" if attrs.get("subresource") else ""
            )
            ok = allowed(
                principal,
                attrs.get("verb", ""),
                attrs.get("group", ""),
                resource,
                attrs.get("namespace") or None,
            )
        else:
            ok = allowed(
                principal, (spec.get("nonResourceAttributes") or {}).get("verb", ""), "*", "*", "*"
            )
        # RBAC gives no reason when no rule matches; kubectl then prints a bare "no".
        body["status"] = {"allowed": ok}
        body.setdefault("metadata", {})["creationTimestamp"] = None
        return _json(body, 201)


def _delete_options(body: Any, q: Any) -> dict[str, Any]:
    opts = body if isinstance(body, dict) else {}
    policy = opts.get("propagationPolicy") or q.get("propagationPolicy")
    orphan = opts.get("orphanDependents")
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    grace = opts.get("gracePeriodSeconds", q.get("gracePeriodSeconds"))
    return {
        "propagation": policy,
        "grace_period": int(grace) if grace is not None else None,
        "preconditions": opts.get("preconditions"),
    }


def build_app(api: Api) -> Starlette:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    # A bound method, so Starlette wraps it as a request/response endpoint, not a raw ASGI app.
    return Starlette(routes=[Route("/{path:path}", api.__call__, methods=methods)])
