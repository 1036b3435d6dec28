"""One Prefect task per lifecycle step (training is in :mod:`prefect_mlrelay.training`).

Each task is the core step and nothing more: it takes the core's spec (or its JSON), calls the
core, leaves artifacts on its run, renames its run to say what it did, and returns the core's
result model. Failures are the core's exceptions, unchanged, so a flow catches
``DataValidationError`` or ``ModelRejected`` exactly as a plain Python caller would.

Defaults every task shares:

- ``retries`` sized to the step, with ``retry_unless_final``: a verdict (``ConfigError``,
  ``DataValidationError``, ``TrainingSetIncomplete``, ``ModelRejected``) is never retried.
- ``cache_policy=NO_CACHE``: a step reports on systems that change under it (the registry, the
  endpoint), and the core's steps are idempotent, so re-running one is cheap and truthful.
- Heavy libraries (Great Expectations, Feast, MLflow, KServe) are imported when the task runs.

Override any of these per call site with ``.with_options(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from mlrelay.errors import DataValidationError, ModelRejected
from mlrelay.features.spec import (
    FeatureRequest,
    MaterializationResult,
    MaterializeRequest,
    TrainingSet,
)
from mlrelay.registry.spec import ModelVersionRef, PromotionDecision, PromotionGate
from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec
from mlrelay.training.spec import TrainingResult
from mlrelay.validation.spec import ValidationPolicy, ValidationReport
from prefect_mlrelay import artifacts
from prefect_mlrelay._runtime import (
    as_spec,
    name_of,
    retry_unless_final,
    say_done,
    task_run_namer,
)
from prefect_mlrelay.backends import ServingBackendName, serving_backend
from prefect_mlrelay.blocks import KServeTarget, MLflowCredentials, mlflow_settings

if TYPE_CHECKING:
    from mlrelay.serving.base import ServingBackend
    from mlrelay.settings import MLflowSettings


def _suite_name(suite: object) -> str:
    if isinstance(suite, Mapping):
        return str(suite.get("name", "suite"))
    if isinstance(suite, str | Path):
        return Path(suite).stem
    return str(getattr(suite, "name", "suite"))


@task(
    name="validate_data",
    retries=1,
    retry_delay_seconds=10,
    task_run_name=task_run_namer(
        lambda p: f"validate {name_of(p['data'])} with {_suite_name(p['suite'])}"
    ),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def validate_data(
    data: Any,
    suite: str | Path | dict[str, Any] | Any,
    policy: ValidationPolicy | dict[str, Any] | None = None,
    *,
    html_report: str | Path | None = None,
) -> ValidationReport:
    """Check ``data`` against a Great Expectations suite; a failed suite stops the flow.

    Args:
        data: a pandas DataFrame, or the path of a CSV or Parquet file.
        suite: a GX 1.x suite file, its JSON as a dict, or an ``ExpectationSuite``.
        policy: ``ValidationPolicy(on_failure="warn")`` (or ``{"on_failure": "warn"}``) lets a
            failed suite through with a warning; the default fails.
        html_report: where to write a self-contained HTML page of the run.

    Raises:
        DataValidationError: the suite failed (never retried); the table artifact and the
            exception's ``report`` hold the numbers.
    """
    from mlrelay.validation import validate

    try:
        rule = None if policy is None else as_spec(ValidationPolicy, policy, "policy")
        report = validate(data, suite, rule, html_report=html_report)
    except DataValidationError as exc:
        artifacts.validation(exc.report)
        raise
    artifacts.validation(report)
    stats = report.statistics
    verdict = "validated" if report.success else "validation FAILED (warn)"
    say_done(
        f"{verdict} {name_of(data)}: {stats.successful_expectations}/"
        f"{stats.evaluated_expectations} expectations met on {report.row_count} rows"
    )
    return report


@task(
    name="build_training_set",
    retries=2,
    retry_delay_seconds=[10, 60],
    task_run_name=task_run_namer(
        lambda p: (
            f"build training set {name_of(as_spec(FeatureRequest, p['request'], 'request').output)}"
        )
    ),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def build_training_set(request: FeatureRequest | dict[str, Any]) -> TrainingSet:
    """Write the point-in-time-correct training set from the Feast repo; count what was dropped."""
    from mlrelay.features import build_training_set as build

    tset = build(as_spec(FeatureRequest, request, "request"))
    say_done(
        f"built training set {name_of(tset.path)}: {tset.rows_out} of {tset.rows_in} rows "
        f"({tset.dropped_count} without features dropped)"
    )
    return tset


@task(
    name="materialize_features",
    retries=2,
    retry_delay_seconds=[10, 60],
    task_run_name=task_run_namer(
        lambda p: (
            "materialize features up to "
            f"{as_spec(MaterializeRequest, p['request'], 'request').end:%Y-%m-%d %H:%M}"
        )
    ),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def materialize_features(request: MaterializeRequest | dict[str, Any]) -> MaterializationResult:
    """Load feature values into the online store (views already loaded that far are skipped)."""
    from mlrelay.features import materialize_features as materialize

    result = materialize(as_spec(MaterializeRequest, request, "request"))
    skipped = f", {len(result.skipped)} already loaded" if result.skipped else ""
    say_done(f"materialized {', '.join(result.feature_views) or 'no views'}{skipped}")
    return result


@task(
    name="register_model",
    retries=3,
    retry_delay_seconds=[5, 30, 120],
    task_run_name=task_run_namer(lambda p: f"register {p['name']}"),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def register_model(
    training: TrainingResult | dict[str, Any] | str,
    name: str,
    *,
    mlflow: MLflowCredentials | MLflowSettings | None = None,
    tags: dict[str, str] | None = None,
) -> ModelVersionRef:
    """Register the trained model as a version of ``name``, once: a retry returns the same one.

    Args:
        training: the ``train_model`` result (or its JSON), or a ``models:/...`` URI.
        name: the registered model.
        mlflow: the MLflow server; the environment's when not given.
        tags: extra version tags (the run's lineage tags are copied anyway).
    """
    from mlrelay.registry import register_model as register

    settings = mlflow_settings(mlflow)
    version = register(training, name, settings=settings, tags=tags)
    artifacts.model_version(version, settings)
    say_done(f"registered {version.name} v{version.version} (run {version.run_id})")
    return version


@task(
    name="promote_model",
    retries=2,
    retry_delay_seconds=[5, 30],
    task_run_name=task_run_namer(
        lambda p: f"promote {_ref(p['version'])} to @{p.get('alias') or 'champion'}"
    ),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def promote_model(
    version: ModelVersionRef | dict[str, Any],
    gate: PromotionGate | dict[str, Any],
    *,
    alias: str = "champion",
    mlflow: MLflowCredentials | MLflowSettings | None = None,
) -> PromotionDecision:
    """Give ``alias`` to ``version`` if it beats the version holding it (the gate decides).

    Raises:
        ModelRejected: the gate said no and ``gate.on_reject`` is ``"raise"`` (never retried);
            with ``on_reject="return"`` the decision is returned with ``promoted=False``.
        PromotionConflict: another promoter moved the alias meanwhile (retried: it re-gates).
    """
    from mlrelay.registry import promote

    try:
        decision = promote(version, gate, alias=alias, settings=mlflow_settings(mlflow))
    except ModelRejected as exc:
        artifacts.promotion(exc.decision)
        raise
    artifacts.promotion(decision)
    model = f"{decision.model_name} v{decision.candidate_version}"
    if decision.promoted:
        say_done(f"promoted {model} to @{decision.alias}")
    else:
        holder = f"v{decision.champion_version}" if decision.champion_version else "nobody"
        say_done(f"rejected {model}: @{decision.alias} stays with {holder}")
    return decision


def _ref(version: object) -> str:
    if isinstance(version, ModelVersionRef):
        return f"{version.name} v{version.version}"
    if isinstance(version, Mapping):
        return f"{version.get('name')} v{version.get('version')}"
    return str(version)


def _strategy(spec: DeploymentSpec) -> str:
    s = spec.strategy
    return f"canary {s.percent}%" if isinstance(s, Canary) else "replace"


@task(
    name="deploy_model",
    retries=1,
    retry_delay_seconds=30,
    task_run_name=task_run_namer(
        lambda p: (lambda s: f"deploy {_ref(s.model)} to {s.name} ({_strategy(s)})")(
            as_spec(DeploymentSpec, p["spec"], "spec")
        )
    ),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def deploy_model(
    spec: DeploymentSpec | dict[str, Any],
    *,
    backend: ServingBackendName | ServingBackend = "local",
    mlflow: MLflowCredentials | MLflowSettings | None = None,
    kserve: KServeTarget | None = None,
) -> Deployment:
    """Roll a model version out to an endpoint (replace or canary), smoke-tested, or roll back.

    Redeploying the version that already serves only smoke-tests it (``promoted=False``), so a
    retry never restarts a healthy endpoint. Leaves a link to the endpoint and the lineage trail.

    Args:
        spec: endpoint name, model version, strategy (``Replace()`` or ``Canary(10)``).
        backend: ``"local"`` (the KServe model server on 127.0.0.1), ``"kserve"`` (an
            InferenceService where ``kserve`` says) or a serving backend object.
        mlflow: the registry to deploy from; the environment's when not given.
        kserve: the KServe target block, for ``backend="kserve"``.

    Raises:
        DeploymentFailed: the rollout failed; ``rolled_back`` says the old version serves.
    """
    from mlrelay.serving import deploy

    spec = as_spec(DeploymentSpec, spec, "spec")
    settings = mlflow_settings(mlflow)
    deployment = deploy(spec, serving_backend(backend, mlflow=settings, kserve=kserve))
    artifacts.endpoint(deployment)
    artifacts.lineage(deployment, settings)
    model = f"{deployment.model_name} v{deployment.model_version}"
    if deployment.promoted:
        share = deployment.traffic.get(deployment.model_version, 100)
        traffic = "all traffic" if share >= 100 else f"canary, {share}% of traffic"
        say_done(f"deployed {model} to {deployment.name} ({traffic}) at {deployment.url}")
    else:
        say_done(f"{deployment.name} already serves {model}: smoke test passed")
    return deployment


@task(
    name="rollback_deployment",
    retries=2,
    retry_delay_seconds=[10, 60],
    task_run_name=task_run_namer(lambda p: f"roll back {p['name']}"),
    retry_condition_fn=retry_unless_final,
    cache_policy=NO_CACHE,
)
def rollback_deployment(
    name: str,
    *,
    backend: ServingBackendName | ServingBackend = "local",
    mlflow: MLflowCredentials | MLflowSettings | None = None,
    kserve: KServeTarget | None = None,
) -> Deployment:
    """Serve the version that endpoint ``name`` served before its last rollout again."""
    from mlrelay.serving import rollback

    settings = mlflow_settings(mlflow)
    deployment = rollback(name, serving_backend(backend, mlflow=settings, kserve=kserve))
    artifacts.endpoint(deployment)
    say_done(f"rolled {name} back to {deployment.model_name} v{deployment.model_version}")
    return deployment
