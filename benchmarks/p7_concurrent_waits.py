"""P7: many deferred training tasks waiting in one triggerer: watch connections, requests, memory.

N ``TrainingJobTrigger``s (the trigger our deferrable ``TrainModelOperator`` defers to) run in
ONE asyncio event loop, as Airflow's triggerer runs them, against the Kubernetes emulator
through a ``kubernetes`` connection. The emulator runs no kubelet (N trainer processes would
swamp a 2-core machine): the benchmark plays the Job controller and ends each Job at its due
time by writing its terminal conditions through the emulator's store, which the API serves to
the waiters like any other change. The emulator's own counters say what the waiters cost:

- watch connections open at the peak, by namespace and kind (goal: at most one each);
- API requests per minute while the N tasks wait, by verb;
- the process's RSS: in all, and per waiting task (above the RSS before the triggers started);
- how long after its Job ended each trigger fired (p50, max).

    uv run --frozen python benchmarks/p7_concurrent_waits.py            # 500 waits, ~2 min
    uv run --frozen python benchmarks/p7_concurrent_waits.py --quick    # 20 waits, < 60 s
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, parser, result, summary, versions

NAMESPACE = "default"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024.0


def create_jobs(emu: Any, count: int) -> list[dict[str, Any]]:
    """``count`` Jobs as our backend creates them (its manifest), straight into the store."""
    from mlrelay.testing.kinds import JOBS
    from mlrelay.training import RunContext, TrainingJob, manifests

    handles = []
    for i in range(count):
        job = TrainingJob(
            name=f"p7-{i:04d}", image="python:3.11", command=["python", "-c", "pass"],
            experiment="p7",
        )  # fmt: skip
        run = RunContext(
            run_id=f"{i:032x}", experiment_id="0", experiment_name="p7",
            tracking_uri="http://127.0.0.1:9",
        )  # fmt: skip
        emu.store.create(JOBS, manifests.batch_job(job, run, job.name, None), NAMESPACE)
        handles.append(
            {
                "backend": "kubernetes", "job_name": job.name, "run_id": run.run_id,
                "experiment_id": "0", "tracking_uri": "http://127.0.0.1:9",
                "namespace": NAMESPACE, "submitted_at": datetime.now(UTC).isoformat(),
            }
        )  # fmt: skip
    return handles


def complete(emu: Any, name: str) -> None:
    """What the Job controller writes when a Job's pods have succeeded."""
    from mlrelay.testing.kinds import JOBS

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = {"status": "True", "lastTransitionTime": now, "lastProbeTime": now}
    emu.store.update_status(
        JOBS, NAMESPACE, name,
        {
            "startTime": now, "completionTime": now, "succeeded": 1, "active": 0,
            "conditions": [
                {"type": "SuccessCriteriaMet", "reason": "CompletionsReached", **done},
                {"type": "Complete", "reason": "CompletionsReached", **done},
            ],
        },
    )  # fmt: skip


def trigger_for(handle: dict[str, Any], relist: float) -> Any:
    """The trigger ``TrainModelOperator(deferrable=True)`` defers to, for the job of ``handle``."""
    from airflow_mlrelay.triggers.training import TrainingJobTrigger

    return TrainingJobTrigger(
        handle=handle, backend="kubernetes", kubernetes_conn_id="kubernetes_default",
        backend_options={"relist_interval": relist},
    )  # fmt: skip


