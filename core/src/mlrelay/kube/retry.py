"""The one retry policy of every Kubernetes API call, and the classification it rests on.

Which failures are worth another try is decided here and nowhere else (FAULTS K1-K8):

- 429 and 5xx: the server is busy or rolling; wait at least its ``Retry-After`` (K4, K5).
- 409 with reason ``Conflict`` (a quota or resourceVersion race) is transient; 409
  ``AlreadyExists`` is not an error to retry but an answer, handled by create-or-adopt (K2, K3).
- Connection errors and read timeouts (a half-open connection, K8): the request timeout on every
  call turns a hang into an error, and the next try opens a new connection.
- 401 once: the token may have been rotated (K6); the caller reloads its credentials first.
- Any other 4xx (400, 403, 404, 422) is an answer about the request: never retried (K7).

tenacity does the looping and the exponential backoff with jitter; the only hand-written part is
the wait that honours ``Retry-After``, which tenacity has no strategy for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("mlrelay.kube")

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class Unauthorized(Exception):
    """A 401 that survived a credentials reload (raised by the client, mapped at the boundary)."""


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ``ApiException`` (0 for TLS errors), else None."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and _is_api_exception(exc) else None


def reason_of(exc: BaseException) -> str:
    """The ``reason`` of the Status object in an ApiException's body (``AlreadyExists``...)."""
    import json

    body = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return ""
    return str(data.get("reason", "")) if isinstance(data, dict) else ""


def retry_after(exc: BaseException) -> float | None:
    """The ``Retry-After`` header of an ApiException, in seconds, if it carries one."""
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def transient(exc: BaseException) -> bool:
    """Whether another try of the same request may succeed (see the module docstring)."""
    import urllib3

    status = status_of(exc)
    if status is not None:
        if status in RETRYABLE_STATUS:
            return True
        return status == 409 and reason_of(exc) == "Conflict"
    return isinstance(
        exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
    ) and not isinstance(exc, urllib3.exceptions.SSLError)


def _is_api_exception(exc: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    Attributes:
        attempts: tries in all, the first included.
        initial, maximum: the exponential backoff's first and largest wait (seconds), with up
            to ``jitter`` seconds added at random so that many clients do not retry in step.
        max_retry_after: the longest ``Retry-After`` honoured; a server asking for more gets
            this (a bound, so that a misbehaving proxy cannot park a task for an hour).
    """

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 1.0
    max_retry_after: float = 120.0

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        on_unauthorized: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        cancel: threading.Event | None = None,
    ) -> T:
        """Run ``fn`` until it succeeds, a non-transient error, or ``attempts`` run out.

        ``on_unauthorized`` is called once, on the first 401, before the retry (a credentials
        reload); a second 401 is final. Setting ``cancel`` ends the retries at once (a waiter
        that stopped must not go on calling a server nobody listens to).
        """
        import tenacity

        reloaded = False

        def should_retry(exc: BaseException) -> bool:
            nonlocal reloaded
            if status_of(exc) == 401 and on_unauthorized is not None and not reloaded:
                reloaded = True
                on_unauthorized()
                return True
            return transient(exc)

        backoff = tenacity.wait_exponential_jitter(
            initial=self.initial, max=self.maximum, jitter=self.jitter
        )

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            delay = backoff(state)
            asked = retry_after(exc) if exc is not None else None
            return max(delay, min(asked, self.max_retry_after)) if asked is not None else delay

        def note(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "%s failed (%s); retrying in %.1fs (attempt %d of %d)",
                what,
                describe(exc),
                state.upcoming_sleep,
                state.attempt_number + 1,
                self.attempts,
            )

        def pause(seconds: float) -> None:
            if cancel is not None:
                cancel.wait(seconds)
            else:
                sleep(seconds)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(should_retry),
            wait=wait,
            stop=tenacity.stop_after_attempt(self.attempts)
            | (tenacity.stop_when_event_set(cancel) if cancel is not None else tenacity.stop_never),
            before_sleep=note,
            sleep=pause,
            reraise=True,
        )
        return retrying(fn)


def describe(exc: BaseException | None) -> str:
    """A short, secret-free description of a failed call: status and reason, or the error type.

    Never the request or the response body: the body of a rejected create may echo the object,
    and the object may hold a secret value (FAULTS S2).
    """
    if exc is None:
        return "no error"
    status = status_of(exc)
    if status is not None:
        reason = reason_of(exc) or str(getattr(exc, "reason", "") or "")
        return f"HTTP {status} {reason}".strip()
    return type(exc).__name__


def server_message(exc: BaseException) -> str:
    """The ``message`` of the API server's Status object (what kubectl shows), else a description.

    Safe to show: the API server's messages name fields and values it rejected, which for our
    objects are names, images and quantities; env values are never echoed by validation.
    """
    import json

    body: Any = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        data = {}
    message = data.get("message") if isinstance(data, dict) else None
    return str(message) if message else describe(exc)
