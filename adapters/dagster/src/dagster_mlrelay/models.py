"""The model as an asset: train on the training set, register the version, gate its promotion.

Materializing the asset runs the core's ``train`` on the chosen backend (a local process, or a
Kubernetes Job through the ``kubernetes`` resource), streams the trainer's output into the
run's log as it is printed, registers the logged model in MLflow and asks the promotion gate
whether it takes the alias. Its metadata links the MLflow run and model version, carries every
final metric as a number (plotted across materializations) and the gate's decision, and shows
the lineage trail back to the data.

Terminating the run interrupts the step (Dagster raises ``DagsterExecutionInterruptedError`` in
it, for a UI termination, a SIGTERM to the run worker and a step process alike); ``train``
stops the job on any exception, so the Kubernetes Job or local trainer is gone before the step
ends (FAULTS O1). A retried or re-executed run adopts the job its first attempt started (O2, O3,
see ``_runtime.run_identity``).
"""

from typing import Any, Literal

import dagster as dg

from dagster_mlrelay import _metadata
from dagster_mlrelay._runtime import (
    AssetKeyLike,
    asset_key,
    dagster_tags,
    failures_as_dagster,
    run_identity,
)
from dagster_mlrelay.resources import KubernetesResource, MLflowResource
from mlrelay.features.spec import TrainingSet
from mlrelay.registry.spec import ModelVersionRef, PromotionDecision, PromotionGate
from mlrelay.training.backend import TrainingBackend
from mlrelay.training.spec import TrainingJob, TrainingResult

__all__ = ["build_model_asset"]

TrainingBackendKind = Literal["local", "kubernetes"]


def build_model_asset(
    name: str,
    *,
    training_set: AssetKeyLike,
    job: TrainingJob,
    model_name: str,
    gate: PromotionGate | None = None,
    alias: str = "champion",
    backend: TrainingBackendKind = "local",
    training_set_arg: str | None = "--training-set",
    validation: dg.AssetCheckKey | dg.AssetChecksDefinition | None = None,
    timeout: float | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    group_name: str | None = None,
    description: str | None = None,
) -> dg.AssetsDefinition:
    """An asset that trains, registers and promotes a model; its value is the ``ModelVersionRef``.

    Args:
        name: the asset's name.
        training_set: the asset whose value is a ``TrainingSet`` (``build_training_set_asset``).
        job: the training job. Its ``args`` get ``training_set_arg`` and the training set's path
            appended, and it is tagged with the training set's hash and the validation result.
        model_name: the registered model in MLflow.
        gate: the promotion rule; None registers the version without promoting it. With
            ``on_reject="raise"`` a rejected model fails the asset (``Failure`` carrying the
            decision); with ``"return"`` the asset materializes and records the decision.
        alias: the alias the gate decides on.
        backend: ``"local"`` (a process on the run worker) or ``"kubernetes"`` (a Job on the
            cluster of the ``kubernetes`` resource; the job needs an ``image``).
        training_set_arg: the trainer's option for the training set's path; None appends nothing.
        validation: the validation check whose latest result is recorded on the model version
            (lineage); the check's report metadata is read from the Dagster instance.
        timeout: seconds the job may run (the shorter of this and ``job.timeout``).
        partitions_def: usually the training set's; each partition trains its own model version.
        retry_policy: Dagster retries of the step; a retry adopts the job the try before started.

    Requires the ``mlflow`` resource, and ``kubernetes`` for ``backend="kubernetes"``.
    """
    check_key = _check_key(validation)
    resource_keys = {"mlflow"} | ({"kubernetes"} if backend == "kubernetes" else set())
    kinds = {"mlflow", "kubernetes" if backend == "kubernetes" else "python"}

    @dg.asset(
        name=name,
        ins={"training_set": dg.AssetIn(key=asset_key(training_set))},
        partitions_def=partitions_def,
        required_resource_keys=resource_keys,
        retry_policy=retry_policy,
        group_name=group_name,
        kinds=kinds,
        description=description or f"MLflow model {model_name!r}, trained by job {job.name!r}.",
    )
    def model_asset(context: dg.AssetExecutionContext, training_set: Any) -> dg.MaterializeResult:  # type: ignore[type-arg]
        from mlrelay.lineage_trail import trail
        from mlrelay.registry import promote, register_model
        from mlrelay.training import train

        mlflow: MLflowResource = context.resources.mlflow
        report = _latest_report(context, check_key)
        with failures_as_dagster():
            settings = mlflow.settings()
            tset = TrainingSet.model_validate(training_set)
            result = train(
                _job_for(job, tset, report, training_set_arg, dagster_tags(context)),
                _training_backend(context, backend),
                identity=run_identity(context),
                settings=settings,
                timeout=timeout,
                log=context.log.info,
            )
        run_link = mlflow.run_url(result.experiment_id, result.run_id)
        with failures_as_dagster(mlflow_run=_metadata.link(run_link, result.run_id)):
            version = register_model(result, model_name, settings=settings)
            decision = promote(version, gate, alias=alias, settings=settings) if gate else None
            found = trail(f"{model_name}/{version.version}", settings=settings)
        if decision is not None:
            context.log.info(
                f"{model_name} v{version.version}: "
                + ("promoted" if decision.promoted else "not promoted")
                + f" to @{alias}: {decision.reason}"
            )
        metadata = _model_metadata(mlflow, result, version, decision, run_link)
        metadata.update(_metadata.lineage(found))
        return dg.MaterializeResult(value=version.model_dump(mode="json"), metadata=metadata)

    return model_asset


