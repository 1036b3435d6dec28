"""Where MLflow exceptions become mlrelay errors: one place, so every registry call fails alike.

MLflow raises one ``MlflowException`` for everything (a refused connection, a missing alias, a
server bug), told apart by ``error_code``. Callers of mlrelay should instead see *whose* problem
it is: their input (``ConfigError``), the server (``ServiceUnavailable``), or the registration
itself (``RegistrationFailed``). The tracking URI appears only as ``settings.display_uri``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlrelay.errors import ConfigError, MLRelayError, RegistrationFailed, ServiceUnavailable
from mlrelay.settings import MLflowSettings

NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
_BAD_INPUT = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS"})
_DENIED = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"})
_MAX_MESSAGE = 500


def error_code(exc: BaseException) -> str | None:
    """The MLflow error code name of ``exc`` (``RESOURCE_DOES_NOT_EXIST``), if it is MLflow's."""
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) and _is_mlflow(exc) else None


def _is_mlflow(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException)


def _unreachable(exc: BaseException) -> bool:
    """True when no answer came back (refused, timed out, retries spent on 5xx)."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.RequestException):
            return True
        seen = seen.__cause__ or seen.__context__
    # The client wraps transport errors as "API request to <url> failed with ... exception".
    return str(getattr(exc, "message", exc)).startswith("API request to ")


def _server_text(exc: BaseException) -> str:
    text = str(getattr(exc, "message", exc))
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " ..."


def translate(
    exc: BaseException, settings: MLflowSettings, action: str, *, model_name: str | None = None
) -> MLRelayError | None:
    """The mlrelay error for an MLflow exception raised while doing ``action``; else ``None``.

    ``model_name`` marks a registration: server-side failures then become ``RegistrationFailed``
    (the caller asked for a version and did not get one) rather than ``ServiceUnavailable``.
    """
    if not _is_mlflow(exc):
        return None
    uri = settings.display_uri
    if _unreachable(exc):
        return ServiceUnavailable(f"{action}: the MLflow tracking server did not answer", uri=uri)
    code = error_code(exc) or "INTERNAL_ERROR"
    text = _server_text(exc)
    if code in _DENIED:
        return ConfigError(
            f"{action}: the MLflow server at {uri} refused the credentials ({code})",
            field="MLFLOW_TRACKING_TOKEN",
        )
    if code in NOT_FOUND or code in _BAD_INPUT:
        return ConfigError(f"{action}: {text}")
    if model_name is not None:
        return RegistrationFailed(f"{action}: {text}", model_name=model_name)
    return ServiceUnavailable(f"{action}: the MLflow server failed: {text}", uri=uri)


@contextmanager
def not_found_raises(error: ConfigError) -> Iterator[None]:
    """Raise ``error`` when MLflow answers NOT_FOUND in the block: what the caller named is absent.

    MLflow's exception is chained as ``__cause__``; any other exception passes unchanged.
    """
    try:
        yield
    except Exception as exc:
        if error_code(exc) not in NOT_FOUND:
            raise
        raise error from exc


@contextmanager
def boundary(
    settings: MLflowSettings, action: str, *, model_name: str | None = None
) -> Iterator[None]:
    """Translate MLflow exceptions escaping the block; mlrelay's own errors pass unchanged."""
    try:
        yield
    except MLRelayError:
        raise
    except Exception as exc:
        error = translate(exc, settings, action, model_name=model_name)
        if error is None:
            raise
        raise error from exc
