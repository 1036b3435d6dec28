"""``make chaos``: the example pipeline through each adapter under kills, retries and API faults.

    python -m chaos.run --runs 100 --adapters airflow,prefect,dagster --seed 7 --json chaos.json

Starts the world (:mod:`chaos.world`), draws a plan per run (:mod:`chaos.plan`), runs each
adapter's runs one after another in child processes (adapters side by side, at most
``--parallel`` children at once; :mod:`chaos.execute`), then lets the cluster settle and checks
that nothing is orphaned, duplicated, unexplained or promoted past the gate
(:mod:`chaos.checks`). Prints a table, writes the JSON summary, and exits 1 if a check found
anything. Everything it started is stopped on the way out, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from chaos import checks
from chaos.execute import Executor, Outcome, Stopped
from chaos.plan import make_plans
from chaos.world import ROOT, World

ADAPTERS = ("airflow", "prefect", "dagster")
# Seconds a run takes per adapter, three side by side on the busy 2-core machine (measured
# medians; a first run, which starts the model server, takes ~1.5x). A kill lands uniformly
# within this, a stream fault fires within it.
DURATIONS = {"airflow": 60.0, "prefect": 45.0, "dagster": 50.0}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100, help="runs per adapter")
    p.add_argument("--adapters", default=",".join(ADAPTERS))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--parallel", type=int, default=2, help="child processes at once")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before a run hangs")
    p.add_argument(
        "--only", choices=["clean", "fault", "kill", "both"], help="every run this action"
    )
    p.add_argument("--json", type=Path, help="write the summary here")
    p.add_argument("--workdir", type=Path, help="keep the world's files here (default: a temp dir)")
    return p.parse_args(argv)


def training_set(folder: Path) -> Path:
    """The example's transactions (2,000 rows): the trainer also trains on the plain file."""
    import runpy

    generate = runpy.run_path(str(ROOT / "examples" / "data" / "generate.py"))
    return Path(generate["write"](folder, rows=2000)["transactions"])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    adapters = [a.strip() for a in args.adapters.split(",") if a.strip()]
    unknown = set(adapters) - set(ADAPTERS)
    if unknown:
        raise SystemExit(f"unknown adapters: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    started = time.monotonic()
    plans = make_plans(adapters, args.runs, args.seed, DURATIONS, args.only)
    outcomes: list[Outcome] = []
    with World(adapters, args.workdir) as world:
        assert world.emulator is not None
        executor = Executor(
            world.env, world.emulator.faults, world.dir, training_set(world.dir / "data"),
            timeout=args.timeout, parallel=args.parallel,
        )  # fmt: skip
        setup = time.monotonic() - started
        print(f"chaos: world up in {setup:.0f}s at {world.dir}", flush=True)
        listeners: set[str] = set()
        try:
            _run_all(executor, plans, outcomes, listeners)
            checks.settle(world.emulator)
            summary = _summary(args, adapters, outcomes, world, sorted(listeners))
        finally:
            executor.stop()  # a Ctrl-C or SIGTERM mid-run leaves children: stop them
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    summary["setup_seconds"] = round(setup, 1)
    _print(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["zeros"] else 1


def _run_all(
    executor: Executor, plans: list[Any], outcomes: list[Outcome], listeners: set[str]
) -> None:
    lock = threading.Lock()
    done = threading.Event()

    def sample_listeners() -> None:
        while not done.wait(5.0):
            listeners.update(checks.exposed_listeners())

    def worker(mine: list[Any]) -> None:
        for plan in mine:
            try:
                outcome = executor.run(plan)
            except Stopped:
                return
            with lock:
                outcomes.append(outcome)
            reason = outcome.failures[0]["type"] if outcome.failures else ""
            print(
                f"  {plan.key:<18} {plan.action:<5} {outcome.status:<9} {outcome.seconds:6.1f}s "
                f"attempts={outcome.attempts} {plan.signal or ''} {','.join(plan.faults)} "
                f"{reason}",
                flush=True,
            )

    by_adapter: dict[str, list[Any]] = {}
    for plan in plans:
        by_adapter.setdefault(plan.adapter, []).append(plan)
    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in by_adapter.values()]
    sampler = threading.Thread(target=sample_listeners, daemon=True)
    sampler.start()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=1.0)  # joinable by Ctrl-C
    finally:
        done.set()


