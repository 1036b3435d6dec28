"""``train_and_deploy``: the whole lifecycle as one flow, ready for ``flow.serve()`` or a deployment.

validate -> build training set -> materialize features -> train -> register -> promote (gate) ->
deploy (replace or canary). Every parameter is JSON (blocks are chosen by name in the UI), so
the flow deploys as it is; ``training_backend`` and ``serving_backend`` move it from this machine
to a cluster without another change. A model the gate rejects is not deployed: the flow still
completes, and says which version keeps the alias.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict

from mlrelay._model import safe_name
from mlrelay.features.spec import (
    FeatureRequest,
    MaterializationResult,
    MaterializeRequest,
    TrainingSet,
)
from mlrelay.registry.spec import ModelVersionRef, PromotionDecision, PromotionGate
from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec, Replace
from mlrelay.settings import LocalSettings
from mlrelay.training.spec import Resources, TrainingJob, TrainingResult
from mlrelay.validation.spec import ValidationPolicy, ValidationReport
from prefect_mlrelay._runtime import run_logger
from prefect_mlrelay.backends import ServingBackendName, TrainingBackendName
from prefect_mlrelay.blocks import KServeTarget, KubernetesCluster, MLflowCredentials
from prefect_mlrelay.tasks import (
    build_training_set,
    deploy_model,
    materialize_features,
    promote_model,
    register_model,
    validate_data,
)
from prefect_mlrelay.training import train_model

DEFAULT_GATE = PromotionGate(metric="roc_auc", min_delta=0.0, on_reject="return")


class TrainAndDeployResult(BaseModel):
    """What one run of the pipeline did, step by step (the core's results, unchanged)."""

    model_config = ConfigDict(frozen=True)

    validation: ValidationReport
    training_set: TrainingSet
    materialization: MaterializationResult | None
    training: TrainingResult
    model_version: ModelVersionRef
    promotion: PromotionDecision
    deployment: Deployment | None


@flow(name="train-and-deploy", log_prints=False)
def train_and_deploy(
    data: str,
    suite: str,
    feature_repo: str,
    training_command: list[str],
    model_name: str = "fraud-detector",
    feature_service: str | None = None,
    features: list[str] | None = None,
    training_args: list[str] | None = None,
    training_set_path: str | None = None,
    image: str | None = None,
    resources: Resources | None = None,
    training_timeout: float | None = None,
    training_backend: TrainingBackendName = "local",
    gate: PromotionGate = DEFAULT_GATE,
    alias: str = "champion",
    endpoint: str | None = None,
    canary_percent: int | None = None,
    serving_backend: ServingBackendName = "local",
    materialize: bool = True,
    materialize_start: datetime | None = None,
    materialize_end: datetime | None = None,
    validation_policy: ValidationPolicy | None = None,
    mlflow: MLflowCredentials | None = None,
    kubernetes: KubernetesCluster | None = None,
    kserve: KServeTarget | None = None,
) -> TrainAndDeployResult:
    """Validate, build features, train, register, gate and roll out one model.

    Args:
        data: the entity rows with labels (CSV or Parquet): validated, then joined with features.
        suite: the Great Expectations suite (JSON file) the data must pass.
        feature_repo: the Feast repository.
        training_command: the trainer's argv (e.g. ``["python", "train.py"]``); it is given
            ``--training-set PATH`` and then ``training_args``.
        model_name: the registered model, the MLflow experiment and (by default) the endpoint.
        feature_service / features: what to join (exactly one of them).
        training_set_path: where the training set is written (default: under ``MLRELAY_HOME``,
            one file per flow run). A cluster trainer must be able to read it.
        image / resources: the training container, for cluster backends.
        training_backend: ``local``, ``kubernetes``, ``trainjob`` or ``pytorchjob``.
        gate: when the new version takes ``alias``; the default promotes a model that scores
            no worse in ``roc_auc`` and returns (does not raise) a rejection.
        canary_percent: roll out as a canary with this share of traffic (KServe; the local
            backend replaces and says so).
        serving_backend: ``local`` or ``kserve``.
        materialize / materialize_start / materialize_end: load the online store up to
            ``materialize_end`` (default now), from ``materialize_start`` (default: where the
            last load ended).
        validation_policy: ``{"on_failure": "warn"}`` lets failed data through with a warning.
        mlflow / kubernetes / kserve: connection blocks; the environment's when not given.
    """
    log = run_logger()
    report: ValidationReport = validate_data(data, suite, validation_policy)
    tset: TrainingSet = build_training_set(
        FeatureRequest(
            repo=feature_repo,
            entity_source=data,
            feature_service=feature_service,
            features=features or [],
            output=training_set_path or _default_output(model_name),
        )
    )
    loaded: MaterializationResult | None = None
    if materialize:
        loaded = materialize_features(
            MaterializeRequest(
                repo=feature_repo,
                start=materialize_start,
                end=materialize_end or datetime.now(UTC),
            )
        )
    job = TrainingJob(
        name=safe_name(model_name, "train"),
        command=training_command,
        args=["--training-set", tset.path, *(training_args or [])],
        image=image,
        resources=resources or Resources(),
        experiment=model_name,
        dataset_uri=tset.path,
        dataset_hash=tset.data_hash,
        validation=report.model_dump(
            mode="json", include={"success", "suite_name", "statistics", "data_hash"}
        ),
    )
    result: TrainingResult = train_model(
        job,
        backend=training_backend,
        mlflow=mlflow,
        kubernetes=kubernetes,
        timeout=training_timeout,
    )
    version: ModelVersionRef = register_model(result, model_name, mlflow=mlflow)
    decision: PromotionDecision = promote_model(version, gate, alias=alias, mlflow=mlflow)
    deployment: Deployment | None = None
    if decision.promoted:
        strategy = Canary(canary_percent) if canary_percent else Replace()
        deployment = deploy_model(
            DeploymentSpec(
                name=endpoint or safe_name(model_name), model=version, strategy=strategy
            ),
            backend=serving_backend,
            mlflow=mlflow,
            kserve=kserve,
        )
    else:
        log.info("not deployed: %s", decision.reason)
    return TrainAndDeployResult(
        validation=report,
        training_set=tset,
        materialization=loaded,
        training=result,
        model_version=version,
        promotion=decision,
        deployment=deployment,
    )


def _default_output(model_name: str) -> str:
    """One training set per flow run: a retried run rewrites the same file, trains on the same."""
    run = flow_run.get_id() or "adhoc"
    return str(
        LocalSettings().home.resolve() / "prefect" / run / f"{safe_name(model_name)}.parquet"
    )
