"""What the validate-step tests share: the example suite and the expectation types they name."""

from __future__ import annotations

import json
from pathlib import Path

SUITE = Path(__file__).resolve().parents[2] / "examples" / "expectations" / "transactions.json"
BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"


def suite_dict() -> dict:
    """A fresh copy of the example suite as a document, free for a test to edit."""
    return json.loads(SUITE.read_text())
