"""Every row of the fault matrix (docs/FAULTS.md) has a test named after its id.

The matrix is the project's list of promises ("nothing lost, nothing leaked, clear errors"), so
it must not shrink silently: a row without a ``test_<id>_...`` function anywhere under tests/
fails here, and so does a matrix with fewer rows than it had when this check was written.
Test names are read with ``ast`` (no test module is imported), so the check takes milliseconds.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "docs" / "FAULTS.md"
TESTS = ROOT / "tests"

# The rows the matrix had when this check was written: K1-K12, T1-T12, O1-O7, S1-S5, M1-M5,
# D1-D5. Raise it when rows are added; lowering it is deleting a promise.
PINNED_ROWS = 46

_ROW = re.compile(r"^\|\s*([A-Z]+[0-9]+)\s*\|")


def matrix_rows(text: str) -> list[str]:
    """The row ids of the matrix's tables, in document order (``K1``, ``K2``, ...)."""
    return [m.group(1) for line in text.splitlines() if (m := _ROW.match(line.strip()))]


def defined_test_names(root: Path) -> set[str]:
    """Names of every ``test_*`` function (sync or async, also in classes) under ``root``."""
    names: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names.update(
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")
        )
    return names


@pytest.fixture(scope="module")
def rows() -> list[str]:
    if not MATRIX.is_file():
        pytest.fail(
            f"{MATRIX.relative_to(ROOT)} is missing: the fault matrix is vendored into the repo "
            "so this check runs from a clean clone (copy the matrix there)"
        )
    return matrix_rows(MATRIX.read_text(encoding="utf-8"))


def test_the_matrix_parses_into_unique_row_ids(rows: list[str]) -> None:
    duplicates = sorted({r for r in rows if rows.count(r) > 1})
    assert not duplicates, f"row ids used twice in docs/FAULTS.md: {', '.join(duplicates)}"


def test_the_matrix_has_not_shrunk(rows: list[str]) -> None:
    assert len(rows) >= PINNED_ROWS, (
        f"docs/FAULTS.md has {len(rows)} rows, fewer than the {PINNED_ROWS} it had: a row was "
        "removed (or its table line no longer starts with '| <ID> |')"
    )


def test_every_matrix_row_has_a_test_named_after_its_id(rows: list[str]) -> None:
    names = defined_test_names(TESTS)
    missing = [r for r in rows if not any(n.startswith(f"test_{r.lower()}_") for n in names)]
    assert not missing, (
        f"FAULTS.md rows without a test named test_<id>_...: {', '.join(missing)} "
        f"({len(rows) - len(missing)} of {len(rows)} covered)"
    )


def test_the_row_parser_reads_ids_and_skips_headers_and_prose() -> None:
    text = "# Fault matrix\n| # | fault |\n|---|---|\n| K1 | 500 |\n|T12|cut|\nK3 in prose\n"
    assert matrix_rows(text) == ["K1", "T12"]
