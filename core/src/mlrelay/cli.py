"""The ``mlrelay`` command: the demo pipeline, local endpoints, and lineage trails.

    mlrelay demo [--no-keep] [--workdir DIR] [--examples DIR]
    mlrelay serve list
    mlrelay serve stop NAME
    mlrelay lineage ENDPOINT_OR_MODEL      (an endpoint name, NAME/VERSION, NAME@ALIAS or models:/...)
    mlrelay emulator --kubeconfig PATH     a Kubernetes API emulator in the foreground

Heavy libraries are imported by the subcommand that needs them, so ``mlrelay --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mlrelay.errors import MLRelayError


def _setup_logging(verbose: bool) -> None:
    import warnings

    # Deprecation notices of the libraries underneath are for their maintainers, not our users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # Libraries underneath are chatty at INFO; their warnings still show.
    for noisy in ("alembic", "mlflow", "great_expectations", "feast", "kserve", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlrelay.demo import DemoOptions, run

    run(
        DemoOptions(
            examples=args.examples,
            workdir=args.workdir,
            keep=not args.no_keep,
            rows=args.rows,
            port=args.port,
        )
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlrelay.serving import list_deployments, undeploy
    from mlrelay.serving.local import LocalServingBackend

    backend = LocalServingBackend()
    if args.serve_cmd == "list":
        deployments = list_deployments(backend)
        if not deployments:
            print("no local deployments are running")
        for d in deployments:
            print(f"{d.name}\t{d.model_name} v{d.model_version}\t{d.url}\tpid {d.pid}")
        return 0
    undeploy(args.name, backend)
    print(f"stopped {args.name}")
    return 0


def _cmd_lineage(args: argparse.Namespace) -> int:
    from mlrelay.lineage_trail import render, trail

    found = trail(args.target)
    print(json.dumps(found, indent=2, default=str) if args.json else render(found))
    return 0


def _cmd_emulator(args: argparse.Namespace) -> int:
    from mlrelay.testing.__main__ import main as emulator_main

    return emulator_main(["--kubeconfig", str(args.kubeconfig), "--port", str(args.port)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlrelay", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the card-fraud pipeline end to end on local backends")
    demo.add_argument(
        "--examples",
        type=Path,
        default=Path("examples"),
        help="the repository's examples folder (default: ./examples)",
    )
    demo.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where data, training set and reports go (default: $MLRELAY_HOME/demo)",
    )
    demo.add_argument("--no-keep", action="store_true", help="stop the endpoint at the end")
    demo.add_argument("--rows", type=int, default=5000, help="transactions to generate")
    demo.add_argument("--port", type=int, default=None, help="endpoint port (default: a free one)")
    demo.set_defaults(func=_cmd_demo)

    serve = sub.add_parser("serve", help="local endpoints started by `mlrelay demo` or deploy()")
    serve_sub = serve.add_subparsers(dest="serve_cmd", required=True)
    serve_sub.add_parser("list", help="list running local endpoints")
    stop = serve_sub.add_parser("stop", help="stop a local endpoint")
    stop.add_argument("name")
    serve.set_defaults(func=_cmd_serve)

    lineage = sub.add_parser("lineage", help="endpoint -> model version -> run -> job -> dataset")
    lineage.add_argument("target", help="endpoint name, NAME/VERSION, NAME@ALIAS or models:/...")
    lineage.add_argument("--json", action="store_true", help="print JSON")
    lineage.set_defaults(func=_cmd_lineage)

    emulator = sub.add_parser("emulator", help="run the Kubernetes API emulator until interrupted")
    emulator.add_argument("--kubeconfig", type=Path, required=True, help="where to write it")
    emulator.add_argument("--port", type=int, default=0, help="default: a free port")
    emulator.set_defaults(func=_cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except MLRelayError as e:
        print(f"mlrelay: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlrelay: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
