"""Shared building blocks of specs and results: frozen models, Kubernetes-style names."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from mlrelay.errors import ConfigError

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63


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
        loc = ".".join(str(p) for p in err.get("loc", ()))
        return f"{spec}.{loc}" if loc else spec

    def what(err: Any) -> str:
        return str(err.get("msg", "")).removeprefix("Value error, ")

    error = ConfigError("; ".join(f"{where(e)}: {what(e)}" for e in errors))
    # The message already names every field; ``field`` names the first for programs.
    error.field = where(errors[0])
    return error
