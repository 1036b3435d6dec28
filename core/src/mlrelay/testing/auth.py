"""Bearer-token authentication and a small RBAC: tokens map to a user and its policy rules.

A rule is the shape of an RBAC ``PolicyRule``: verbs, apiGroups, resources (``pods/log`` and
``jobs/status`` name subresources) and, unlike RBAC, the namespaces it applies to (``*`` for all,
including cluster-scoped requests). Denials use the API server's exact wording, which clients
surface to users.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from mlrelay.testing.status import ApiError


@dataclass(frozen=True)
class Rule:
    verbs: tuple[str, ...] = ("*",)
    api_groups: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)

    def allows(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        base = resource.split("/", 1)[0]
        return (
            ("*" in self.verbs or verb in self.verbs)
            and ("*" in self.api_groups or group in self.api_groups)
            and (
                "*" in self.resources
                or resource in self.resources
                or ("/" not in resource and base in self.resources)
                or f"{base}/*" in self.resources
            )
            and ("*" in self.namespaces or (namespace is not None and namespace in self.namespaces))
        )


ADMIN = (Rule(),)
READ_ONLY = (Rule(verbs=("get", "list", "watch")),)


@dataclass(frozen=True)
class Principal:
    user: str
    rules: tuple[Rule, ...]
    groups: tuple[str, ...] = ("system:authenticated",)


class Authenticator:
    """Token table. ``add`` returns the token; ``revoke`` makes it 401 from the next request on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Principal] = {}
        self.admin_token = self.add("admin", ADMIN)

    def add(self, user: str, rules: tuple[Rule, ...], token: str | None = None) -> str:
        token = token or secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = Principal(user, tuple(rules))
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def authenticate(self, header: str | None) -> Principal:
        scheme, _, token = (header or "").partition(" ")
        with self._lock:
            principal = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return principal


def allowed(
    principal: Principal, verb: str, group: str, resource: str, namespace: str | None
) -> bool:
    return any(r.allows(verb, group, resource, namespace) for r in principal.rules)


def forbidden(
    principal: Principal,
    verb: str,
    group: str,
    resource: str,
    namespace: str | None,
    name: str | None,
) -> ApiError:
    """403 worded like the RBAC authorizer: ``pods "x" is forbidden: User "u" cannot get ...``."""
    base = resource.split("/", 1)[0]
    qualified = f"{base}.{group}" if group else base
    subject = f'{qualified} "{name}"' if name else qualified
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{principal.user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}" {where}'
    )
    details: dict[str, str] = {"kind": base}
    if group:
        details["group"] = group
    if name:
        details["name"] = name
    return ApiError(403, "Forbidden", message, details=details)
