"""A one-file HTML page of a validation run, to attach to a pipeline run or open from disk.

GX's own data docs need a file-backed Data Context and a site directory; this page needs
nothing: one self-contained file (inline CSS, no scripts, no external assets), every value
escaped, so it can be stored as an artifact and opened anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrelay.errors import ConfigError

if TYPE_CHECKING:
    from mlrelay.validation.gx import Checked
    from mlrelay.validation.spec import FailedExpectation, ValidationReport

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin: 0 0 1rem; }
.badge { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; color: #fff;
         font-size: .85rem; vertical-align: middle; }
.pass { background: #1a7f37; } .fail { background: #cf222e; }
table { border-collapse: collapse; margin: 0 0 1.5rem; }
th, td { border: 1px solid #d0d7de; padding: .35rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr.failed td { background: #fff5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, monospace; word-break: break-all; }
.err { color: #cf222e; }
"""


def write(path: str | Path, report: ValidationReport, checked: Sequence[Checked]) -> Path:
    """Write the page to ``path`` (creating its folder) and return the path.

    Raises:
        ConfigError: the page cannot be written there.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(report, checked), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the HTML report to {str(target)!r}: {exc.strerror or exc}",
            field="html_report",
        ) from exc
    return target


def render(report: ValidationReport, checked: Sequence[Checked]) -> str:
    """Return the page: what was validated, the verdict, and one row per expectation."""
    stats = report.statistics
    verdict = "passed" if report.success else "failed"
    summary = [
        ("Data", report.data_source),
        ("Rows", f"{report.row_count:,}"),
        ("Data hash", report.data_hash),
        (
            "Expectations met",
            f"{stats.successful_expectations} of {stats.evaluated_expectations}",
        ),
        ("Duration", f"{report.duration_seconds:.3f} s"),
    ]
    rows = "\n".join(_row(index, success, e) for index, (success, e) in enumerate(checked))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(f"Validation of {report.suite_name}: {verdict}")}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Suite <code>{escape(report.suite_name)}</code>
<span class="badge {"pass" if report.success else "fail"}">{verdict}</span></h1>
<table>
{"".join(f"<tr><th>{escape(k)}</th><td><code>{escape(v)}</code></td></tr>" for k, v in summary)}
</table>
<table>
<tr><th>#</th><th>Status</th><th>Expectation</th><th>Column</th><th>Arguments</th>
<th>Unexpected</th><th>Unexpected %</th><th>Observed</th><th>Sample values</th></tr>
{rows}
</table>
</body>
</html>
"""


def _row(index: int, success: bool, e: FailedExpectation) -> str:
    arguments = {k: v for k, v in e.kwargs.items() if k != "column"}
    if e.exception:  # it could not be evaluated: say why instead of what was observed
        observed = f'<span class="err">{escape(e.exception)}</span>'
    else:
        observed = _code(e.observed_value)
    status = "passed" if success else "failed"
    cells = [
        f'<td class="num">{index}</td>',
        f'<td><span class="badge {"pass" if success else "fail"}">{status}</span></td>',
        f"<td><code>{escape(e.expectation_type)}</code></td>",
        f"<td><code>{escape(e.column or '')}</code></td>",
        f"<td>{_code(arguments or None)}</td>",
        f'<td class="num">{_format(e.unexpected_count, ",")}</td>',
        f'<td class="num">{_format(e.unexpected_percent, ".2f")}</td>',
        f"<td>{observed}</td>",
        f"<td>{_code(e.sample_values or None)}</td>",
    ]
    return f'<tr class="{status}">{"".join(cells)}</tr>'


def _code(value: Any) -> str:
    """A JSON value as escaped inline code; nothing at all for None."""
    if value is None:
        return ""
    return f"<code>{escape(json.dumps(value, ensure_ascii=False, default=str))}</code>"


def _format(number: float | None, spec: str) -> str:
    return "" if number is None else format(number, spec)
