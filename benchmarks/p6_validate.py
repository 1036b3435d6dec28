"""P6: ``mlrelay.validate`` vs raw Great Expectations 1.x on 1M rows, the same suite.

Both sides start from the same Parquet file (the example's card transactions, 1M rows from
``examples/data/generate.py``) and the example's suite file, and run it the way each is used:

- ours: ``mlrelay.validate(path, suite_path, ValidationPolicy(on_failure="warn"))`` (read, check
  the suite, run, hash the data for lineage, build the report);
- raw GX: read the Parquet file with pandas, an ephemeral context (progress bars off), a pandas
  data source, a whole-dataframe batch, the suite built from the JSON,
  ``ValidationDefinition.run(result_format=SUMMARY)``.

Both run in this one process after a warm-up of each (GX's 8 s import is paid once, by
neither), in alternating order, N times. Reported: median/min/max wall seconds per side and the
ratio of the medians (goal <= 1.05x), and the same in CPU seconds, which a busy machine
disturbs less. What ours does on top is hashing the data for lineage (about a tenth of the
GX run's CPU on this data); its GX run itself is a little cheaper than the default ephemeral
context (no data docs site).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, parser, result, summary, versions
from handwritten import gx_validate

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "examples" / "expectations" / "transactions.json"


def make_data(rows: int, where: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "fraud_generate", ROOT / "examples/data/generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    tx, _ = generate.generate(rows=rows)
    path = where / "transactions.parquet"
    tx.to_parquet(path, index=False)
    return path


def raw_gx(path: Path, suite_file: Path) -> bool:
    import pandas as pd

    return gx_validate(pd.read_parquet(path), suite_file, "raw")


def ours(path: Path, suite_file: Path) -> bool:
    from mlrelay.validation import ValidationPolicy, validate

    return validate(path, suite_file, ValidationPolicy(on_failure="warn")).success


def timed(fn: Any, *args: Any) -> tuple[float, float, bool]:
    """Wall and CPU seconds (all threads: pyarrow reads in parallel) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    ok = fn(*args)
    return time.perf_counter() - start, time.process_time() - cpu, ok


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--runs", type=int, default=None)
    args = p.parse_args()
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    runs = args.runs or (2 if args.quick else 7)
    logging.getLogger("great_expectations").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="mlrelay-p6-") as tmp:
        started = time.perf_counter()
        path = make_data(rows, Path(tmp))
        generated = time.perf_counter() - started
        for fn in (raw_gx, ours):  # warm-up: imports, caches, first-run costs
            fn(path, SUITE)
        times: dict[str, list[float]] = {"ours": [], "raw_gx": []}
        cpu: dict[str, list[float]] = {"ours": [], "raw_gx": []}
        agree = True
        for i in range(runs):
            pair = [("ours", ours), ("raw_gx", raw_gx)]
            results = {}
            for name, fn in pair if i % 2 == 0 else pair[::-1]:
                seconds, cpu_seconds, results[name] = timed(fn, path, SUITE)
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
            agree = agree and results["ours"] == results["raw_gx"]
            print(
                f"run {i + 1}: { ({k: round(v[-1], 3) for k, v in times.items()}) }",
                file=sys.stderr,
            )

    mine, raw = summary(times["ours"]), summary(times["raw_gx"])
    ratio = mine["p50"] / raw["p50"]
    emit(
        args,
        [
            result(
                "P6",
                f"mlrelay.validate vs raw GX 1.x, {rows:,} rows, example suite",
                "<= 1.05x",
                met=ratio <= 1.05 and agree,
                ratio=ratio,
                ratio_label="ours / raw GX (median s)",
                figures={
                    "rows": rows,
                    "runs": runs,
                    "expectations": len(json.loads(SUITE.read_text())["expectations"]),
                    "ours_s": mine,
                    "raw_gx_s": raw,
                    "ours_cpu_s": summary(cpu["ours"]),
                    "raw_gx_cpu_s": summary(cpu["raw_gx"]),
                    "cpu_ratio": round(
                        summary(cpu["ours"])["p50"] / summary(cpu["raw_gx"])["p50"], 4
                    ),
                    "same_verdict": agree,
                    "data_generation_s": round(generated, 2),
                },
                versions=versions("mlrelay", "great-expectations", "pandas", "pyarrow"),
                quick=args.quick,
            )
        ],
    )


if __name__ == "__main__":
    main()
