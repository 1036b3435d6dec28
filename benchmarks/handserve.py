"""A hand-written KServe model server for one MLflow model directory, without mlrelay (P5's peer).

What a user writes to serve a downloaded MLflow pyfunc with the KServe model server: a
``kserve.Model`` that loads it and predicts on the V2 request's named columns, and KServe's REST
server on a socket bound to 127.0.0.1 (``kserve.ModelServer`` would bind 0.0.0.0). The bound
port is printed as ``PORT <n>`` on stdout.

Run: ``python benchmarks/handserve.py MODEL_DIR NAME``.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any


def main() -> None:
    model_dir, name = sys.argv[1], sys.argv[2]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    sys.argv = sys.argv[:1]  # kserve.model_server parses sys.argv at import

    import kserve
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer
    from kserve.utils.utils import get_predict_response

    class PyfuncModel(kserve.Model):  # type: ignore[misc]
        def load(self) -> bool:
            self.pyfunc = mlflow.pyfunc.load_model(model_dir)
            self.ready = True
            return True

        def predict(self, payload: Any, headers: Any = None) -> Any:
            columns = {}
            for tensor in payload.inputs:
                values = tensor.as_numpy().reshape(-1)
                if tensor.datatype == "BYTES":
                    values = np.array(
                        [v.decode() if isinstance(v, bytes) else v for v in values], dtype=object
                    )
                columns[tensor.name] = values
            result = self.pyfunc.predict(pd.DataFrame(columns))
            return get_predict_response(payload, np.asarray(result), self.name)

    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    model = PyfuncModel(name)
    model.load()
    repository = ModelRepository()
    repository.update(model)
    RESTServer(
        FASTAPI_APP_IMPORT_STRING,
        DataPlane(model_registry=repository),
        ModelRepositoryExtension(model_registry=repository),
        http_port=sock.getsockname()[1],
        workers=1,
    ).run(sockets=[sock])


if __name__ == "__main__":
    main()