def run(count: int, window: float, relist: float, seed: int) -> dict[str, Any]:
    from mlrelay.testing.server import default_emulator

    rnd = random.Random(seed)
    samples: list[tuple[float, float, int]] = []  # (time, RSS MB, threads)
    with tempfile.TemporaryDirectory() as tmp, default_emulator(cluster=False) as emu:
        config = emu.write_kubeconfig(Path(tmp) / "kubeconfig")
        extra = {"kube_config_path": str(config)}
        os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(
            {"conn_type": "kubernetes", "extra": extra}
        )
        warm, *handles = create_jobs(emu, count + 1)
        # One trigger first, so that RSS "before" includes what any first wait imports.
        complete(emu, warm["job_name"])
        asyncio.run(anext(trigger_for(warm, relist).run()))
        deadline = time.monotonic() + 10  # its watches close as it ends: not counted below
        while +emu.counter.watches_open and time.monotonic() < deadline:
            time.sleep(0.05)
        rss_before, threads_before = rss_mb(), threading.active_count()
        due = {h["job_name"]: window * (0.5 + 0.5 * rnd.random()) for h in handles}
        ended: dict[str, float] = {}
        fired: dict[str, float] = {}
        stop = threading.Event()

        def controller(start: float) -> None:
            for name, at in sorted(due.items(), key=lambda kv: kv[1]):
                if stop.wait(max(0.0, start + at - time.monotonic())):
                    return
                ended[name] = time.monotonic()
                complete(emu, name)

        def sampler() -> None:
            while not stop.wait(0.25):
                samples.append((time.monotonic(), rss_mb(), threading.active_count()))

        async def one(trigger: Any, name: str) -> dict[str, Any]:
            event = await anext(trigger.run())
            fired[name] = time.monotonic()
            return dict(event.payload)

        async def main() -> list[dict[str, Any]]:
            triggers = [trigger_for(h, relist) for h in handles]
            emu.counter.reset()
            start = time.monotonic()
            threading.Thread(target=controller, args=(start,), daemon=True).start()
            tasks = [one(t, h["job_name"]) for t, h in zip(triggers, handles, strict=True)]
            return await asyncio.gather(*tasks)

        threading.Thread(target=sampler, daemon=True).start()
        started, cpu = time.monotonic(), time.process_time()
        payloads = asyncio.run(main())
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        stop.set()
        counts = emu.counter.snapshot()
        peaks = dict(emu.counter.watches_peak)
    first_end = min(ended.values())
    waiting = [s for s in samples if s[0] < first_end]  # every task still waiting
    peak_rss = max((s[1] for s in waiting), default=rss_mb())
    by_verb: dict[str, int] = {}
    for (verb, _ns, plural), n in counts.items():
        by_verb[f"{verb} {plural}"] = by_verb.get(f"{verb} {plural}", 0) + n
    succeeded = sum(1 for p in payloads if (p.get("status") or {}).get("state") == "Succeeded")
    lag = [fired[n] - ended[n] for n in fired if n in ended]
    return {
        "waits": count,
        "succeeded": succeeded,
        "window_s": round(elapsed, 1),
        "watch_connections_peak": {f"{ns}/{plural}": n for (ns, plural), n in peaks.items()},
        "requests": sum(counts.values()),
        "requests_per_min": round(sum(counts.values()) * 60.0 / elapsed, 1),
        "requests_per_waiting_job": round(sum(counts.values()) / count, 3),
        "requests_by_verb": dict(sorted(by_verb.items())),
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_peak_waiting": round(peak_rss, 1),
        "rss_kb_per_waiting_job": round((peak_rss - rss_before) * 1024.0 / count, 1),
        "cpu_s": round(cpu, 1),
        "threads_before": threads_before,
        "threads_peak_waiting": max((s[2] for s in waiting), default=0),
        "event_after_job_end_s": summary(lag, 3) if lag else None,
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--waits", type=int, default=500)
    p.add_argument("--window", type=float, default=60.0, help="Jobs end between 1/2 and 1 of it")
    p.add_argument("--relist", type=float, default=300.0, help="the backends' relist_interval")
    args = p.parse_args()
    count, window = (20, 8.0) if args.quick else (args.waits, args.window)
    logging.basicConfig(level=logging.WARNING)
    for name in ("airflow", "mlrelay"):
        logging.getLogger(name).setLevel(logging.WARNING)
    figures = run(count, window, args.relist, seed=7)
    worst = max(figures["watch_connections_peak"].values(), default=0)
    met = worst <= 1 and figures["succeeded"] == count
    title = f"{count} concurrent waits (TrainingJobTrigger) in one event loop"
    goal = "<= 1 watch connection per namespace and kind; report RSS per waiting job"
    label = "peak watch connections per namespace and kind (goal 1)"
    compared = versions("apache-airflow", "mlrelay", "airflow-provider-mlrelay", "kubernetes")
    p7 = result(
        "P7", title, goal, met=met, ratio=float(worst), ratio_label=label, figures=figures,
        versions=compared, quick=args.quick,
    )  # fmt: skip
    emit(args, [p7])
    sys.exit(0 if figures["succeeded"] == count else 1)


if __name__ == "__main__":
    main()
