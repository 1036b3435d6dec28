"""Every benchmark script's ``--quick`` run keeps the results contract, and the runner merges,
tabulates and charts what they wrote.

The benchmarks are not run in CI (``make bench`` takes many minutes); their smoke runs are, so a
script that no longer runs, or no longer writes what ``benchmarks/run.py`` reads, fails here.
The runner's test reuses the smoke runs' outputs instead of running the scripts again.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_run", BENCH / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _runner()
SCRIPTS = run.scripts(BENCH)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-quick")


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_quick_run_writes_results_in_the_contract(script: Path, outputs: Path) -> None:
    out = outputs / f"{script.stem}.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    entries = run.check(json.loads(out.read_text()))
    for entry in entries:
        assert entry["quick"] is True
        assert entry["met"] is None, "a smoke run cannot judge a goal"
        assert isinstance(entry["ratio"], int | float), entry["id"]
        assert entry["figures"]
        assert entry["versions"]["python"]


def test_runner_merges_tabulates_and_charts_the_quick_results(
    outputs: Path, tmp_path: Path
) -> None:
    found = {
        s.name: outputs / f"{s.stem}.json" for s in SCRIPTS if (outputs / f"{s.stem}.json").exists()
    }
    if not found:
        pytest.skip("no smoke-run outputs: run this whole file")
    broken = tmp_path / "p99_broken.py"
    broken.write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    failed = run.run_script(
        broken, tmp_path / "p99.json", quick=True, timeout=60, log=tmp_path / "p99.log"
    )
    assert failed["status"] == "failed"
    assert "exit code 3" in failed["error"]
    assert "boom" in failed["error"]
    runs = [{"script": name, "status": "ok", "seconds": 1.0, "error": None} for name in found]

    doc = run.merge([*runs, failed], {**found, broken.name: tmp_path / "p99.json"}, quick=True)

    ids = {entry["id"] for s in found.values() for entry in json.loads(s.read_text())}
    assert {r["id"] for r in doc["results"]} == ids
    assert doc["machine"]["cores"]
    assert doc["machine"]["python"]
    text = run.table(doc)
    for measure in ids:
        assert f"| {measure} |" in text
    assert "| p99_broken.py | (no result) |" in text
    assert "**failed**" in text
    png = run.chart(doc, tmp_path / "results" / "chart.png")
    assert png is not None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\nbefore\n\n{run.START}\nold table\n{run.END}\n\nafter\n")
    run.update_readme(readme, text, png)
    updated = readme.read_text()
    assert "old table" not in updated
    assert updated.index("before") < updated.index(run.START) < updated.index(run.END)
    assert updated.rstrip().endswith("after")
    assert "(results/chart.png)" in updated