def _check_key(
    validation: dg.AssetCheckKey | dg.AssetChecksDefinition | None,
) -> dg.AssetCheckKey | None:
    if not isinstance(validation, dg.AssetChecksDefinition):
        return validation
    keys = list(validation.check_keys)
    if len(keys) != 1:
        raise dg.DagsterInvalidDefinitionError(
            f"validation: {len(keys)} checks in one definition; pass the AssetCheckKey to record"
        )
    return keys[0]


def _training_backend(
    context: dg.AssetExecutionContext, kind: TrainingBackendKind
) -> TrainingBackend:
    if kind == "kubernetes":
        kubernetes: KubernetesResource = context.resources.kubernetes
        return kubernetes.training_backend()
    from mlrelay.training.local import LocalBackend

    return LocalBackend()


def _job_for(
    job: TrainingJob,
    tset: TrainingSet,
    report: dict[str, Any] | None,
    training_set_arg: str | None,
    tags: dict[str, str],
) -> TrainingJob:
    """The job with the training set's path appended and its lineage filled in."""
    args = [*job.args, *([training_set_arg] if training_set_arg else []), tset.path]
    return job.model_copy(
        update={
            "args": args,
            "tags": {**tags, **job.tags},
            "dataset_uri": job.dataset_uri or tset.path,
            "dataset_hash": job.dataset_hash or tset.data_hash,
            "validation": job.validation or report,
        }
    )


def _latest_report(
    context: dg.AssetExecutionContext, key: dg.AssetCheckKey | None
) -> dict[str, Any] | None:
    """The validation report the check stored with its latest evaluation, if it ran."""
    if key is None:
        return None
    record = context.instance.get_latest_asset_check_evaluation_record(key)
    evaluation = record.event.asset_check_evaluation if record and record.event else None
    if evaluation is None:
        context.log.warning(f"check {key.to_user_string()} has not run: no validation recorded")
        return None
    return _metadata.report_from(evaluation.metadata)


def _model_metadata(
    mlflow: MLflowResource,
    result: TrainingResult,
    version: ModelVersionRef,
    decision: PromotionDecision | None,
    run_link: str | None,
) -> dict[str, Any]:
    version_link = mlflow.model_version_url(version.name, version.version)
    metadata: dict[str, Any] = {
        "mlflow_run": _metadata.link(run_link, result.run_id),
        "run_id": dg.MetadataValue.text(result.run_id),
        "model_version": _metadata.link(version_link, version.uri),
        "model_uri": dg.MetadataValue.text(version.uri),
        "version": dg.MetadataValue.int(int(version.version)),
        "job_name": dg.MetadataValue.text(result.job_name),
        "backend": dg.MetadataValue.text(result.backend),
        "training_seconds": dg.MetadataValue.float(result.duration_seconds),
        **_metadata.numbers(result.metrics, prefix=_metadata.METRIC_PREFIX),
    }
    if decision is not None:
        metadata["promoted"] = dg.MetadataValue.bool(decision.promoted)
        metadata["promotion"] = dg.MetadataValue.json(decision.model_dump(mode="json"))
        metadata["promotion_reason"] = dg.MetadataValue.text(decision.reason)
    return metadata
