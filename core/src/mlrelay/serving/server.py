"""The local model server process: ``python -m mlrelay.serving.server --model-dir D --name N``.

It is KServe's own REST server (data plane, V1 and V2 endpoints, error handlers, metrics) with
one difference from ``kserve.ModelServer``: the listening socket is bound here, on a loopback
address, and handed to uvicorn. ``ModelServer`` hard-codes ``0.0.0.0``, which would expose an
unauthenticated model endpoint to the whole network.

Binding comes first, before the slow imports, so a taken port fails in a fraction of a second,
and port 0 works without a race: the bound port is written to ``--port-file`` (atomically) for
the parent to read. gRPC is off and there is one worker: ``workers > 1`` never becomes ready on
small machines, and one process per version is what blue/green needs anyway.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("mlrelay.serving")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlrelay.serving.server", allow_abbrev=False)
    parser.add_argument("--model-dir", required=True, help="downloaded MLflow model directory")
    parser.add_argument("--name", required=True, help="model name on the endpoint path")
    parser.add_argument("--model-version", default=None, help="echoed in V2 responses")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", default=None, help="where to write the bound port")
    parser.add_argument("--grace", type=int, default=5, help="graceful shutdown seconds")
    args = parser.parse_args(argv)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        parser.error(
            f"--host must be a loopback address (got {args.host!r}): "
            "the local model server has no authentication"
        )
    return args


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _write_port(path: str, port: int) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_text(str(port))
    os.replace(tmp, target)


def _quiet_logging() -> None:
    """One readable line per event, and nothing per request.

    KServe logs two timing lines per request, uvicorn an access line, and FastAPI warns about a
    deprecated response class on every call: at a few hundred requests per second that logging
    costs about a third of the throughput and buries the lines that matter.
    """
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.simplefilter("ignore")


class _ClientErrorsAsWarnings(logging.Filter):
    """Log a rejected request as one WARNING line instead of KServe's ERROR with a traceback.

    A request with a missing column is the client's mistake, not the server's: a traceback per
    bad request would flood the log and hide real failures.
    """

    def __init__(self, client_errors: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.client_errors = client_errors

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.client_errors):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = f"rejected request: {exc}", None
            record.exc_info, record.exc_text = None, None
        return True


def _server_class(base: type[Any]) -> type[Any]:
    """KServe's REST server without its per-request timing middleware while nobody reads it.

    ``TimingMiddleware`` measures every request's CPU time (two ``getrusage`` calls, up to
    0.6 ms each in a sandboxed container) only to log it on ``kserve.trace``, which
    ``_quiet_logging`` turns off: a third of a single-row request's cost, for nothing. It is
    kept when ``kserve.trace`` logs at INFO.
    """

    class LoopbackRESTServer(base):  # type: ignore[misc,valid-type]
        def _add_middlewares(self, app: Any) -> None:
            if logging.getLogger("kserve.trace").isEnabledFor(logging.INFO):
                super()._add_middlewares(app)

    return LoopbackRESTServer


def main(argv: Sequence[str] | None = None) -> int:
    """Bind, load the model, serve until SIGTERM."""
    args = _parse(argv)
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"mlrelay-serving: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    if args.port_file:
        _write_port(args.port_file, port)
    # kserve.model_server parses sys.argv when imported; our flags are not its flags.
    sys.argv = sys.argv[:1]
    _quiet_logging()

    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.errors import InvalidInput, ModelNotFound
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer

    from mlrelay.serving.predictor import MLflowModel

    logging.getLogger("kserve").addFilter(_ClientErrorsAsWarnings((InvalidInput, ModelNotFound)))

    model = MLflowModel(args.name, args.model_dir, version=args.model_version)
    model.load()
    repository = ModelRepository()
    repository.update(model)
    server = _server_class(RESTServer)(
        FASTAPI_APP_IMPORT_STRING,
        DataPlane(model_registry=repository),
        ModelRepositoryExtension(model_registry=repository),
        http_port=port,
        workers=1,
        grace_period=args.grace,
    )
    log.info(
        "serving model %r (version %s) from %s on http://%s:%d",
        args.name,
        args.model_version,
        args.model_dir,
        args.host,
        port,
    )
    # Given sockets, uvicorn serves on them and ignores the host/port of its config.
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
