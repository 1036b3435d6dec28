"""What every benchmark script shares: its command line, summary statistics, versions, the JSON.

The contract ``benchmarks/run.py`` (``make bench``) relies on: a script ``benchmarks/p<N>_*.py``
takes ``--quick`` (a smoke run of seconds, what ``make test`` runs so the script cannot rot) and
``--out FILE``, and writes there a JSON list of results, one per measure id it covers::

    {"id": "P2", "title": "...", "goal": "p50 <= 0.5 s, >= 10x better than the peer",
     "met": true, "ratio": 0.05, "ratio_label": "ours / peer (p50)",
     "figures": {...}, "versions": {"apache-airflow": "3.3.0", ...}, "quick": false}

``ratio`` is the headline number the chart plots (ours over the thing compared with, so lower is
better unless ``higher_is_better`` is set); ``met`` is None when a quick run cannot judge the goal.
These machines are noisy: scripts report medians with min and max, and ratios of figures taken in
the same run, never absolute numbers alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line every script shares; a script adds its own knobs to it."""
    text = (doc or "").strip()
    p = argparse.ArgumentParser(
        description=text.splitlines()[0] if text else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="a smoke run of seconds (make test)")
    p.add_argument("--out", type=Path, default=None, help="write the results (JSON list) here")
    return p


def summary(values: Iterable[float], digits: int = 4) -> dict[str, float | int]:
    """Median, min, max and count: what a noisy machine can honestly report."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no samples")
    return {
        "p50": round(statistics.median(xs), digits),
        "min": round(xs[0], digits),
        "max": round(xs[-1], digits),
        "n": len(xs),
    }


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, e.g. a p99 latency."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no samples")
    k = (len(xs) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def versions(*dists: str) -> dict[str, str]:
    """Installed versions of the distributions compared (``python`` included)."""
    found = {"python": sys.version.split()[0]}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def result(
    id: str,
    title: str,
    goal: str,
    *,
    met: bool | None,
    ratio: float | None,
    ratio_label: str,
    figures: dict[str, Any],
    versions: dict[str, str],
    quick: bool,
    higher_is_better: bool = False,
) -> dict[str, Any]:
    """One measure's entry in the results file."""
    return {
        "id": id,
        "title": title,
        "goal": goal,
        "met": None if quick else met,
        "ratio": None if ratio is None else round(ratio, 4),
        "ratio_label": ratio_label,
        "higher_is_better": higher_is_better,
        "figures": figures,
        "versions": versions,
        "quick": quick,
    }


def emit(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """Print the results and write them to ``--out`` when given."""
    text = json.dumps(results, indent=2, sort_keys=False)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
