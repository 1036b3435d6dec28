"""``python -m mlrelay.testing --kubeconfig PATH``: run the emulator in the foreground.

Writes a kubeconfig (https, bearer token, CA embedded) so kubectl, a DAG or a flow can point at
the emulator, and serves until interrupted. ``main`` is what an ``mlrelay emulator`` CLI
subcommand calls.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from mlrelay.testing.server import default_emulator


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlrelay.testing", description=__doc__)
    parser.add_argument(
        "--kubeconfig", type=Path, required=True, help="where to write the kubeconfig"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    args = parser.parse_args(argv)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a process manager, `kill`) must stop the emulator the way Ctrl-C does, so
        # that the processes its pods started are stopped with it.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emulator = default_emulator(port=args.port)
    with emulator:
        path = emulator.write_kubeconfig(args.kubeconfig)
        print(
            f"Kubernetes emulator at {emulator.url}; kubeconfig: {path} (Ctrl-C to stop)",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
