"""What the fuzz tests share: value strategies that mix valid and broken input, the check every
constructor must pass (a valid object, or a ``ConfigError`` naming a field of the spec and never
repeating a secret), and a tripwire API server that counts any connection made to it.

Example counts are set per test with ``FUZZ``; together the fuzz files stay under a minute on
two busy cores (``deadline=None``: a loaded CI machine must not turn slowness into failures).
"""

from __future__ import annotations

import json
import re
import socket
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mlrelay.errors import ConfigError

# A secret value no valid input can contain by accident: it must never reach an error message.
SECRET = "fz-canary-7b1e4c0d9a"


def fuzz(examples: int) -> Any:
    """Hypothesis settings for one fuzz test: a fixed example budget, no per-example deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # nothing written to the repo; a failure prints its example
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# -- values -----------------------------------------------------------------------------------

dns_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
junk_text = st.text(max_size=12)
ascii_text = st.text(alphabet=string.printable, max_size=12)
junk_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(), junk_text
)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), junk_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(junk_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def sometimes(valid: st.SearchStrategy[Any], broken: st.SearchStrategy[Any] = junk_scalar) -> Any:
    """Mostly valid values (so deeper checks are reached), sometimes anything at all."""
    # Hypothesis favours simple branches of ``one_of``; an explicit 3:1 draw keeps the ratio.
    return st.sampled_from((True, True, True, False)).flatmap(lambda ok: valid if ok else broken)


names = st.one_of(
    dns_label,
    dns_label,
    st.just("My..Job/"),
    st.text(alphabet="abc-", min_size=60, max_size=70),  # around the 63-character limit
    st.from_regex(r"\A[0-9][a-z0-9]{0,8}\Z"),  # a digit first: DNS-1123 yes, DNS-1035 no
    junk_scalar,
)
quantities = sometimes(
    st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,2})?(m|Ki|Mi|Gi|G|M)?\Z"),
    st.one_of(st.sampled_from(["2 cores", "-1", "1e3", "0.5.5", "Gi", "", "500 m"]), junk_scalar),
)
label_maps = st.dictionaries(
    sometimes(st.one_of(dns_label, st.just("example.com/team")), ascii_text),
    sometimes(
        st.one_of(dns_label, st.just("")),
        st.one_of(ascii_text, st.text(alphabet="a", min_size=64, max_size=70)),
    ),
    max_size=3,
)


# -- the check --------------------------------------------------------------------------------


def outcome(build: Callable[[], Any], model: type[BaseModel]) -> Any | None:
    """Build the object: return it, or ``None`` after checking the ``ConfigError`` is a good one.

    A good one names the spec and the field that was wrong (a field of the spec, or a sub-field
    of one), and repeats no secret value. Any other exception fails the test.
    """
    try:
        return build()
    except ConfigError as exc:
        error = exc
    assert error.field, f"ConfigError without a field: {error}"
    head, _, rest = error.field.partition(".")
    assert head == model.__name__, f"{error.field!r} does not name {model.__name__}: {error}"
    top = rest.split(".")[0] if rest else ""
    assert top in model.model_fields, f"{error.field!r} names no field: {error}"
    assert SECRET not in str(error)
    assert SECRET not in repr(error.args)
    return None


def jsonable(obj: Any) -> str:
    """The object as JSON text, which is how it reaches the API server."""
    return json.dumps(obj, sort_keys=True, allow_nan=False)


# -- the tripwire -----------------------------------------------------------------------------


class Tripwire:
    """A listening socket that never answers: ``connections()`` counts who tried to connect."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.setblocking(False)
        self.seen = 0
        self.host = f"https://127.0.0.1:{self._sock.getsockname()[1]}"

    def connections(self) -> int:
        while True:
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                return self.seen
            conn.close()
            self.seen += 1

    def close(self) -> None:
        self._sock.close()


@contextmanager
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    try:
        yield wire
    finally:
        wire.close()


# -- what the API server would refuse ----------------------------------------------------------
# The rules of Kubernetes' apimachinery/core validation that a spec can break; a spec that
# builds a manifest breaking one of them let bad input through to the cluster (a 422 at best).

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return f"key prefix {prefix!r}"
    if len(name) > 63 or not _NAME.match(name):
        return f"key name {name!r}"
    return None


def _label_problems(labels: dict[str, str], where: str, values: bool = True) -> list[str]:
    found = [f"{where}: {p}" for k in labels if (p := _key_problem(k))]
    if values:
        found += [
            f"{where}: value {v!r}"
            for v in labels.values()
            if v and (len(v) > 63 or not _NAME.match(v))
        ]
    return found


def pod_problems(meta: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    """What the API server would refuse in an object's metadata and its pod spec."""
    found = _label_problems(meta.get("labels") or {}, "labels")
    found += _label_problems(meta.get("annotations") or {}, "annotations", values=False)
    found += _label_problems(pod.get("nodeSelector") or {}, "nodeSelector")
    for t in pod.get("tolerations") or []:
        if t.get("operator") == "Exists" and t.get("value"):
            found.append(f"toleration {t}: value must be empty with operator Exists")
        if not t.get("key") and t.get("operator", "Equal") != "Exists":
            found.append(f"toleration {t}: an empty key needs operator Exists")
        if t.get("key") and _key_problem(t["key"]):
            found.append(f"toleration {t}: key")
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            found.append(f"toleration {t}: tolerationSeconds needs effect NoExecute")
    vols = pod.get("volumes") or []
    if len({v["name"] for v in vols}) != len(vols):
        found.append("volume names must be unique")
    for v in vols:
        ref = (
            (v.get("persistentVolumeClaim") or {}).get("claimName")
            or (v.get("secret") or {}).get("secretName")
            or (v.get("configMap") or {}).get("name")
        )
        if ref is not None and not _SUBDOMAIN.match(ref):
            found.append(f"volume {v['name']}: {ref!r} is not a valid object name")
    for c in pod.get("containers") or []:
        mounts = [m["mountPath"] for m in c.get("volumeMounts") or []]
        if len(set(mounts)) != len(mounts):
            found.append("mount paths must be unique")
        strings = [*c.get("command", []), *c.get("args", [])]
        strings += [e.get("value") or "" for e in c.get("env", [])]
        if any("\x00" in s for s in strings):
            found.append("a NUL character cannot be passed to a process")
        found += _resource_problems(c.get("resources") or {})
    return found


_SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_SUFFIX.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60})


def quantity(value: Any) -> float:
    text = str(value)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIX[suffix]
    return float(text)


def _resource_problems(resources: dict[str, Any]) -> list[str]:
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    return [
        f"{what} limit {limits[what]} is below its request {requests[what]}"
        for what in set(requests) & set(limits)
        if quantity(limits[what]) < quantity(requests[what])
    ]
