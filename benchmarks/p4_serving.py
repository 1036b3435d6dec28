"""P4: single-row serving throughput, our local KServe deployment vs ``mlflow models serve``.

One registered model version (the example's scikit-learn pipeline, trained on the generated card
transactions and logged with MLflow) is served twice at the same time on 127.0.0.1:

- ours: ``LocalServingBackend.deploy`` (the KServe model server, one worker, V2 ``/infer``);
- the peer: ``mlflow models serve -m models:/<name>/<version> --env-manager local`` with its
  default worker count (1 uvicorn worker, per ``mlflow models serve --help``), answering the
  ``/invocations`` ``dataframe_split`` payload.

The same client (``benchmarks/loadgen.py``, a separate process: fixed concurrency, fixed duration,
kept-alive connections) sends the same row to each, in alternating rounds so drift on a noisy
machine hits both. Both answers are checked to be the same prediction before any load.
Reported: requests/s and p50/p99 latency per side (median over rounds, with min/max), and the
ratio ours/peer of the median requests/s (higher is better; goal >= 3x).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, parser, result, summary, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL = "p4-fraud"
FEATURES = ["amount", "hour", "is_online", "merchant_category"]


def _load_module(path: Path, name: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def register_model(settings: Any, local: Any) -> tuple[Any, dict[str, Any]]:
    """Train the example pipeline on generated data, log and register it; return (ref, row)."""
    import mlflow

    from mlrelay import _mlflow
    from mlrelay.registry.spec import ModelVersionRef

    generate = _load_module(ROOT / "examples" / "data" / "generate.py", "fraud_generate")
    train = _load_module(ROOT / "examples" / "training" / "train.py", "fraud_train")
    tx, _ = generate.generate(rows=5000)
    X, y = tx[FEATURES], tx["is_fraud"]
    args = train.parse_args(["--training-set", "unused.parquet"])
    pipeline = train.build_pipeline(args, ["amount", "hour", "is_online"]).fit(X, y)

    client = _mlflow.client(settings)
    experiment = _mlflow.ensure_experiment(client, "p4-serving", local)
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            input_example=X.head(5),
            pip_requirements=train.PIP_REQUIREMENTS,
            skops_trusted_types=train.SKOPS_TRUSTED_TYPES["logreg"],
        )
    version = mlflow.register_model(info.model_uri, MODEL)
    ref = ModelVersionRef(name=MODEL, version=str(version.version), source=version.source)
    first = X.iloc[0]
    row = {
        "amount": float(first.amount),
        "hour": int(first.hour),
        "is_online": int(first.is_online),
        "merchant_category": str(first.merchant_category),
    }
    return ref, row


def bodies(row: dict[str, Any]) -> tuple[bytes, bytes]:
    """The same row as a V2 inference request (ours) and a ``dataframe_split`` (MLflow)."""
    types = {"amount": "FP64", "hour": "INT64", "is_online": "INT64", "merchant_category": "BYTES"}
    v2 = {
        "inputs": [{"name": k, "shape": [1], "datatype": types[k], "data": [row[k]]} for k in row]
    }
    split = {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}
    return json.dumps(v2).encode(), json.dumps(split).encode()


def start_peer(model_uri: str, tracking_uri: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    from mlrelay import _proc

    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_DISABLE_TELEMETRY="true")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # it runs `uvicorn` from PATH
    argv = [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri]
    argv += ["-h", "127.0.0.1", "-p", str(port), "--env-manager", "local"]
    with open(log, "ab") as out:
        return _proc.spawn(argv, env=env, stdout=out.fileno(), stderr=subprocess.STDOUT)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the peer server exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def predict_once(url: str, body: bytes) -> Any:
    import httpx

    response = httpx.post(
        url, content=body, headers={"Content-Type": "application/json"}, trust_env=False
    )
    response.raise_for_status()
    answer = response.json()
    return answer["outputs"][0]["data"] if "outputs" in answer else answer["predictions"]


def load(url: str, body: bytes, work: Path, *, concurrency: int, duration: float) -> dict[str, Any]:
    """One round of load from a separate client process."""
    body_file = work / f"body-{abs(hash(body))}.json"
    body_file.write_bytes(body)
    argv = [sys.executable, str(HERE / "loadgen.py"), url, str(body_file)]
    argv += ["--concurrency", str(concurrency), "--duration", str(duration)]
    argv += ["--warmup", str(min(2.0, duration / 4))]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=duration + 120)
    return json.loads(out.stdout)


def side(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": summary(r["rps"] for r in rounds),
        "p50_ms": summary(r["p50_ms"] for r in rounds),
        "p99_ms": summary(r["p99_ms"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--duration", type=float, default=None, help="measured seconds per round")
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 10.0)

    with tempfile.TemporaryDirectory(prefix="mlrelay-p4-") as tmp:
        work = Path(tmp)
        os.environ["MLRELAY_HOME"] = str(work / "home")
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # our own store, always
            os.environ.pop(var, None)
        from mlrelay import _mlflow, _proc
        from mlrelay.serving.local import LocalServingBackend
        from mlrelay.serving.spec import DeploymentSpec
        from mlrelay.settings import LocalSettings

        local = LocalSettings()
        settings = _mlflow.resolve(None, local)
        ref, row = register_model(settings, local)
        ours_body, peer_body = bodies(row)
        backend = LocalServingBackend(settings=settings, local=local)
        port = free_port()
        peer = start_peer(ref.uri, settings.tracking_uri or "", port, work / "peer.log")
        peer_url = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            deployment = backend.deploy(DeploymentSpec(name=MODEL, model=ref))
            ours_ready = time.monotonic() - started
            wait_http(f"{peer_url}/ping", peer)
            peer_ready = time.monotonic() - started
            ours_url = f"{deployment.url}/v2/models/{MODEL}/infer"
            peer_infer = f"{peer_url}/invocations"
            same = predict_once(ours_url, ours_body) == predict_once(peer_infer, peer_body)
            if not same:
                raise AssertionError("the two servers disagree on the same row")
            ours: list[dict[str, Any]] = []
            theirs: list[dict[str, Any]] = []
            for i in range(rounds):
                order = [("ours", ours_url, ours_body), ("peer", peer_infer, peer_body)]
                for who, url, body in order if i % 2 == 0 else order[::-1]:
                    got = load(url, body, work, concurrency=args.concurrency, duration=duration)
                    (ours if who == "ours" else theirs).append(got)
                    print(f"round {i + 1} {who}: {got}", file=sys.stderr)
        finally:
            backend.undeploy(MODEL)
            _proc.stop_group(peer.pid, proc=peer)

    mine, peers = side(ours), side(theirs)
    ratio = mine["rps"]["p50"] / peers["rps"]["p50"] if peers["rps"]["p50"] else None
    errors = mine["errors"] + peers["errors"]
    figures = {
        "ours": mine,
        "peer": peers,
        "concurrency": args.concurrency,
        "duration_s": duration,
        "rounds": rounds,
        "workers": {"ours": 1, "peer": 1},
        "startup_s": {"ours_deploy": round(ours_ready, 2), "peer_ready": round(peer_ready, 2)},
        "same_prediction": same,
        "peer_command": "mlflow models serve -m models:/NAME/VERSION -h 127.0.0.1 -p PORT "
        "--env-manager local (default workers: 1)",
    }
    emit(
        args,
        [
            result(
                "P4",
                "Local serving: single-row requests/s, our KServe deployment vs mlflow models serve",
                ">= 3x requests/s",
                met=ratio is not None and not errors and ratio >= 3.0,
                ratio=ratio,
                ratio_label="ours / peer (requests/s)",
                figures=figures,
                versions=versions("mlrelay", "kserve", "mlflow", "uvicorn", "scikit-learn"),
                quick=args.quick,
                higher_is_better=True,
            )
        ],
    )


if __name__ == "__main__":
    main()
