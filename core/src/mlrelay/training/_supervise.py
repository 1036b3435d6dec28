"""Run one trainer and record what a kubelet would: its output, line by line, and its exit status.

The local backend starts this file as ``python -I -S _supervise.py OPTIONS -- argv...`` (OPTIONS
is one JSON object, see ``Options``) as the leader of a new process group; the trainer runs as
its child, in that group. It exists so that a local job can be followed from its handle alone,
by any process, after the process that submitted it has moved on (an Airflow trigger, a second
handle, a command-line tool):

- every line the trainer prints is appended to ``log`` as it is printed, the values of the
  ``mask_env`` variables replaced by ``***``;
- when the trainer exits, what it left in the group is stopped (a container ends with its main
  process), then its exit status is written to ``result`` (JSON, atomically), after its last line;
- with ``stop_with_parent``, the trainer is stopped when the process that started this one dies,
  even by SIGKILL: a local job has no cluster to outlive its owner, and nothing may run that
  nobody owns.

SIGTERM sent to the group (a cancel) reaches the trainer directly; this process ignores it so it
can still record how the trainer ended. It imports only light standard modules and ``_proc``:
it starts before every local job, so its start-up is part of every job's overhead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import IO

if __name__ == "__main__":  # run as a file with -I -S: reach our own package by path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mlrelay._proc import members

MASK = b"***"
MIN_MASKED = 4  # shorter values would garble ordinary output and protect nothing
DRAIN = 2.0  # seconds to wait for output still in the pipe once the trainer has exited
PARENT_POLL = 0.2


class Options(TypedDict):
    log: str  # the output file
    result: str  # the exit status file (its path also identifies this process in /proc)
    mask_env: list[str]  # names of the variables whose values are secret
    grace: float  # seconds between SIGTERM and SIGKILL for what the trainer leaves behind
    stop_with_parent: bool


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: _supervise.py OPTIONS_JSON -- command [args...]")
    opts: Options = json.loads(argv[0])
    command = argv[2:]
    if os.getpgrp() != os.getpid():  # started by hand: never signal the caller's group
        os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, lambda *_: None)  # a handler (not SIG_IGN): exec resets it
    log_fd = os.open(opts["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except OSError as exc:  # vanished or lost its x bit since the backend checked it
        os.write(log_fd, f"mlrelay: cannot run {command[0]!r}: {exc.strerror}\n".encode())
        _write_result(opts["result"], exit_code=127, signal_name=None, stopped=None)
        return 0
    assert child.stdout is not None
    needles = _needles(opts["mask_env"])
    pump = threading.Thread(target=_pump, args=(child.stdout, log_fd, needles), daemon=True)
    pump.start()
    orphaned = threading.Event()
    if opts["stop_with_parent"]:
        args = (os.getppid(), child, opts["grace"], orphaned)
        threading.Thread(target=_watch_parent, args=args, daemon=True).start()

    code = child.wait()
    pump.join(DRAIN)
    _stop_leftovers(opts["grace"])  # also closes the pipe if a grandchild still held it
    pump.join(DRAIN)
    _write_result(
        opts["result"],
        exit_code=128 - code if code < 0 else code,  # the container convention: 137 = SIGKILL
        signal_name=signal.Signals(-code).name if code < 0 else None,
        stopped="parent-died" if orphaned.is_set() else None,
    )
    return 0


def _needles(names: list[str]) -> list[bytes]:
    """The secret values to mask, each line of a multi-line value too, longest first."""
    found: set[bytes] = set()
    for name in names:
        value = os.environ.get(name, "")
        for part in [value, *value.splitlines()]:
            if len(part.strip()) >= MIN_MASKED:
                found.add(part.encode())
    return sorted(found, key=len, reverse=True)


def _pump(stream: IO[bytes], log_fd: int, needles: list[bytes]) -> None:
    for line in iter(stream.readline, b""):
        for needle in needles:
            line = line.replace(needle, MASK)
        os.write(log_fd, line)


def _others() -> list[int]:
    me = os.getpid()
    return [pid for pid in members(os.getpgrp()) if pid != me]


def _stop_leftovers(grace: float) -> None:
    """SIGTERM the rest of our group (we ignore it ourselves), SIGKILL what outlives ``grace``."""
    if not _others():
        return
    os.killpg(os.getpgrp(), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _others() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _others():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _watch_parent(
    parent: int, child: subprocess.Popen[bytes], grace: float, orphaned: threading.Event
) -> None:
    """Stop the trainer once our parent is gone (we are re-parented: ``getppid`` changes)."""
    while child.poll() is None:
        if os.getppid() != parent:
            orphaned.set()
            child.terminate()
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                child.kill()
            return
        time.sleep(PARENT_POLL)


def _write_result(
    path: str, *, exit_code: int, signal_name: str | None, stopped: str | None
) -> None:
    record = {
        "exit_code": exit_code,
        "signal": signal_name,
        "stopped": stopped,
        "finished_at": time.time(),
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)  # readers see no result or a whole one


if __name__ == "__main__":
    sys.exit(main())
