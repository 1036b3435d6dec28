"""The endpoint as an asset: the model version that holds an alias, rolled out and smoke-tested.

The asset deploys whatever version holds the alias (``@champion``) when it runs, not the version
the upstream model asset just registered: the promotion gate decides what serves, and a
rejected candidate never reaches the endpoint. Redeploying the version that already serves only
smoke-tests it again, so re-materializing the asset is cheap and safe.
"""

from typing import Any, Literal

import dagster as dg

from dagster_mlrelay import _metadata
from dagster_mlrelay._runtime import AssetKeyLike, asset_key, failures_as_dagster
from dagster_mlrelay.resources import KServeResource, KubernetesResource, MLflowResource
from mlrelay.serving.base import ServingBackend
from mlrelay.serving.spec import Deployment, DeploymentSpec, Replace, Strategy
from mlrelay.settings import MLflowSettings

__all__ = ["build_deployment_asset"]

ServingBackendKind = Literal["local", "kserve"]


def build_deployment_asset(
    name: str,
    *,
    model: AssetKeyLike,
    model_name: str,
    alias: str = "champion",
    endpoint: str | None = None,
    strategy: Strategy | None = None,
    backend: ServingBackendKind = "local",
    sample_rows: list[dict[str, Any]] | None = None,
    smoke_test: bool = True,
    ready_timeout: float | None = None,
    port: int | None = None,
    group_name: str | None = None,
    description: str | None = None,
) -> dg.AssetsDefinition:
    """An asset that serves ``model_name@alias``; its value is the ``Deployment``.

    Args:
        name: the asset's name.
        model: the model asset upstream (``build_model_asset``), for ordering and lineage.
        model_name: the registered model; ``alias`` picks the version to serve.
        endpoint: the deployment's name (DNS-1123); the model name by default.
        strategy: ``Replace()`` (default) or ``Canary(percent)``; the local backend replaces.
        backend: ``"local"`` (the KServe model server on 127.0.0.1, kept under
            ``MLRELAY_HOME``) or ``"kserve"`` (an InferenceService, through the ``kserve`` and
            ``kubernetes`` resources).
        sample_rows / smoke_test / ready_timeout / port: see ``DeploymentSpec``.

    Requires the ``mlflow`` resource, and ``kserve`` + ``kubernetes`` for ``backend="kserve"``.
    """
    target = endpoint or model_name
    options: dict[str, Any] = {"strategy": strategy or Replace(), "smoke_test": smoke_test}
    if sample_rows is not None:
        options["sample_rows"] = sample_rows
    if ready_timeout is not None:
        options["ready_timeout"] = ready_timeout
    if port is not None:
        options["port"] = port
    resource_keys = {"mlflow"} | ({"kserve", "kubernetes"} if backend == "kserve" else set())

    @dg.asset(
        name=name,
        deps=[asset_key(model)],
        required_resource_keys=resource_keys,
        group_name=group_name,
        kinds={"kserve"},
        description=description or f"Endpoint {target!r} serving {model_name}@{alias}.",
    )
    def deployment_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:  # type: ignore[type-arg]
        from mlrelay.lineage_trail import trail
        from mlrelay.registry import get_version
        from mlrelay.serving import deploy

        mlflow: MLflowResource = context.resources.mlflow
        settings = mlflow.settings()
        with failures_as_dagster():
            version = get_version(model_name, f"@{alias}", settings=settings)
            spec = DeploymentSpec(name=target, model=version, **options)
            deployment = deploy(spec, _serving_backend(context, backend, settings))
        context.log.info(
            f"{target!r} serves {model_name} v{deployment.model_version} at {deployment.url}"
            + ("" if deployment.promoted else " (already served: smoke-tested again)")
        )
        metadata = _deployment_metadata(mlflow, deployment, target)
        try:
            found = trail(
                target if backend == "local" else f"{model_name}/{version.version}",
                settings=settings,
            )
            metadata.update(_metadata.lineage(found))
        except Exception as exc:  # the trail is a courtesy: never fail a deployment over it
            context.log.warning(f"could not read the lineage trail: {exc}")
        return dg.MaterializeResult(value=deployment.model_dump(mode="json"), metadata=metadata)

    return deployment_asset


def _serving_backend(
    context: dg.AssetExecutionContext, kind: ServingBackendKind, settings: MLflowSettings
) -> ServingBackend:
    if kind == "kserve":
        kserve: KServeResource = context.resources.kserve
        kubernetes: KubernetesResource = context.resources.kubernetes
        return kserve.serving_backend(kubernetes.settings(), settings)
    from mlrelay.serving.local import LocalServingBackend

    return LocalServingBackend(settings=settings)


def _deployment_metadata(
    mlflow: MLflowResource, deployment: Deployment, target: str
) -> dict[str, Any]:
    version_link = mlflow.model_version_url(deployment.model_name, deployment.model_version)
    metadata: dict[str, Any] = {
        "endpoint": dg.MetadataValue.url(deployment.url),
        "inference_url": dg.MetadataValue.url(f"{deployment.url}/v2/models/{target}/infer"),
        "model_version": _metadata.link(
            version_link, f"models:/{deployment.model_name}/{deployment.model_version}"
        ),
        "version": dg.MetadataValue.int(int(deployment.model_version)),
        "backend": dg.MetadataValue.text(deployment.backend),
        "promoted": dg.MetadataValue.bool(deployment.promoted),
        "traffic": dg.MetadataValue.json(deployment.traffic),
        **_metadata.numbers(deployment.timings, prefix="seconds/"),
    }
    smoke = deployment.smoke_test or {}
    if isinstance(smoke.get("latency_ms"), int | float):
        metadata["smoke_test_latency_ms"] = dg.MetadataValue.float(float(smoke["latency_ms"]))
    if deployment.pid is not None:
        metadata["pid"] = dg.MetadataValue.int(deployment.pid)
    return metadata
