"""Great Expectations 1.x behind two calls: check a suite, run it on a DataFrame.

The only module of mlrelay that imports ``great_expectations``, and only inside functions:
GX takes about 8 s to import, which a DAG parse or ``import mlrelay`` must never pay.

Each run gets a fresh ephemeral Data Context (an in-memory one: no files, no GX Cloud, analytics
and progress bars off). Building one costs a few milliseconds once GX is imported, so nothing
is cached between runs: a long-lived context would keep every validation result in its
in-memory store, and a fresh one cannot leak state from one suite into the next.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlrelay._deps import require
from mlrelay.errors import ConfigError
from mlrelay.validation.data import jsonable
from mlrelay.validation.spec import FailedExpectation, ValidationPolicy, ValidationStatistics

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.data_context import EphemeralDataContext

# GX keeps process-wide state: ``get_context`` makes its context "the current one", and before
# GX 1.24 suites and validation definitions looked themselves up through that global (GX issue
# #12209), so two runs in threads (Prefect's task runner, Dagster's in-process executor) could
# cross. 1.24.1 resolves through the owning context and 20 unlocked parallel runs came out
# right here, but ``mlrelay[gx]`` allows any GX 1.x and GX documents no thread-safety. Runs are
# short and mostly hold the GIL anyway, so serialising them costs little.
_RUN_LOCK = threading.Lock()

_SUITE_KEYS = frozenset({"name", "id", "expectations", "suite_parameters", "meta", "notes"})
_NOT_CONFIGURATION = ("id", "rendered_content")  # set by GX when it stores a suite


class Checked(NamedTuple):
    """One expectation's outcome: the report keeps the failed ones, the HTML page shows all."""

    success: bool
    expectation: FailedExpectation


@dataclass(frozen=True)
class SuiteOutcome:
    """What one run of a suite found, in our types (no GX object outlives :func:`run`)."""

    suite_name: str
    success: bool
    statistics: ValidationStatistics
    checked: list[Checked]


def build_suite(suite: object) -> ExpectationSuite:
    """Turn a suite file, dict or ``ExpectationSuite`` into a fresh suite, checking all of it.

    GX itself logs and silently DROPS an expectation whose type it does not know, so a typo
    in a suite would quietly validate less. Every expectation is checked here instead, in
    order, and the first bad one is reported with its index and type.

    Raises:
        ConfigError: the file cannot be read or is not JSON (naming the file), the document
            is not a GX 1.x suite, or an expectation has an unknown type or bad arguments
            (naming its index and type).
    """
    document, label = suite_document(suite)
    name, items = _check_document(document, label)
    gx = require("great_expectations", "gx")
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    errors = gx.exceptions.GreatExpectationsError
    built = []
    for index, item in enumerate(items):
        kind = item["type"]
        field = f"suite.expectations[{index}]"
        try:
            get_expectation_impl(kind)
        except errors as exc:
            close = difflib.get_close_matches(
                kind, list_registered_expectation_implementations(), 1
            )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{label}: expectation #{index} has unknown type {kind!r}{hint}",
                field=f"{field}.type",
            ) from exc
        config = {k: v for k, v in item.items() if k not in _NOT_CONFIGURATION}
        try:
            built.append(ExpectationConfiguration(**config).to_domain_obj())
        except (TypeError, ValueError, errors) as exc:  # GX's pydantic v1 errors are ValueErrors
            raise ConfigError(
                f"{label}: expectation #{index} ({kind}) is invalid: {' '.join(str(exc).split())}",
                field=field,
            ) from exc
    try:
        return gx.core.ExpectationSuite(
            name=name,
            expectations=built,
            suite_parameters=document.get("suite_parameters"),
            meta=document.get("meta"),
            notes=document.get("notes"),
        )
    except (TypeError, ValueError, errors) as exc:
        raise ConfigError(f"{label}: {exc}", field="suite") from exc


def suite_document(suite: object) -> tuple[dict[str, Any], str]:
    """Return the suite as a GX 1.x JSON document (a private copy) and its name for messages."""
    if isinstance(suite, (str, os.PathLike)):
        path = Path(suite)
        label = f"suite file {str(path)!r}"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{label} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                field="suite",
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{label} is not JSON: it is not UTF-8 text", field="suite") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read {label}: {exc.strerror or exc}", field="suite") from exc
        if isinstance(document, dict):
            document.setdefault("name", path.name.removesuffix(".json"))
        return document, label
    if isinstance(suite, Mapping):
        # A deep copy: GX writes into the kwargs it is given (``batch_id``).
        return copy.deepcopy(dict(suite)), "suite"
    gx = require("great_expectations", "gx")
    if isinstance(suite, gx.core.ExpectationSuite):
        # Rebuilt from its JSON rather than used as is: adding it to our context would give the
        # caller's object our ids and bind it to a context that is gone after the run.
        return suite.to_json_dict(), f"suite {suite.name!r}"
    raise ConfigError(
        "expected the path of a suite JSON file, a dict or a great_expectations "
        f"ExpectationSuite, got {type(suite).__name__}",
        field="suite",
    )


