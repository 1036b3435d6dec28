"""A Kubernetes API connection: credentials from the settings, a timeout and a retry on every call.

Built on the official client's ``ApiClient`` (its kubeconfig, in-cluster and token handling, its
TLS and auth plumbing), used through ``call_api`` with plain dicts: the same few verbs serve
Jobs, Pods, Secrets and the Kubeflow and KServe custom resources, and a status is read from the
JSON the server sent, not from generated models that drop fields they do not know (the
``FailureTarget`` condition reason, a CRD's status).

Three things the generated client does not do by default, done here for every call:

- a request timeout (it has none: a half-open connection hangs forever, FAULTS K8);
- the retry policy of :mod:`mlrelay.kube.retry` (its urllib3 retries are switched off so that
  one policy decides);
- errors mapped at the boundary: nothing above this module sees an ``ApiException``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlrelay._deps import require
from mlrelay.errors import ConfigError, ServiceUnavailable
from mlrelay.kube.retry import RetryPolicy, describe, reason_of, server_message, status_of
from mlrelay.settings import KubernetesSettings

log = logging.getLogger("mlrelay.kube")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API: ``/apis/<group>/<version>/namespaces/<ns>/<plural>``."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            root += f"/namespaces/{namespace}"
        path = f"{root}/{self.plural}" + (f"/{name}" if name else "")
        return path + (f"/{sub}" if sub else "")


JOBS = Kind("batch", "v1", "jobs", "Job")
PODS = Kind("", "v1", "pods", "Pod")
SECRETS = Kind("", "v1", "secrets", "Secret")
EVENTS = Kind("", "v1", "events", "Event")


class NotFound(Exception):
    """404 from the server: the object is not there (an answer, not a failure)."""


class AlreadyExists(Exception):
    """409 AlreadyExists on create: an object of that name is there (create-or-adopt decides)."""


class Kube:
    """One connection to one API server, for one namespace by default.

    Args:
        settings: where the server is and how to authenticate (kubeconfig + context, in-cluster,
            or host + token); read from the environment when not given.
        retry: the policy for transient failures.
        sleep: injectable for tests (the waits between retries).
    """

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or KubernetesSettings()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._api: Any = None
        self._api = self._connect()
        self.requests = 0  # calls made, watches and log streams included (for measurements)

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    @property
    def identity(self) -> tuple[Any, ...]:
        """Who talks to which server: connections with the same identity may share a watch
        (never across credentials: one user's permissions must not serve another's waiter)."""
        s = self.settings
        token = s.token.get_secret_value() if s.token is not None else None
        digest = hashlib.sha256(token.encode()).hexdigest() if token is not None else None
        return (self.host, s.kubeconfig, s.context, s.in_cluster, digest, s.ca_file, s.verify_ssl)

    def reload(self) -> None:
        """Read the credentials again (a rotated token, FAULTS K6) and use them from now on."""
        with self._lock:
            old, self._api = self._api, self._connect()
        log.info("reloaded Kubernetes credentials for %s", self.host)
        old.close()

    def close(self) -> None:
        self._api.close()

    # -- verbs -------------------------------------------------------------------------------

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj:
        """The object; ``NotFound`` if there is none."""
        return self.request(
            "GET", kind.path(namespace or self.namespace, name), what=f"get {kind.kind} {name}"
        )

    def list(self, kind: Kind, namespace: str | None = None, *, selector: str | None = None) -> Obj:
        query = [("labelSelector", selector)] if selector else []
        return self.request(
            "GET", kind.path(namespace or self.namespace), query=query, what=f"list {kind.plural}"
        )

    def create(self, kind: Kind, body: Obj, namespace: str | None = None) -> Obj:
        """Create ``body``; ``AlreadyExists`` if an object of that name is there."""
        name = body.get("metadata", {}).get("name", "")
        return self.request(
            "POST",
            kind.path(namespace or self.namespace),
            body=body,
            what=f"create {kind.kind} {name}",
        )

    def patch(
        self, kind: Kind, name: str, body: Obj, namespace: str | None = None, *, merge: bool = True
    ) -> Obj:
        content = "application/merge-patch+json" if merge else "application/json-patch+json"
        return self.request(
            "PATCH",
            kind.path(namespace or self.namespace, name),
            body=body,
            content_type=content,
            what=f"patch {kind.kind} {name}",
        )

    def delete(
        self,
        kind: Kind,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Foreground",
        grace_seconds: int | None = None,
    ) -> bool:
        """Delete with ``propagation``; False if it was already gone."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            self.request(
                "DELETE",
                kind.path(namespace or self.namespace, name),
                body=body,
                what=f"delete {kind.kind} {name}",
            )
        except NotFound:
            return False
        return True

    # -- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        what: str,
        cancel: threading.Event | None = None,
    ) -> Obj:
        """One API call under the retry policy (ended early by ``cancel``); the decoded JSON body."""

        def once() -> Obj:
            response = self.open(method, path, query=query, body=body, content_type=content_type)
            try:
                data = json.loads(response.data or b"{}")
            finally:
                response.release_conn()
            return data if isinstance(data, dict) else {"items": data}

        try:
            return self.retry.call(
                once, what=what, on_unauthorized=self.reload, sleep=self._sleep, cancel=cancel
            )
        except Exception as exc:
            raise self.translate(exc, what) from exc

    def open(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        read_timeout: float | None = None,
    ) -> Any:
        """Send one request and return the raw urllib3 response (for streams); no retry."""
        timeout = self.settings.request_timeout
        with self._lock:
            api = self._api
        self.requests += 1
        return api.call_api(
            path,
            method,
            query_params=list(query),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=(timeout, read_timeout if read_timeout is not None else timeout),
        )

    def answer(self, exc: Exception, what: str) -> Exception:
        """For a call made without the retry policy (a stream): a 401 reloads the credentials
        and stays retryable; an answer the server will repeat (403, 404, 422) becomes ours."""
        status = status_of(exc)
        if status == 401:
            self.reload()
            return exc
        if status is not None and 400 <= status < 500 and status not in (408, 410, 429):
            return self.translate(exc, what)
        return exc

    def translate(self, exc: Exception, what: str) -> Exception:
        """An exception from a call as ours: answers as ``NotFound``/``AlreadyExists``, bad
        requests as ``ConfigError`` with the server's message, the rest as unavailability."""
        status = status_of(exc)
        if status == 404:
            if what.startswith("create "):
                # A create has no object to miss: its namespace (or the kind's API) is not there.
                message = server_message(exc)
                field = "namespace" if "namespace" in message else None
                return ConfigError(f"the API server cannot {what}: {message}", field=field)
            return NotFound(what)
        if status == 409 and reason_of(exc) == "AlreadyExists":
            return AlreadyExists(what)
        if status in (400, 403, 409, 422):
            hint = " (see the Role in mlrelay/kube/manifests/)" if status == 403 else ""
            return ConfigError(f"the API server refused to {what}: {server_message(exc)}{hint}")
        if status == 401:
            return ConfigError(
                f"the API server refused our credentials to {what}, also after reloading them",
                field="settings.kubernetes",
            )
        return ServiceUnavailable(f"could not {what}: {describe(exc)}", uri=self.host)

    def _connect(self) -> Any:
        """An ``ApiClient`` for the settings (kubeconfig/context, in-cluster, or host + token)."""
        require("kubernetes", "kubernetes")
        from kubernetes import client, config

        s = self.settings
        cfg = client.Configuration()
        try:
            if s.host:
                cfg.host = s.host
                if s.token is not None:
                    cfg.api_key = {"BearerToken": s.token.get_secret_value()}
                    cfg.api_key_prefix = {"BearerToken": "Bearer"}
                if s.ca_file is not None:
                    cfg.ssl_ca_cert = str(s.ca_file)
            elif s.in_cluster:
                config.load_incluster_config(client_configuration=cfg)
            else:
                path = str(s.kubeconfig) if s.kubeconfig else None
                config.load_kube_config(
                    config_file=path, context=s.context, client_configuration=cfg
                )
        except (config.ConfigException, OSError) as exc:
            where = "in-cluster" if s.in_cluster else str(s.kubeconfig or "the default kubeconfig")
            raise ConfigError(
                f"cannot load Kubernetes credentials from {where}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                field="kubeconfig",
            ) from None
        if not s.verify_ssl:
            cfg.verify_ssl = False
        cfg.retries = False  # one retry policy: ours (see the module docstring)
        return client.ApiClient(cfg)


def owner_reference(obj: Mapping[str, Any], *, controller: bool = True) -> Obj:
    """An ownerReference to ``obj`` so that deleting it garbage-collects the dependent."""
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }
