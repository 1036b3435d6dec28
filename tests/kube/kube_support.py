"""Helpers shared by the kube tests."""

from __future__ import annotations

import time


def wait_for_watches(emulator, count: int = 1, timeout: float = 15.0) -> None:
    """Block until ``count`` API watches are open (robust on a loaded CI machine)."""
    deadline = time.monotonic() + timeout
    while emulator.store.open_watches < count:
        assert time.monotonic() < deadline, "the client never opened its watch"
        time.sleep(0.02)