def _check_document(document: object, label: str) -> tuple[str, list[dict[str, Any]]]:
    """Check the shape of a suite document: cheap, and done before GX is even imported."""
    if not isinstance(document, dict):
        raise ConfigError(
            f"{label} must be a JSON object with 'name' and 'expectations', "
            f"got {type(document).__name__}",
            field="suite",
        )
    listed = document.get("expectations")
    legacy = "expectation_suite_name" in document or any(
        isinstance(item, dict) and "expectation_type" in item and "type" not in item
        for item in (listed if isinstance(listed, list) else [])
    )
    if legacy:
        raise ConfigError(
            f"{label} is a Great Expectations 0.x suite: GX 1.x calls 'expectation_suite_name' "
            "'name' and each expectation's 'expectation_type' 'type'",
            field="suite",
        )
    unknown = sorted(set(document) - _SUITE_KEYS)
    if unknown:
        raise ConfigError(
            f"{label} has unknown keys {unknown}; a GX 1.x suite has {sorted(_SUITE_KEYS)}",
            field="suite",
        )
    name = document.get("name", "suite")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{label}: 'name' must be a non-empty string", field="suite.name")
    items = document.get("expectations")
    if not isinstance(items, list) or not items:
        raise ConfigError(
            f"{label} has no expectations: a suite that checks nothing passes any data",
            field="suite.expectations",
        )
    for index, item in enumerate(items):
        field = f"suite.expectations[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(
                f"{label}: expectation #{index} must be an object with 'type' and 'kwargs'",
                field=field,
            )
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"{label}: expectation #{index} has no 'type'", field=f"{field}.type")
        if not isinstance(item.setdefault("kwargs", {}), dict):
            raise ConfigError(
                f"{label}: expectation #{index} ({kind}): 'kwargs' must be an object",
                field=f"{field}.kwargs",
            )
    return name, items


def run(frame: pd.DataFrame, suite: ExpectationSuite, policy: ValidationPolicy) -> SuiteOutcome:
    """Validate the whole frame against ``suite`` (from :func:`build_suite`).

    Raises:
        ConfigError: GX could not run the suite on this data at all. An expectation that
            merely cannot be evaluated (a missing column) does not raise: it fails, and its
            ``exception`` says why.
    """
    gx = require("great_expectations", "gx")
    result_format = {
        "result_format": policy.result_format,
        "partial_unexpected_count": policy.sample_size,
    }
    with _RUN_LOCK:
        context = _context()
        batch = (
            context.data_sources.add_pandas("mlrelay")
            .add_dataframe_asset("data")
            .add_batch_definition_whole_dataframe("all-rows")
        )
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
        )
        try:
            result = definition.run(
                batch_parameters={"dataframe": frame}, result_format=result_format
            )
        except gx.exceptions.GreatExpectationsError as exc:
            raise ConfigError(
                f"Great Expectations could not run suite {suite.name!r} on this data: {exc}",
                field="suite",
            ) from exc
    # GX does not keep the suite's order; the report and the HTML page do.
    order = {expectation.id: index for index, expectation in enumerate(suite.expectations)}
    ordered = sorted(result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    stats = result.statistics
    return SuiteOutcome(
        suite_name=suite.name,
        success=bool(result.success),
        statistics=ValidationStatistics(
            evaluated_expectations=int(stats["evaluated_expectations"]),
            successful_expectations=int(stats["successful_expectations"]),
            unsuccessful_expectations=int(stats["unsuccessful_expectations"]),
            success_percent=jsonable(stats.get("success_percent")),
        ),
        checked=[Checked(bool(r.success), _describe(r, policy.sample_size)) for r in ordered],
    )


def _context() -> EphemeralDataContext:
    gx = require("great_expectations", "gx")
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        # No data docs site: the default ephemeral config reserves a temporary directory for one.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context: EphemeralDataContext = gx.get_context(mode="ephemeral", project_config=config)
    return context


def _describe(result: ExpectationValidationResult, sample_size: int) -> FailedExpectation:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}  # GX adds batch_id
    found: Mapping[str, Any] = result.result or {}
    column = kwargs.get("column")
    count = found.get("unexpected_count")
    percent = jsonable(found.get("unexpected_percent"))
    samples = list(found.get("partial_unexpected_list") or [])[:sample_size]
    return FailedExpectation(
        expectation_type=config.type,
        column=column if isinstance(column, str) else None,
        kwargs=jsonable(kwargs),
        unexpected_count=None if count is None else int(count),
        unexpected_percent=None if percent is None else float(percent),
        sample_values=jsonable(samples),
        observed_value=jsonable(found.get("observed_value")),
        exception=_exception_message(result.exception_info),
    )


def _exception_message(info: object) -> str | None:
    """The message of an exception GX caught while evaluating one expectation, if any.

    GX reports it either flat (``raised_exception``, ``exception_message``) or keyed by the
    metric that raised it; the same message often repeats across metrics.
    """
    if not isinstance(info, Mapping):
        return None
    if "raised_exception" in info:
        message = info.get("exception_message")
        return str(message) if info.get("raised_exception") and message else None
    messages = [m for value in info.values() if (m := _exception_message(value))]
    return "; ".join(dict.fromkeys(messages)) or None
