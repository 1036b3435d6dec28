"""The InferenceService as data: where the model is, the manifest, and what its status says.

Kept apart from the rollout (``kserve.py``) so that both halves stay readable, and so that the
status rules can be checked on plain dicts. Facts they rest on (FAULTS D1-D3, KServe and Knative
sources):

- ``status.observedGeneration`` is the Knative Service's and can run ahead of the
  InferenceService's ``metadata.generation`` (kserve#6081); so a rollout is seen through the
  revisions: a new ``latestCreatedRevision`` that becomes the ``latestReadyRevision``, with
  Ready=True and ``observedGeneration >= generation`` (D2);
- a failed load shows as ``modelStatus.transitionStatus`` ``BlockedByFailedLoad`` or
  ``InvalidSpec`` with ``lastFailureInfo``, and ``targetModelState`` ``FailedToLoad`` (the
  active state stays ``Loaded`` while the previous revision serves); ``lastFailureInfo`` alone
  is not a failure (it survives a later success) (D1);
- while a revision loads, Ready is ``Unknown``, not ``False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlrelay.errors import ConfigError, ServiceUnavailable
from mlrelay.kube.client import Kind

Obj = dict[str, Any]

INFERENCE_SERVICES = Kind("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")

# What KServe's storage initializer can fetch (kserve/storage: _download_* by scheme).
STORAGE_SCHEMES = frozenset(
    {"s3", "gs", "pvc", "https", "http", "hdfs", "webhdfs", "hf", "oci", "file"}
)
FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})
MANAGED_BY = "app.kubernetes.io/managed-by"
PREVIOUS = "mlrelay.io/previous-predictor"  # JSON of the predictor spec a rollout replaced
MODEL_NAME, MODEL_VERSION = "mlrelay.io/model-name", "mlrelay.io/model-version"
PREVIOUS_VERSION = "mlrelay.io/previous-model-version"
RUN_ID, DATASET_HASH = "mlrelay.io/run-id", "mlrelay.io/dataset-hash"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"


def storage_uri(download_uri: str, destinations: Mapping[str, str]) -> str:
    """The URI KServe reads the model from: ``download_uri`` with its ``mlflow-artifacts:``
    prefix mapped onto the store the MLflow server writes to (the REST API does not say).

    Raises:
        ConfigError: no mapping for an ``mlflow-artifacts:`` URI, or a result whose scheme
            KServe's storage initializer cannot read; names the setting to add.
    """
    mapped = download_uri
    for prefix in sorted(destinations, key=len, reverse=True):
        if download_uri.startswith(prefix):
            mapped = destinations[prefix] + download_uri[len(prefix) :]
            break
    scheme = urlsplit(mapped).scheme
    if scheme in STORAGE_SCHEMES:
        return mapped
    hint = (
        "map it in MLRELAY_ARTIFACT_DESTINATIONS (MLflowSettings.artifact_destinations), e.g. "
        '{"mlflow-artifacts:/": "s3://<bucket>/<artifacts-destination>/"}'
    )
    raise ConfigError(
        f"KServe cannot read the model at {mapped!r} (scheme {scheme or 'none'!r}; it reads "
        f"{', '.join(sorted(STORAGE_SCHEMES))}): {hint}",
        field="artifact_destinations",
    )


@dataclass(frozen=True)
class Predictor:
    """How the predictor runs, beyond the model: the KServe knobs a platform team sets."""

    model_format: str = "mlflow"
    protocol_version: str = "v2"
    runtime: str | None = None
    resources: Mapping[str, Any] | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_metric: str | None = None
    scale_target: int | None = None
    service_account: str | None = None
    node_selector: Mapping[str, str] | None = None
    tolerations: tuple[Mapping[str, Any], ...] = ()

    def spec(self, storage: str) -> Obj:
        model: Obj = {
            "modelFormat": {"name": self.model_format},
            "protocolVersion": self.protocol_version,
            "storageUri": storage,
        }
        if self.runtime:
            model["runtime"] = self.runtime
        if self.resources:
            model["resources"] = dict(self.resources)
        predictor: Obj = {"model": model}
        for key, value in (
            ("minReplicas", self.min_replicas),
            ("maxReplicas", self.max_replicas),
            ("scaleMetric", self.scale_metric),
            ("scaleTarget", self.scale_target),
            ("serviceAccountName", self.service_account),
        ):
            if value is not None:
                predictor[key] = value
        if self.node_selector:
            predictor["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            predictor["tolerations"] = [dict(t) for t in self.tolerations]
        return predictor


def generation(obj: Obj) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def without_canary(predictor: Mapping[str, Any] | None) -> Obj:
    return {k: v for k, v in (predictor or {}).items() if k != "canaryTrafficPercent"}


@dataclass(frozen=True)
class Rollout:
    """The status of one InferenceService, read for a rollout."""

    obj: Obj

    @property
    def status(self) -> Obj:
        return dict(self.obj.get("status") or {})

    @property
    def predictor(self) -> Obj:
        return dict((self.status.get("components") or {}).get("predictor") or {})

    @property
    def created(self) -> str | None:
        return self.predictor.get("latestCreatedRevision")

    @property
    def ready_revision(self) -> str | None:
        return self.predictor.get("latestReadyRevision")

    @property
    def url(self) -> str | None:
        return self.status.get("url")

    def condition(self, type_: str) -> str | None:
        for c in self.status.get("conditions") or []:
            if c.get("type") == type_:
                return str(c.get("status"))
        return None

    @property
    def current(self) -> bool:
        """The controller has processed the latest spec (D2: necessary, not sufficient)."""
        generation = (self.obj.get("metadata") or {}).get("generation", 0)
        return int(self.status.get("observedGeneration") or 0) >= int(generation)

    @property
    def failure(self) -> Obj | None:
        """Why the latest revision cannot serve, or None (D1)."""
        model = self.status.get("modelStatus") or {}
        states = model.get("states") or {}
        if (
            model.get("transitionStatus") in FAILED_TRANSITIONS
            or states.get("targetModelState") == "FailedToLoad"
        ):
            info = dict(model.get("lastFailureInfo") or {})
            info.setdefault("reason", model.get("transitionStatus"))
            info["transitionStatus"] = model.get("transitionStatus")
            return info
        return None

    def ready_on(self, revision_not: str | None) -> bool:
        """A revision other than ``revision_not`` was created, is the ready one, and Ready=True."""
        return (
            self.current
            and self.created is not None
            and self.created != revision_not
            and self.ready_revision == self.created
            and self.condition("Ready") == "True"
        )

    def traffic(self) -> dict[str, int]:
        """Percent per revision name (tagged routes and zero entries left out)."""
        split: dict[str, int] = {}
        for t in self.predictor.get("traffic") or []:
            if t.get("revisionName") and t.get("percent"):
                split[t["revisionName"]] = split.get(t["revisionName"], 0) + int(t["percent"])
        return split

    def tag_url(self, tag: str) -> str | None:
        for t in self.predictor.get("traffic") or []:
            if t.get("tag") == tag and t.get("url"):
                return str(t["url"])
        return None

    def summary(self) -> Obj:
        """What a DeploymentFailed carries: revisions, traffic, conditions, model status."""
        return {
            "url": self.url,
            "latestCreatedRevision": self.created,
            "latestReadyRevision": self.ready_revision,
            "traffic": self.traffic(),
            "conditions": {
                c.get(
                    "type"
                ): f"{c.get('status')}: {c.get('reason') or ''} {c.get('message') or ''}".strip()
                for c in self.status.get("conditions") or []
            },
            "modelStatus": self.status.get("modelStatus"),
        }


def resolve(spec: Any, settings: Any) -> tuple[str, str | None, str | None]:
    """The storage URI KServe reads ``spec.model`` from, its run id and dataset hash (lineage).

    Raises:
        ConfigError: the version is not registered, not READY, or its storage cannot be mapped.
        ServiceUnavailable: the registry did not answer.
    """
    from mlrelay import _mlflow

    client = _mlflow.client(settings)
    ref = spec.model
    try:
        version = client.get_model_version(ref.name, ref.version)
        where = client.get_model_version_download_uri(ref.name, ref.version)
    except Exception as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise ConfigError(f"{ref.uri} is not registered", field="model") from exc
        raise ServiceUnavailable(
            f"could not read {ref.uri} from the registry", uri=settings.display_uri
        ) from exc
    if version.status != "READY":
        raise ConfigError(f"{ref.uri} is {version.status}, not READY", field="model")
    storage = storage_uri(where, settings.artifact_destinations)
    return storage, version.run_id, (version.tags or {}).get("mlrelay.dataset_hash")


def lineage_annotations(
    spec: Any, mode: str, run_id: str | None, dataset: str | None
) -> dict[str, str]:
    """Lineage (model, version, run, dataset) and how KServe runs it (mode, tag routing)."""
    notes = {
        MODEL_NAME: spec.model.name,
        MODEL_VERSION: spec.model.version,
        DEPLOYMENT_MODE: mode,
        TAG_ROUTING: "true",  # the smoke test reaches the new revision by its tag
    }
    if run_id:
        notes[RUN_ID] = run_id
    if dataset:
        notes[DATASET_HASH] = dataset
    return notes


def traffic_by_version(r: Rollout, version: str) -> dict[str, int]:
    """The split per model version: the latest revision is ``version``, older ones the previous."""
    notes = (r.obj.get("metadata") or {}).get("annotations") or {}
    traffic: dict[str, int] = {}
    for revision, percent in r.traffic().items():
        label = version if revision == r.created else notes.get(PREVIOUS_VERSION) or revision
        traffic[label] = traffic.get(label, 0) + percent
    return traffic
