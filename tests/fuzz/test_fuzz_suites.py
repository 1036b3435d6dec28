"""Fuzzed expectation suites (FAULTS S4): random JSON documents, random bytes in a suite file
and mutations of the example's valid suite give a Great Expectations suite or a ``ConfigError``
naming the suite field (``suite``, ``suite.expectations[3].kwargs``...), never another error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import SECRET, fuzz, json_value, junk_text
from hypothesis import event, given
from hypothesis import strategies as st

from mlrelay.errors import ConfigError
from mlrelay.validation.gx import build_suite

SUITE = Path(__file__).resolve().parents[2] / "examples" / "expectations" / "transactions.json"
EXAMPLE: dict[str, Any] = json.loads(SUITE.read_text())


def built_or_named(suite: Any) -> Any | None:
    try:
        return build_suite(suite)
    except ConfigError as exc:
        error = exc
    assert (error.field or "").startswith("suite"), f"{error.field!r}: {error}"
    assert SECRET not in str(error)
    return None


@fuzz(100)
@given(document=st.one_of(json_value, st.dictionaries(junk_text, json_value, max_size=4)))
def test_s4_random_json_documents_are_a_config_error_naming_the_suite(document: Any) -> None:
    assert built_or_named(document) is None  # no random document is a meaningful suite


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-suites") / "suite.json"


@fuzz(100)
@given(content=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)))
def test_s4_random_bytes_in_a_suite_file_are_a_config_error(content: bytes, suite_file) -> None:
    suite_file.write_bytes(content)
    assert built_or_named(suite_file) is None


@st.composite
def mutated_suites(draw: st.DrawFn) -> dict[str, Any]:
    """The example suite with one to three edits: a key dropped, a value replaced by any JSON,
    an expectation's type changed, an unknown key added."""
    suite = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(1, 3))):
        items = suite.get("expectations")
        where = draw(st.sampled_from(["suite", "expectation", "kwargs"]))
        target: Any = suite
        if where != "suite" and isinstance(items, list) and items:
            target = draw(st.sampled_from(items))
            if where == "kwargs" and isinstance(target, dict):
                target = target.get("kwargs")
        if not isinstance(target, dict) or not target:
            continue
        key = draw(st.sampled_from(sorted(target)))
        action = draw(st.sampled_from(["drop", "replace", "retype", "add"]))
        if action == "drop":
            del target[key]
        elif action == "replace":
            target[key] = draw(json_value)
        elif action == "retype" and where == "expectation":
            target["type"] = draw(st.sampled_from(["expect_column_to_exist", "expect_nothing"]))
        else:
            target[draw(junk_text)] = draw(json_value)
    return suite


@fuzz(200)
@given(suite=mutated_suites())
def test_s4_mutated_suites_are_valid_or_a_config_error_naming_the_field(suite: dict) -> None:
    built = built_or_named(suite)
    event("valid suite" if built is not None else "ConfigError")


def test_the_unmutated_example_suite_builds() -> None:
    assert len(build_suite(EXAMPLE).expectations) == len(EXAMPLE["expectations"])
