"""Run every benchmark script, merge their results, write the table and the chart (``make bench``).

Each ``benchmarks/p<N>_*.py`` runs in its own process with ``--out`` into a temporary file
(``--quick`` is passed through), one after the other so they do not compete for the two cores.
A script that fails, times out or writes no valid JSON is reported as such in the table; the
others still run. The merged results, with the machine they ran on, go to
``benchmarks/results/<date>.json``; the table goes into ``benchmarks/README.md`` between the
``results`` markers, and a bar chart of the ratios against their goals to
``benchmarks/results/<date>.png``. A ``--quick`` run writes ``<date>-quick.*`` and leaves the
README alone unless ``--readme`` names one.

Run: ``uv run --frozen python benchmarks/run.py [--quick] [--only P4,P6]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START, END = "<!-- results:start -->", "<!-- results:end -->"
# The ratio each goal sets (the chart's goal line), where the goal text alone is not a ratio.
GOAL_RATIOS = {"P1": 1.05, "P2": 0.1, "P3": 0.1, "P4": 3.0, "P5": 1.10, "P6": 1.05}


def scripts(folder: Path = HERE) -> list[Path]:
    """The benchmark scripts, in measure order (``p1_...``, ``p2_p3_...``, ... ``p7_...``)."""
    return sorted(folder.glob("p[0-9]*_*.py"), key=lambda p: (_number(p.name), p.name))


def _number(name: str) -> int:
    match = re.match(r"p(\d+)", name)
    return int(match.group(1)) if match else 0


def run_script(
    script: Path, out: Path, *, quick: bool, timeout: float, log: Path
) -> dict[str, Any]:
    """Run one script; return how it went (``status``, ``seconds``, ``error``)."""
    argv = [sys.executable, str(script), "--out", str(out)] + (["--quick"] if quick else [])
    started = time.perf_counter()
    status, error = "ok", None
    with open(log, "wb") as sink:
        try:
            # Its own session: a timed-out script's server children go down with it.
            proc = subprocess.Popen(
                argv, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(proc)
                status, error = "timeout", f"no result after {timeout:.0f} s"
            else:
                if code != 0:
                    status, error = "failed", f"exit code {code}: {_tail(log)}"
        except OSError as exc:
            status, error = "failed", str(exc)
    seconds = time.perf_counter() - started
    if status == "ok":
        try:
            entries = json.loads(out.read_text())
            check(entries)
        except (OSError, ValueError) as exc:
            status, error = "bad output", str(exc)
    return {"script": script.name, "status": status, "seconds": round(seconds, 1), "error": error}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])[-400:]


def check(entries: object) -> list[dict[str, Any]]:
    """The contract of ``benchmarks/common.py``: a list of results with id, figures, ratio."""
    if not isinstance(entries, list) or not entries:
        raise ValueError("expected a non-empty JSON list of results")
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"a result is not an object: {entry!r}")
        missing = {"id", "title", "goal", "met", "ratio", "figures", "versions"} - set(entry)
        if missing:
            raise ValueError(f"result {entry.get('id')!r} lacks {sorted(missing)}")
        if not re.fullmatch(r"P\d+", str(entry["id"])):
            raise ValueError(f"bad id {entry['id']!r}")
        ratio = entry["ratio"]
        if ratio is not None and not isinstance(ratio, int | float):
            raise ValueError(f"{entry['id']}: ratio is not a number: {ratio!r}")
        if not isinstance(entry["figures"], dict) or not entry["figures"]:
            raise ValueError(f"{entry['id']}: no figures")
    return entries  # type: ignore[return-value]


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def merge(runs: list[dict[str, Any]], outputs: dict[str, Path], *, quick: bool) -> dict[str, Any]:
    """One document: the machine, how each script went, and every script's results."""
    results: list[dict[str, Any]] = []
    for run in runs:
        out = outputs.get(run["script"])
        if run["status"] == "ok" and out is not None:
            for entry in check(json.loads(out.read_text())):
                results.append({**entry, "script": run["script"], "script_seconds": run["seconds"]})
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "scripts": runs,
        "results": sorted(results, key=lambda r: _number(r["id"].lower())),
    }


def goal_ratio(entry: dict[str, Any]) -> float | None:
    """The ratio the goal sets, for the chart's goal line (None when it is not a ratio)."""
    if isinstance(entry.get("figures", {}).get("goal_ratio"), int | float):
        return float(entry["figures"]["goal_ratio"])
    if entry["id"] in GOAL_RATIOS:
        return GOAL_RATIOS[entry["id"]]
    match = re.search(r"[<>]=\s*([\d.]+)\s*x", entry.get("goal", ""))
    return float(match.group(1)) if match else None


def _verdict(met: object) -> str:
    return {True: "met", False: "**missed**"}.get(met, "n/a")  # type: ignore[call-overload]


