"""The ``kubeflow.org/v1`` PyTorchJob API as the Training Operator (v1.8) defines it.

What the controller in :mod:`mlrelay.testing.pytorchjobs` needs, kept apart from it: the
operator's validating webhook (``pkg/webhooks/pytorch``; a PyTorchJob without a container named
``pytorch``, or whose Master does not say ``replicas: 1``, is refused at create; 422 here, the
real webhook's denial is a 403 with the same field errors), ``SetDefaults_PyTorchJob`` (applied in
memory on every sync as the operator's scheme defaulting does, so the stored spec stays as the
user wrote it: replicas 1, ``restartPolicy: OnFailure``, port ``pytorchjob-port: 23456`` on the
``pytorch`` container, ``cleanPodPolicy: None``, ``nprocPerNode: auto``), ``setPodEnv`` and the
condition rules of ``pkg/util/status.go``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from datetime import datetime

from mlrelay.testing.kinds import PYTORCH_JOBS, Causes, Obj
from mlrelay.testing.recorder import timestamp

PREFIX = "training.kubeflow.org/"
OPERATOR = "pytorchjob-controller"
CONTAINER, PORT_NAME, DEFAULT_PORT = "pytorch", "pytorchjob-port", 23456
REPLICA_TYPES = ("Master", "Worker")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_MSG = (
    "should match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  "
    "or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def validate(job: Obj) -> Causes:
    """The operator's validating webhook (``pkg/webhooks/pytorch``), as field errors."""
    causes: Causes = []
    name = str(job["metadata"].get("name", ""))
    if len(name) > 63 or not _DNS1035.match(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": {_DNS1035_MSG}'))
    specs = (job.get("spec") or {}).get("pytorchReplicaSpecs")
    if not isinstance(specs, dict) or not specs:
        return [*causes, ("spec.pytorchReplicaSpecs", "Required value: must be required")]
    for rtype, rspec in specs.items():
        at = f"spec.pytorchReplicaSpecs[{rtype}]"
        if rtype not in REPLICA_TYPES:
            causes.append(
                (at, f'Unsupported value: "{rtype}": supported values: "Master", "Worker"')
            )
        containers = ((rspec or {}).get("template") or {}).get("spec", {}).get("containers") or []
        path = f"{at}.template.spec.containers"
        if not containers:
            causes.append((path, "Required value: must be specified"))
        for i, c in enumerate(containers):
            if not c.get("image"):
                causes.append((f"{path}[{i}].image", "Required value: must be required"))
        if not any(c.get("name") == CONTAINER for c in containers):
            causes.append(
                (path, f"Required value: must have at least one container with name {CONTAINER}")
            )
        replicas = (rspec or {}).get("replicas")
        if rtype == "Master" and replicas != 1:
            causes.append((f"{at}.replicas", "Forbidden: must be 1"))
        elif rtype == "Worker" and replicas is not None and replicas < 1:
            causes.append((f"{at}.replicas", "Forbidden: must be at least 1"))
    return causes


def _default_run_policy(job: Obj) -> None:
    """The CRD's structural default (``runPolicy.suspend: false``), persisted by the API server."""
    run = (job.get("spec") or {}).get("runPolicy")
    if isinstance(run, dict):
        run.setdefault("suspend", False)


#: The kind with the operator's webhook, registered when the controller is installed.
KIND = dataclasses.replace(PYTORCH_JOBS, validator=validate, defaulter=_default_run_policy)


def defaulted(spec: Obj) -> Obj:
    """``SetDefaults_PyTorchJob``, on a copy: what the operator reconciles against."""
    spec = copy.deepcopy(spec)
    specs = {}
    for rtype, rspec in (spec.get("pytorchReplicaSpecs") or {}).items():
        canonical = next((t for t in REPLICA_TYPES if t.lower() == str(rtype).lower()), rtype)
        rspec.setdefault("replicas", 1)
        rspec.setdefault("restartPolicy", "OnFailure")
        for c in rspec.get("template", {}).get("spec", {}).get("containers") or []:
            ports = c.setdefault("ports", []) if c.get("name") == CONTAINER else None
            if ports is not None and not any(p.get("name") == PORT_NAME for p in ports):
                ports.append({"name": PORT_NAME, "containerPort": DEFAULT_PORT})
        specs[canonical] = rspec
    spec["pytorchReplicaSpecs"] = {t: specs[t] for t in REPLICA_TYPES if t in specs}
    spec.setdefault("runPolicy", {}).setdefault("cleanPodPolicy", "None")
    spec.setdefault("nprocPerNode", "auto")
    return spec


def set_condition(
    status: Obj, type_: str, value: str, reason: str, message: str, now: datetime
) -> None:
    """``commonutil.UpdateJobConditions``: replace-and-append, with the operator's exclusions."""
    conds: list[Obj] = status.setdefault("conditions", [])
    if any(c["type"] == "Failed" and c["status"] == "True" for c in conds):
        return
    current = next((c for c in conds if c["type"] == type_), None)
    if current and current["status"] == value and current.get("reason") == reason:
        return
    stamp = timestamp(now)
    changed = current["lastTransitionTime"] if current and current["status"] == value else stamp
    kept = []
    for c in conds:
        if c["type"] == type_ or {c["type"], type_} == {"Running", "Restarting"}:
            continue
        if type_ in ("Failed", "Succeeded") and c["type"] == "Running":
            c = {**c, "status": "False"}
        kept.append(c)
    new = {"type": type_, "status": value, "reason": reason, "message": message}
    kept.append({**new, "lastUpdateTime": stamp, "lastTransitionTime": changed})
    status["conditions"] = kept


def is_true(status: Obj, type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in status.get("conditions") or [])


def pod_env(name: str, spec: Obj, rtype: str, index: int) -> list[Obj]:
    """``setPodEnv``: what the operator appends to every container of a replica's pod."""
    replicas = spec["pytorchReplicaSpecs"]
    total = sum(int(r["replicas"]) for r in replicas.values())
    nproc = str(spec.get("nprocPerNode") or "auto")
    env = [{"name": "PYTHONUNBUFFERED", "value": "0"}]
    if "Master" in replicas:
        master = replicas["Master"]["template"]["spec"]["containers"]
        ports = [p for c in master if c.get("name") == CONTAINER for p in c.get("ports") or []]
        port = next(p["containerPort"] for p in ports if p.get("name") == PORT_NAME)
        rank = index + 1 if rtype == "Worker" else index
        for var, value in (
            ("MASTER_PORT", port),
            ("MASTER_ADDR", f"{name}-master-0"),
            ("WORLD_SIZE", total * (int(nproc) if nproc.isdigit() else 1)),
            ("RANK", rank),
            ("PET_NPROC_PER_NODE", nproc),
            ("PET_NODE_RANK", rank),
        ):
            env.append({"name": var, "value": str(value)})
    if spec.get("elasticPolicy") is None:
        env.append({"name": "PET_NNODES", "value": str(total)})
    return env
