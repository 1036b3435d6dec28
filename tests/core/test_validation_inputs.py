"""The validate step's boundary: bad suites and data are ConfigErrors before anything runs.

Most tests give a data file that cannot be read, so an error about the suite proves the data was
never opened; importing the step stays free of pandas and Great Expectations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from validation_support import BETWEEN, NOT_NULL, SUITE, suite_dict

from mlrelay.errors import ConfigError
from mlrelay.validation import validate


@pytest.fixture
def garbage_parquet(tmp_path: Path) -> Path:
    """A data file that cannot be read: an error about the suite proves it was never opened."""
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"not parquet at all")
    return path


def test_s4_suite_file_not_json_is_config_error(tmp_path: Path, garbage_parquet: Path) -> None:
    suite = tmp_path / "suite.json"
    suite.write_text("{'name': 'single quotes are not JSON'}")

    with pytest.raises(ConfigError) as caught:
        validate(garbage_parquet, suite)

    assert caught.value.field == "suite"
    assert str(suite) in str(caught.value)
    assert "not JSON" in str(caught.value)


def test_s4_unknown_expectation_type_is_config_error(garbage_parquet: Path) -> None:
    suite = suite_dict()
    suite["expectations"].insert(
        3,
        {
            "type": "expect_column_values_to_be_betwen",
            "kwargs": {"column": "amount", "min_value": 0},
        },
    )

    with pytest.raises(ConfigError) as caught:
        validate(garbage_parquet, suite)

    message = str(caught.value)
    assert caught.value.field == "suite.expectations[3].type"
    assert "'expect_column_values_to_be_betwen'" in message
    assert "#3" in message
    assert f"did you mean '{BETWEEN}'" in message


def test_s4_unknown_expectation_type_in_a_file_names_the_file(
    tmp_path: Path, garbage_parquet: Path
) -> None:
    suite = tmp_path / "typo.json"
    suite.write_text(
        json.dumps({"name": "t", "expectations": [{"type": "expect_nothing", "kwargs": {}}]})
    )

    with pytest.raises(ConfigError, match=r"typo\.json.*#0.*'expect_nothing'"):
        validate(garbage_parquet, suite)


@pytest.mark.parametrize(
    ("suite", "field", "words"),
    [
        (
            {"name": "s", "expectations": [{"type": NOT_NULL, "kwargs": {}}]},
            "suite.expectations[0]",
            "column",
        ),
        (
            {
                "name": "s",
                "expectations": [{"type": NOT_NULL, "kwargs": {"column": "a", "oops": 1}}],
            },
            "suite.expectations[0]",
            "oops",
        ),
        ({"name": "s", "expectations": []}, "suite.expectations", "no expectations"),
        ({"expectation_suite_name": "s", "expectations": []}, "suite", "0.x"),
        (
            {"name": "s", "expectations": [{"expectation_type": NOT_NULL, "kwargs": {}}]},
            "suite",
            "0.x",
        ),
        ({"name": "s", "expectatoins": []}, "suite", "expectatoins"),
        (["not", "a", "suite"], "suite", "expected"),
    ],
)
def test_malformed_suite_is_config_error_naming_the_place(
    garbage_parquet: Path, suite: object, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(garbage_parquet, suite)

    assert caught.value.field == field
    assert words in str(caught.value)


def test_missing_data_file_is_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "transactions.parquet"

    with pytest.raises(ConfigError, match="does not exist") as caught:
        validate(missing, SUITE)

    assert caught.value.field == "data"
    assert str(missing) in str(caught.value)


@pytest.mark.parametrize("name", ["transactions.xlsx", "transactions"])
def test_unknown_data_extension_is_config_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")

    with pytest.raises(ConfigError, match="cannot tell how to read") as caught:
        validate(path, SUITE)

    assert str(path) in str(caught.value)


def test_unreadable_data_file_is_config_error_naming_it(garbage_parquet: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read data file") as caught:
        validate(garbage_parquet, SUITE)

    assert caught.value.field == "data"
    assert str(garbage_parquet) in str(caught.value)


def test_data_of_another_type_is_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        validate([{"amount": 1}], SUITE)

    assert caught.value.field == "data"


def test_importing_the_step_imports_neither_pandas_nor_gx() -> None:
    code = (
        "import sys, mlrelay, mlrelay.validation\n"
        "mlrelay.validate\n"
        "heavy = {'pandas', 'great_expectations', 'numpy'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"
