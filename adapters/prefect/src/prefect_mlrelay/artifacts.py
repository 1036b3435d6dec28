"""The artifacts a step leaves on its task run: what a reviewer opens in the Prefect UI.

validate -> a table of the unmet expectations (with counts and sample values) and a markdown
summary; train -> a link to the MLflow run; register -> a link to the model version; promote ->
the gate's decision; deploy -> a link to the endpoint and the lineage trail from endpoint back to
the validated dataset. Keys are derived from the suite, job, model or endpoint name, so the
Artifacts page shows each one's history across runs.

Artifacts are a report, not the result: if the Prefect API cannot take one, the step's work
stands and a warning says what is missing. Nothing here ever holds a secret: URLs are the
redacted ``display_uri`` and results carry no tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from mlrelay._model import safe_name
from prefect_mlrelay._runtime import run_logger

if TYPE_CHECKING:
    from mlrelay.registry.spec import ModelVersionRef, PromotionDecision
    from mlrelay.serving.spec import Deployment
    from mlrelay.settings import MLflowSettings
    from mlrelay.training.spec import TrainingResult
    from mlrelay.validation.spec import ValidationReport


def key(*parts: str) -> str:
    """An artifact key (lower-case letters, digits, dashes) from names."""
    return str(safe_name(*parts, max_length=100))


def best_effort(what: str, create: Callable[[], object]) -> None:
    try:
        create()
    except Exception as exc:  # the step succeeded; only its report is missing
        run_logger().warning("could not create the %s artifact: %s", what, exc)


def validation(report: ValidationReport) -> None:
    """The unmet expectations as a table, and a summary a reviewer reads first."""
    stats = report.statistics
    if report.failed:
        rows = [
            {
                "expectation": f.expectation_type,
                "column": f.column,
                "result": "unmet",
                "unexpected": f.unexpected_count,
                "unexpected %": None
                if f.unexpected_percent is None
                else round(f.unexpected_percent, 3),
                "sample values": ", ".join(map(str, f.sample_values)) or None,
                "detail": f.exception
                or (None if f.observed_value is None else f"observed {f.observed_value}"),
            }
            for f in report.failed
        ]
    else:
        rows = [
            {
                "expectation": f"all {stats.evaluated_expectations} expectations",
                "column": None,
                "result": "met",
                "unexpected": 0,
                "unexpected %": 0.0,
                "sample values": None,
                "detail": None,
            }
        ]
    verdict = "passed" if report.success else "FAILED"
    summary = "\n".join(
        [
            f"### Validation {verdict}: suite `{report.suite_name}`",
            "",
            f"**{stats.successful_expectations} of {stats.evaluated_expectations}** expectations "
            f"met on **{report.row_count:,}** rows of `{report.data_source}`.",
            "",
            f"- data hash: `{report.data_hash}` (recorded on the model trained on it)",
            *(f"- unmet: `{f.expectation_type}`" + _where(f.column, f.unexpected_count)
              for f in report.failed),
            *([f"- HTML report: `{report.html_report}`"] if report.html_report else []),
        ]
    )  # fmt: skip
    name = report.suite_name
    best_effort(
        "validation table",
        lambda: create_table_artifact(
            rows, key=key(name, "validation"), description=f"Suite {name!r}: {verdict}"
        ),
    )
    best_effort(
        "validation summary",
        lambda: create_markdown_artifact(
            summary, key=key(name, "validation-summary"), description=f"Suite {name!r}"
        ),
    )


def _where(column: str | None, count: int | None) -> str:
    parts = [f"column `{column}`" if column else "", f"{count:,} rows" if count is not None else ""]
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def mlflow_ui(settings: MLflowSettings | None) -> str | None:
    """The MLflow UI's base URL, when the tracking server is one (not a local SQLite file)."""
    from mlrelay.settings import MLflowSettings

    uri = (settings or MLflowSettings()).display_uri
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def training_run(result: TrainingResult, settings: MLflowSettings | None) -> None:
    if (ui := mlflow_ui(settings)) is None:
        return
    link = f"{ui}/#/experiments/{result.experiment_id}/runs/{result.run_id}"
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
    best_effort(
        "MLflow run link",
        lambda: create_link_artifact(
            link,
            link_text=f"MLflow run {result.run_id}",
            key=key(result.job_name, "mlflow-run"),
            description=f"Job {result.job_name!r} on {result.backend}: {metrics or 'no metrics'}",
        ),
    )