def table(doc: dict[str, Any]) -> str:
    """The Markdown summary: one row per measure, then one per script that gave no result."""
    m = doc["machine"]
    lines = [
        f"Run of {doc['generated_at']}{' (quick smoke run)' if doc['quick'] else ''} on "
        f"{m['cores']} cores, {m['ram_gb']} GB RAM, Python {m['python']}.",
        "",
        "| id | measure | ratio | goal | verdict | script time |",
        "|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.3g} ({r.get('ratio_label', '')})"
        lines.append(
            f"| {r['id']} | {r['title']} | {ratio} | {r['goal']} | {_verdict(r['met'])} "
            f"| {r['script_seconds']:.0f} s |"
        )
    for run in doc["scripts"]:
        if run["status"] != "ok":
            error = (run["error"] or "").replace("|", "/")
            lines.append(
                f"| {run['script']} | (no result) | n/a | n/a | **{run['status']}**: {error} "
                f"| {run['seconds']:.0f} s |"
            )
    return "\n".join(lines)


def update_readme(readme: Path, text: str, chart: Path | None) -> None:
    """Replace what is between the markers (append the markers if the README has none)."""
    body = text
    if chart is not None:
        rel = os.path.relpath(chart, readme.parent)
        body += f"\n\n![ratios against their goals]({rel})"
    block = f"{START}\n{body}\n{END}"
    current = readme.read_text() if readme.exists() else "# Benchmarks\n"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = current.rstrip() + "\n\n" + block + "\n"
    readme.write_text(new)


def chart(doc: dict[str, Any], path: Path) -> Path | None:
    """Bars of the ratios (log scale), each with its goal as a line; None if nothing to plot."""
    entries = [r for r in doc["results"] if isinstance(r["ratio"], int | float) and r["ratio"] > 0]
    if not entries:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(entries) + 2), 4.8))
    ax.axhline(1.0, color="#bdbdbd", linewidth=0.8)  # parity with what is compared
    colours = {True: "#2e7d32", False: "#c62828", None: "#757575"}
    for x, entry in enumerate(entries):
        ax.bar(x, entry["ratio"], color=colours.get(entry["met"], "#757575"), width=0.6)
        ax.annotate(
            f"{entry['ratio']:.3g}", (x, entry["ratio"]), ha="center", va="bottom", fontsize=9
        )
        goal = goal_ratio(entry)
        if goal is not None:
            ax.hlines(goal, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(FixedLocator([0.01, 0.03, 0.1, 0.3, 0.5, 1, 2, 3, 5, 10, 30, 100]))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(range(len(entries)), [f"{e['id']}\n{_short(e)}" for e in entries], fontsize=8)
    ax.set_ylabel("ratio (log scale); dashed line: goal")
    quick = " (quick)" if doc["quick"] else ""
    ax.set_title(
        f"mlrelay vs peers, {doc['date']}{quick}\ngreen: goal met, red: missed, grey: not judged",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(entry: dict[str, Any]) -> str:
    label = entry.get("ratio_label") or ""
    return label if len(label) <= 28 else label[:27] + "..."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="each script's smoke run")
    p.add_argument("--only", default="", help="comma-separated script prefixes, e.g. p4,p6")
    p.add_argument("--results-dir", type=Path, default=HERE / "results")
    p.add_argument("--readme", type=Path, default=None, help="default: benchmarks/README.md")
    p.add_argument("--timeout", type=float, default=None, help="seconds per script")
    p.add_argument(
        "--render", type=Path, default=None, help="redraw table and chart from a results JSON"
    )
    args = p.parse_args(argv)
    if args.render is not None:
        doc = json.loads(args.render.read_text())
        png = chart(doc, args.render.with_suffix(".png"))
        text = table(doc)
        if not doc["quick"] or args.readme:
            update_readme(args.readme or HERE / "README.md", text, png)
        print(text)
        return 0
    chosen = [
        s for s in scripts() if not args.only or s.name.startswith(tuple(args.only.split(",")))
    ]
    timeout = args.timeout or (180.0 if args.quick else 1200.0)
    began = time.perf_counter()
    runs, outputs = [], {}
    with tempfile.TemporaryDirectory(prefix="mlrelay-bench-") as tmp:
        for script in chosen:
            out, log = Path(tmp) / f"{script.stem}.json", Path(tmp) / f"{script.stem}.log"
            print(f"==> {script.name}{' --quick' if args.quick else ''}", flush=True)
            run = run_script(script, out, quick=args.quick, timeout=timeout, log=log)
            runs.append(run)
            outputs[script.name] = out
            extra = f": {run['error']}" if run["error"] else ""
            print(f"    {run['status']} in {run['seconds']:.1f} s{extra}", flush=True)
        doc = merge(runs, outputs, quick=args.quick)
    stem = doc["date"] + ("-quick" if args.quick else "")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    png = chart(doc, args.results_dir / f"{stem}.png")
    text = table(doc)
    readme = args.readme or (None if args.quick else HERE / "README.md")
    if readme is not None:
        update_readme(readme, text, png)
    print("\n" + text)
    total = time.perf_counter() - began
    print(f"\nall scripts: {total / 60:.1f} min; results: {args.results_dir / (stem + '.json')}")
    return 0 if all(r["status"] == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