def _summary(
    args: argparse.Namespace, adapters: list[str], outcomes: list[Outcome], world: World,
    listeners: list[str],
) -> dict[str, Any]:  # fmt: skip
    assert world.emulator is not None
    rows = [o.as_dict() for o in outcomes]
    models = [f"chaos-{a}" for a in adapters]
    leftovers = [f"{o['key']}: {p}" for o in rows for p in o["leftovers"]]
    allowed = world.server_groups()
    stray = checks.stray_processes(allowed, checks.live_pids(world.emulator))
    found = {
        "orphans": checks.orphans(world.emulator, world.mlflow_uri, models) + leftovers + stray,
        "duplicates": checks.duplicates(world.mlflow_uri, models),
        "unexplained": checks.unexplained(rows),
        "bad_aliases": checks.bad_aliases(world.mlflow_uri, models),
        "listeners": listeners + checks.exposed_listeners(),
    }
    per_adapter = {}
    for adapter in adapters:
        mine = [o for o in rows if o["adapter"] == adapter]
        clean = [o["first_attempt_seconds"] for o in mine if o["action"] == "clean"]
        per_adapter[adapter] = {
            "runs": len(mine),
            "succeeded": sum(o["status"] == "succeeded" for o in mine),
            "failed": sum(o["status"] != "succeeded" for o in mine),
            "kills": sum(o["signal"] is not None for o in mine),
            "kills_landed": sum(o["killed"] for o in mine),
            "retries": sum(o["attempts"] - 1 for o in mine),
            "fault_runs": sum(bool(o["faults"]) for o in mine),
            "clean_run_seconds_median": round(statistics.median(clean), 1) if clean else None,
            "run_seconds_median": round(statistics.median(o["seconds"] for o in mine), 1)
            if mine
            else None,
        }
    armed = Counter(k for o in rows for k in o["faults"])
    fired: Counter[str] = Counter()
    for o in rows:
        fired.update(o["fired"])
    reasons = Counter(
        (o["failures"][0]["type"] if o["failures"] else "") or f"{o['status']} (no reason)"
        for o in rows
        if o["status"] != "succeeded"
    )
    return {
        "seed": args.seed,
        "runs_per_adapter": args.runs,
        "parallel": args.parallel,
        "adapters": per_adapter,
        "kills": {
            "SIGTERM": sum(o["signal"] == "SIGTERM" and o["killed"] for o in rows),
            "SIGKILL": sum(o["signal"] == "SIGKILL" and o["killed"] for o in rows),
            "missed": sum(o["signal"] is not None and not o["killed"] for o in rows),
            "SIGTERM escalated to SIGKILL": sum(o["escalated"] for o in rows),
        },
        "faults_armed": dict(sorted(armed.items())),
        "faults_fired": dict(sorted(fired.items())),
        "failures_by_reason": dict(reasons.most_common()),
        "checks": {name: len(items) for name, items in found.items()},
        "findings": found,
        "zeros": not any(found.values()),
        "world": world.describe(),
        "runs": rows,
    }


def _print(summary: dict[str, Any]) -> None:
    cols = ["runs", "succeeded", "failed", "kills", "kills_landed", "retries", "fault_runs",
            "clean_run_seconds_median", "run_seconds_median"]  # fmt: skip
    print("\nadapter  " + " ".join(f"{c[:14]:>14}" for c in cols))
    for adapter, row in summary["adapters"].items():
        print(f"{adapter:<8} " + " ".join(f"{row[c]!s:>14}" for c in cols))
    print(f"kills: {summary['kills']}")
    print(f"faults armed: {summary['faults_armed']}")
    print(f"faults fired: {summary['faults_fired']}")
    print(f"failures by reason: {summary['failures_by_reason']}")
    print(f"checks (must be zeros): {summary['checks']}")
    for name, items in summary["findings"].items():
        for item in items:
            print(f"  {name}: {item}")
    print(f"wall: {summary['wall_seconds']}s (setup {summary['setup_seconds']}s)")


if __name__ == "__main__":
    sys.exit(main())
