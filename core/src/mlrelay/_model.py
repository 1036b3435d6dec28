"""Shared building blocks of specs and results: frozen models, Kubernetes-style names."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from mlrelay.errors import ConfigError

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MAX_NAME = 63


class FieldError(ValueError):
    """A check across fields that one field should answer for.

    Pydantic gives a model-level check no location, so its ``ConfigError`` would name only the
    spec; raised from a model validator, this names ``field`` instead.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Frozen(BaseModel):
    """Base of every spec and result: immutable, strict about unknown fields, JSON-ready.

    Adapters put ``model_dump(mode="json")`` into XCom, Prefect artifacts and Dagster
    metadata unchanged, so nothing here may hold an object that JSON cannot carry.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=False)

    def __init__(self, /, **data: Any) -> None:
        # Bad input must surface as our ConfigError naming the field. The pydantic error is not
        # chained: its text repeats the input values, which may be secrets (env values, tokens).
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error_from(exc, spec=type(self).__name__) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """Validate ``obj`` (a dict, e.g. from XCom) into this model, raising ``ConfigError``."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise config_error_from(exc, spec=cls.__name__) from None


def _check_dns1123(value: str) -> str:
    if len(value) > MAX_NAME:
        raise ValueError(f"must be at most {MAX_NAME} characters (got {len(value)})")
    if not _DNS1123_LABEL.match(value):
        raise ValueError(
            "must be a DNS-1123 label: lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit (got {value!r})"
        )
    return value


DNS1123Name = Annotated[str, AfterValidator(_check_dns1123)]
"""A Kubernetes object name (RFC 1123 label): the names of jobs, deployments, namespaces."""


def _check_dns1035(value: str) -> str:
    _check_dns1123(value)
    if not value[0].isalpha():
        raise ValueError(f"must start with a letter (a DNS-1035 label; got {value!r})")
    return value


DNS1035Name = Annotated[str, AfterValidator(_check_dns1035)]
"""A name that must also start with a letter: KServe's InferenceService names (its webhook)."""


def _check_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes object name (DNS-1123 subdomain: lower-case "
            "letters, digits, '-' and '.', at most 253 characters)"
        )
    return value


DNS1123Subdomain = Annotated[str, AfterValidator(_check_subdomain)]
"""The name of a Secret, ConfigMap or PersistentVolumeClaim."""


def check_label_key(key: str) -> str:
    """A label or annotation key: ``[prefix/]name``, as the API server checks it."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        raise ValueError(f"key {key!r}: the prefix must be a DNS-1123 subdomain")
    if len(name) > MAX_NAME or not _QUALIFIED_NAME.match(name):
        raise ValueError(
            f"key {key!r}: the name must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return key


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        check_label_key(key)
        if value and (len(value) > MAX_NAME or not _QUALIFIED_NAME.match(value)):
            raise ValueError(
                f"value {value!r} of {key!r}: at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )
    return labels


def _check_annotations(annotations: dict[str, str]) -> dict[str, str]:
    for key in annotations:
        check_label_key(key)
    return annotations


Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
"""Kubernetes labels (also a node selector): checked here, not refused by the cluster later."""
Annotations = Annotated[dict[str, str], AfterValidator(_check_annotations)]


def _check_no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which no process can be given")
    return value


ProcessText = Annotated[str, AfterValidator(_check_no_nul)]
"""A string handed to a process (argv, environment, working directory)."""


def safe_name(*parts: str, max_length: int = MAX_NAME) -> str:
    """Turn free text (a DAG id, a task id, a run id) into a DNS-1123 label, deterministically.

    The same parts always give the same name, so a retried task finds what it created.
    When the text had to be changed or shortened, an 8-character hash of the original parts is
    appended so two different inputs that read alike (``My..Job/`` and ``my-job``) do not collide.
    """
    raw = "-".join(p for p in parts if p)
    cleaned = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-") or "x"
    if cleaned == raw and len(cleaned) <= max_length:
        return cleaned
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:8]
    head = cleaned[: max_length - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def config_error_from(exc: Exception, *, spec: str) -> ConfigError:
    """Turn a pydantic ``ValidationError`` into a ``ConfigError`` naming the first bad field."""
    errors: list[Any] = (
        list(exc.errors(include_input=False)) if isinstance(exc, ValidationError) else []
    )
    if not errors:
        return ConfigError(str(exc))

    def where(err: Any) -> str:
        parts = [*err.get("loc", ()), *inner(err)]
        loc = ".".join(str(p) for p in parts)
        return f"{spec}.{loc}" if loc else spec

    def inner(err: Any) -> list[str]:
        # A nested spec is built by its own __init__: its ConfigError already names the field.
        named = (err.get("ctx") or {}).get("error")
        if isinstance(named, FieldError):
            return [named.field]
        if isinstance(named, ConfigError) and named.field and "." in named.field:
            return [named.field.split(".", 1)[1]]
        return []

    def what(err: Any) -> str:
        named = (err.get("ctx") or {}).get("error")
        if isinstance(named, ConfigError) and named.field:  # already "Spec.field: message"
            return str(named).removeprefix(f"{named.field}: ")
        return str(err.get("msg", "")).removeprefix("Value error, ")

    error = ConfigError("; ".join(f"{where(e)}: {what(e)}" for e in errors))
    # The message already names every field; ``field`` names the first for programs.
    error.field = where(errors[0])
    return error