def model_version(version: ModelVersionRef, settings: MLflowSettings | None) -> None:
    if (ui := mlflow_ui(settings)) is None:
        return
    link = f"{ui}/#/models/{version.name}/versions/{version.version}"
    best_effort(
        "model version link",
        lambda: create_link_artifact(
            link,
            link_text=f"{version.name} v{version.version}",
            key=key(version.name, "model-version"),
            description=f"Registered from run {version.run_id}",
        ),
    )


def promotion(decision: PromotionDecision) -> None:
    """The gate's decision with both numbers, promoted or not."""
    verdict = "promoted" if decision.promoted else "rejected"
    champion = f"v{decision.champion_version}" if decision.champion_version else "none"
    text = "\n".join(
        [
            f"### {decision.model_name} v{decision.candidate_version}: {verdict} for "
            f"@{decision.alias}",
            "",
            f"| | version | {decision.metric} |",
            "|---|---|---|",
            f"| candidate | v{decision.candidate_version} | {_num(decision.candidate_value)} |",
            f"| @{decision.alias} before | {champion} | {_num(decision.champion_value)} |",
            "",
            decision.reason,
        ]
    )
    best_effort(
        "promotion decision",
        lambda: create_markdown_artifact(
            text,
            key=key(decision.model_name, decision.alias, "promotion"),
            description=f"@{decision.alias}: {verdict}",
        ),
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def endpoint(deployment: Deployment) -> None:
    traffic = ", ".join(f"v{v}: {p}%" for v, p in deployment.traffic.items())
    best_effort(
        "endpoint link",
        lambda: create_link_artifact(
            deployment.url,
            link_text=f"{deployment.name} ({deployment.model_name} v{deployment.model_version})",
            key=key(deployment.name, "endpoint"),
            description=f"{deployment.backend} endpoint; traffic {traffic or '100% to this version'}",
        ),
    )


def lineage(deployment: Deployment, settings: MLflowSettings | None) -> None:
    """The trail endpoint -> model version -> run -> job -> dataset -> validation, as recorded."""
    from mlrelay.lineage_trail import render
    from mlrelay.registry import lineage_of

    def create() -> None:
        found: dict[str, Any] = lineage_of(
            deployment.model_name, deployment.model_version, settings=settings
        )
        found["endpoint"] = {
            "name": deployment.name,
            "url": deployment.url,
            "backend": deployment.backend,
            "pid": deployment.pid,
        }
        links = []
        if (ui := mlflow_ui(settings)) is not None:
            model, run = found["model"], found.get("run") or {}
            links.append(
                f"- [model version]({ui}/#/models/{model['name']}/versions/{model['version']})"
            )
            if run:
                links.append(
                    f"- [training run]({ui}/#/experiments/{run['experiment_id']}/runs/{run['id']})"
                )
        text = "\n".join(
            [
                f"### Lineage of endpoint `{deployment.name}`",
                "",
                "```",
                render(found),
                "```",
                *links,
                "",
                "<details><summary>as JSON</summary>\n\n```json",
                json.dumps(found, indent=2, default=str),
                "```\n</details>",
            ]
        )
        create_markdown_artifact(
            text,
            key=key(deployment.name, "lineage"),
            description=f"{deployment.model_name} v{deployment.model_version}: where it came from",
        )

    best_effort("lineage trail", create)
