"""Resource kinds the emulator serves, with the defaulting and validation the API server applies.

A :class:`ResourceKind` is what a CustomResourceDefinition is to a real cluster: group, version,
plural, kind and scope. Built-in kinds add the defaulting and the required-field checks the real
API server performs, because clients (and our own backends) rely on them: a Job without a
``restartPolicy`` of ``Never``/``OnFailure`` is rejected with 422, a Job gets its selector and
``controller-uid`` labels at create time.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Causes = list[tuple[str, str]]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@dataclass(frozen=True)
class ResourceKind:
    """One served resource type (the emulator's equivalent of a CRD).

    Attributes:
        status_subresource: ``.../status`` exists and the main endpoint ignores status changes.
        default_propagation: what DELETE does to dependents when the client names no policy
            (``Orphan`` for ``batch/v1`` Jobs, for historical reasons, ``Background`` otherwise).
        label_name: the name must be a DNS-1123 label (63 chars) rather than a subdomain.
        field_selectors: field paths usable in ``fieldSelector`` besides ``metadata.name`` and
            ``metadata.namespace``.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    singular: str = ""
    status_subresource: bool = True
    default_propagation: str = "Background"
    label_name: bool = False
    field_selectors: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()
    defaulter: Callable[[Obj], None] | None = field(default=None, compare=False, repr=False)
    validator: Callable[[Obj], Causes] | None = field(default=None, compare=False, repr=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def validate_name(kind: ResourceKind, name: object) -> Causes:
    if not isinstance(name, str) or not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    pattern, msg, limit = (
        (_DNS1123_LABEL, _LABEL_MSG, 63)
        if kind.label_name
        else (_DNS1123_SUBDOMAIN, _SUBDOMAIN_MSG, 253)
    )
    if len(name) > limit:
        return [
            ("metadata.name", f'Invalid value: "{name}": must be no more than {limit} characters')
        ]
    if not pattern.match(name):
        return [("metadata.name", f'Invalid value: "{name}": {msg}')]
    return []


def _containers(spec: Any, path: str) -> Causes:
    if not isinstance(spec, dict):
        return [(path, "Required value")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [(f"{path}.containers", "Required value")]
    causes: Causes = []
    for i, c in enumerate(containers):
        at = f"{path}.containers[{i}]"
        if not isinstance(c, dict):
            causes.append((at, "Invalid value: must be an object"))
            continue
        if not c.get("name"):
            causes.append((f"{at}.name", "Required value"))
        elif not _DNS1123_LABEL.match(str(c["name"])):
            causes.append((f"{at}.name", f'Invalid value: "{c["name"]}": {_LABEL_MSG}'))
        if not c.get("image"):
            causes.append((f"{at}.image", "Required value"))
    return causes


def _default_pod_spec(spec: Obj, restart: str = "Always") -> None:
    spec.setdefault("restartPolicy", restart)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            image = str(c.get("image", ""))
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            c.setdefault("imagePullPolicy", "IfNotPresent" if tagged else "Always")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})


def _default_pod(obj: Obj) -> None:
    if isinstance(obj.get("spec"), dict):
        _default_pod_spec(obj["spec"])
    obj.setdefault("status", {}).setdefault("phase", "Pending")
    obj["status"].setdefault("qosClass", "BestEffort")


def _validate_pod(obj: Obj) -> Causes:
    return _containers(obj.get("spec"), "spec")


def _default_job(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        tspec = template["spec"]
        tspec.setdefault("terminationGracePeriodSeconds", 30)
        for c in tspec.get("containers") or []:
            if isinstance(c, dict):
                c.setdefault("terminationMessagePath", "/dev/termination-log")
                c.setdefault("terminationMessagePolicy", "File")
        # The selector and the pod labels that tie pods to this Job, as the Job strategy sets them.
        uid = obj["metadata"]["uid"]
        name = obj["metadata"]["name"]
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault("batch.kubernetes.io/controller-uid", uid)
        labels.setdefault("batch.kubernetes.io/job-name", name)
        labels.setdefault("controller-uid", uid)
        labels.setdefault("job-name", name)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    obj.setdefault("status", {})


def _validate_job(obj: Obj) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    template = spec.get("template")
    if not isinstance(template, dict):
        return [("spec.template", "Required value")]
    causes = _containers(template.get("spec"), "spec.template.spec")
    tspec = template.get("spec")
    if isinstance(tspec, dict):
        policy = tspec.get("restartPolicy")
        if policy is None:
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    'Required value: valid values: "OnFailure", "Never"',
                )
            )
        elif policy not in ("OnFailure", "Never"):
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            )
    for name in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(name)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(
                (f"spec.{name}", f"Invalid value: {value}: must be greater than or equal to 0")
            )
    return causes


