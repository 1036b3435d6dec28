"""Helpers shared by the kube tests."""

from __future__ import annotations

import time
from importlib import resources

import yaml

from mlrelay.testing.auth import Rule


def wait_for_watches(emulator, count: int = 1, timeout: float = 15.0) -> None:
    """Block until ``count`` API watches are open (robust on a loaded CI machine)."""
    deadline = time.monotonic() + timeout
    while emulator.store.open_watches < count:
        assert time.monotonic() < deadline, "the client never opened its watch"
        time.sleep(0.02)


SERVING_ROLE = resources.files("mlrelay.kube") / "manifests" / "serving-role.yaml"


def _serving_role() -> dict:
    return next(d for d in yaml.safe_load_all(SERVING_ROLE.read_text()) if d["kind"] == "Role")


def serving_role_rules(drop: tuple[str, str, str] | None = None) -> tuple[Rule, ...]:
    """The shipped serving Role as emulator rules, without the (apiGroup, resource, verb) ``drop``."""
    return tuple(
        Rule(
            verbs=tuple(
                v
                for v in r["verbs"]
                if drop is None
                or not (drop[0] in r["apiGroups"] and drop[1] in r["resources"] and drop[2] == v)
            ),
            api_groups=tuple(r["apiGroups"]),
            resources=tuple(r["resources"]),
            namespaces=("default",),
        )
        for r in _serving_role()["rules"]
    )


def every_serving_rule() -> list[tuple[str, str, str]]:
    """Each (apiGroup, resource, verb) the serving Role grants."""
    return [
        (group, resource, verb)
        for rule in _serving_role()["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]
