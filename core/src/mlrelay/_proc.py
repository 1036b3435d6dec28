"""Start and stop child processes by process group: what we start, we stop, and nothing else.

Every process mlrelay starts (a local trainer, a local model server, a test MLflow server) runs
in a new session, so it and all of its children form one process group that can be signalled
together. Stopping sends SIGTERM to the group, waits out a grace period, then SIGKILLs what is
left. Nothing is ever killed by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.STDOUT,
) -> subprocess.Popen[bytes]:
    """Run ``argv`` (never through a shell) as the leader of a new process group."""
    return subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def alive(pid: int) -> bool:
    """Whether a process with this id exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is still running (zombies do not count)."""
    return bool(members(pgid))


def stop_group(
    pgid: int,
    *,
    grace: float = 10.0,
    proc: subprocess.Popen[bytes] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """SIGTERM the process group ``pgid``, then SIGKILL it if it outlives ``grace`` seconds.

    ``proc``, when given, is reaped so no zombie is left behind.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = clock() + grace
    while clock() < deadline:
        if proc is not None:
            proc.poll()
        if not members(pgid):
            break
        sleep(0.05)
    if members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the group, read from /proc (Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found