def _default_secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _validate_secret(obj: Obj) -> Causes:
    causes: Causes = []
    for k, v in (obj.get("data") or {}).items():
        try:
            base64.b64decode(str(v), validate=True)
        except (binascii.Error, ValueError):
            causes.append((f"data[{k}]", "Invalid value: illegal base64 data"))
    return causes


def _default_namespace(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
        "name"
    ]


def _default_event(obj: Obj) -> None:
    obj.setdefault("type", "Normal")
    obj.setdefault("count", 1)


POD_FIELDS = frozenset(
    {
        "status.phase",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.podIP",
        "status.nominatedNodeName",
    }
)
EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)

NAMESPACES = ResourceKind(
    "",
    "v1",
    "namespaces",
    "Namespace",
    namespaced=False,
    short_names=("ns",),
    singular="namespace",
    label_name=True,
    defaulter=_default_namespace,
    field_selectors=frozenset({"status.phase"}),
)
PODS = ResourceKind(
    "",
    "v1",
    "pods",
    "Pod",
    short_names=("po",),
    singular="pod",
    categories=("all",),
    defaulter=_default_pod,
    validator=_validate_pod,
    field_selectors=POD_FIELDS,
)
EVENTS = ResourceKind(
    "",
    "v1",
    "events",
    "Event",
    short_names=("ev",),
    singular="event",
    status_subresource=False,
    defaulter=_default_event,
    field_selectors=EVENT_FIELDS,
)
SECRETS = ResourceKind(
    "",
    "v1",
    "secrets",
    "Secret",
    singular="secret",
    status_subresource=False,
    defaulter=_default_secret,
    validator=_validate_secret,
    field_selectors=frozenset({"type"}),
)
CONFIGMAPS = ResourceKind(
    "",
    "v1",
    "configmaps",
    "ConfigMap",
    short_names=("cm",),
    singular="configmap",
    status_subresource=False,
)
JOBS = ResourceKind(
    "batch",
    "v1",
    "jobs",
    "Job",
    short_names=("job",),
    singular="job",
    categories=("all",),
    default_propagation="Orphan",
    label_name=True,
    defaulter=_default_job,
    validator=_validate_job,
    field_selectors=frozenset({"status.successful"}),
)
BUILTIN_KINDS = (NAMESPACES, PODS, EVENTS, SECRETS, CONFIGMAPS, JOBS)


def custom(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    status_subresource: bool = True,
) -> ResourceKind:
    """A custom resource kind, as a CRD with a ``status`` subresource would declare it."""
    return ResourceKind(
        group,
        version,
        plural,
        kind,
        namespaced=namespaced,
        short_names=short_names,
        singular=kind.lower(),
        status_subresource=status_subresource,
    )


INFERENCE_SERVICES = custom(
    "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", short_names=("isvc",)
)
TRAIN_JOBS = custom("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
PYTORCH_JOBS = custom("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
# Trainer v2 runtimes: templates a TrainJob references (no status subresource in their CRDs).
CLUSTER_TRAINING_RUNTIMES = custom(
    "trainer.kubeflow.org",
    "v1alpha1",
    "clustertrainingruntimes",
    "ClusterTrainingRuntime",
    namespaced=False,
    status_subresource=False,
)
TRAINING_RUNTIMES = custom(
    "trainer.kubeflow.org",
    "v1alpha1",
    "trainingruntimes",
    "TrainingRuntime",
    status_subresource=False,
)


def new_uid() -> str:
    return str(uuid.uuid4())
