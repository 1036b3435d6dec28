"""How fast ``train()`` on the Kubernetes backend notices a Job's end, and what waiting costs.

Against the emulator (in-process API server, kubelet running pods as processes) and a SQLite
MLflow store:

- completion latency: from the moment the Job controller writes the terminal condition
  (``SuccessCriteriaMet``, seen through the store's own event stream) to ``train()`` returning,
  over N jobs: p50, min, max;
- API requests per minute of waiting: every request our client made while one job slept for
  ``--wait`` seconds (watch streams, re-lists and log streams included), scaled to a minute.

    uv run python benchmarks/train_wait.py            # 20 jobs, a 60-second wait
    uv run python benchmarks/train_wait.py --quick    # 3 jobs, a 5-second wait
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlrelay.settings import KubernetesSettings, MLflowSettings
from mlrelay.testing.server import default_emulator
from mlrelay.training import TrainingJob, train
from mlrelay.training.kubernetes import KubernetesJobBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 jobs, 5 s wait")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--wait", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    jobs, wait = (3, 5.0) if args.quick else (args.jobs, args.wait)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, default_emulator(bookmark_interval=1.0) as emu:
        config = emu.write_kubeconfig(Path(tmp) / "kubeconfig")
        mlflow = MLflowSettings(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        backend = KubernetesJobBackend(KubernetesSettings(kubeconfig=config))
        ended: dict[str, float] = {}

        def on_event(event) -> None:  # the controller's write of the terminal condition
            conditions = (event.object.get("status") or {}).get("conditions") or []
            if any(c["type"] == "SuccessCriteriaMet" for c in conditions):
                ended.setdefault(event.object["metadata"]["name"], time.monotonic())

        emu.store.subscribe(on_event, kinds=["jobs"])
        latencies = []
        for i in range(jobs):
            job = TrainingJob(
                name=f"bench-{i}",
                image="python:3.11",
                command=["python", "-c", "print(1)"],
                experiment="bench",
            )
            train(job, backend, settings=mlflow)
            latencies.append(time.monotonic() - ended[job.name])
        before = backend.kube.requests
        job = TrainingJob(name="bench-wait", image="python:3.11", experiment="bench",
                          command=["python", "-c", f"import time; time.sleep({wait})"])  # fmt: skip
        started = time.monotonic()
        train(job, backend, settings=mlflow)
        waited = time.monotonic() - started
        per_minute = (backend.kube.requests - before) * 60.0 / waited
    figures = {
        "jobs": jobs,
        "completion_to_return_p50_s": round(statistics.median(latencies), 3),
        "completion_to_return_min_s": round(min(latencies), 3),
        "completion_to_return_max_s": round(max(latencies), 3),
        "waited_s": round(waited, 1),
        "api_requests_per_waiting_minute": round(per_minute, 1),
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
