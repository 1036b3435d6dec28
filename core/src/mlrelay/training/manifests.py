"""A ``TrainingJob`` as Kubernetes objects: the pod template every cluster backend shares, the
batch Job, and the Secret that carries the job's secret values.

Plain dicts, built and checked here, so that nothing but the API server sees them and the
Airflow provider needs no ``kubernetes`` models to build one.

Identity and idempotency: every object carries ``app.kubernetes.io/managed-by: mlrelay``, the
MLflow run id, the caller's ``RunIdentity.key`` and a hash of the spec we built. Create-or-adopt
compares those labels, never the server's copy of the spec (the server adds defaults to it).

Secrets: a ``secret_value`` (and the MLflow token) never enters the Job: it goes into a Secret
named after the job and owned by it, and the container reads it through ``secretKeyRef``. So the
Job spec can be logged, shown by ``kubectl get -o yaml`` and hashed without exposing anything
(FAULTS S2).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlrelay.training.spec import RunContext, RunIdentity, TrainingJob

Obj = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
IDENTITY = "mlrelay.io/identity"
SPEC_HASH = "mlrelay.io/spec-hash"
MLFLOW_RUN = "mlrelay.io/mlflow-run"
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
CONTAINER = "trainer"


def secret_name(job_name: str) -> str:
    return f"{job_name}-env"


def labels(run: RunContext, identity: RunIdentity | None, job: TrainingJob) -> dict[str, str]:
    """The labels that say who made an object (managed-by, run, identity) plus the job's own."""
    found = {**job.labels, MANAGED_BY: "mlrelay", MLFLOW_RUN: run.run_id}
    if identity is not None:
        found[IDENTITY] = identity.key
    return found


def identity_annotations(identity: RunIdentity | None, job: TrainingJob) -> dict[str, str]:
    found = dict(job.annotations)
    if identity is not None:
        found["mlrelay.io/orchestrator"] = identity.orchestrator
        found["mlrelay.io/orchestrator-run"] = identity.run_id
        found["mlrelay.io/task"] = identity.task_id
        if identity.map_index is not None:
            found["mlrelay.io/map-index"] = str(identity.map_index)
    return found


def has_secrets(job: TrainingJob, run: RunContext) -> bool:
    return bool(run.secret_env()) or any(e.secret_value is not None for e in job.env)


def secret(job: TrainingJob, run: RunContext, name: str, meta_labels: dict[str, str]) -> Obj:
    """The Secret with the job's secret values and the MLflow token (``stringData``)."""
    data = {e.name: e.secret_value.get_secret_value() for e in job.env if e.secret_value}
    data.update(run.secret_env())
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secret_name(name), "labels": meta_labels},
        "stringData": data,
    }


def env(job: TrainingJob, run: RunContext, name: str) -> list[Obj]:
    """Plain values as values, secrets as ``secretKeyRef`` (to the user's or our Secret)."""
    out: list[Obj] = [{"name": k, "value": v} for k, v in run.env().items()]
    out.append({"name": "PYTHONUNBUFFERED", "value": "1"})
    ours = secret_name(name)
    for key in run.secret_env():
        out.append(_ref(key, ours, key))
    for e in job.env:
        if e.value is not None:
            out.append({"name": e.name, "value": e.value})
        elif e.secret_value is not None:
            out.append(_ref(e.name, ours, e.name))
        elif e.secret_key_ref is not None:
            out.append(_ref(e.name, e.secret_key_ref.name, e.secret_key_ref.key))
    return out


def _ref(var: str, secret: str, key: str) -> Obj:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def resources(job: TrainingJob) -> Obj:
    """Requests as given; the memory limit defaults to the request (OOMKilled at a known size)."""
    r = job.resources
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if r.cpu:
        requests["cpu"] = r.cpu
    if r.memory:
        requests["memory"] = r.memory
    if r.cpu_limit:
        limits["cpu"] = r.cpu_limit
    if r.memory_limit or r.memory:
        limits["memory"] = r.memory_limit or r.memory
    if r.gpu:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = r.gpu
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def container(job: TrainingJob, run: RunContext, name: str, *, container: str = CONTAINER) -> Obj:
    c: Obj = {
        "name": container,
        "image": job.image,
        "command": list(job.command),
        "args": list(job.args),
        "env": env(job, run, name),
        "resources": resources(job),
    }
    if job.working_dir:
        c["workingDir"] = job.working_dir
    if job.volumes:
        c["volumeMounts"] = [
            {"name": v.name, "mountPath": v.mount_path, "readOnly": v.read_only}
            for v in job.volumes
        ]
    return c


def pod_spec(
    job: TrainingJob, run: RunContext, name: str, *, container_name: str = CONTAINER
) -> Obj:
    """The pod spec every cluster backend starts from (a Job's template, a replica's template)."""
    spec: Obj = {
        "restartPolicy": "Never",
        "containers": [container(job, run, name, container=container_name)],
    }
    if job.service_account:
        spec["serviceAccountName"] = job.service_account
    if job.node_selector:
        spec["nodeSelector"] = dict(job.node_selector)
    if job.tolerations:
        spec["tolerations"] = [
            {_camel(k): v for k, v in t.model_dump(exclude_none=True).items()}
            for t in job.tolerations
        ]
    if job.affinity:
        spec["affinity"] = job.affinity
    if job.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in job.image_pull_secrets]
    if job.priority_class:
        spec["priorityClassName"] = job.priority_class
    if job.volumes:
        spec["volumes"] = [_volume(v) for v in job.volumes]
    return spec


def _volume(v: Any) -> Obj:
    if v.pvc:
        return {
            "name": v.name,
            "persistentVolumeClaim": {"claimName": v.pvc, "readOnly": v.read_only},
        }
    if v.secret:
        return {"name": v.name, "secret": {"secretName": v.secret}}
    if v.config_map:
        return {"name": v.name, "configMap": {"name": v.config_map}}
    return {"name": v.name, "emptyDir": {}}


def batch_job(job: TrainingJob, run: RunContext, name: str, identity: RunIdentity | None) -> Obj:
    """The ``batch/v1`` Job: Indexed when ``workers > 1``, suspended when a Kueue queue is named."""
    meta_labels = labels(run, identity, job)
    spec: Obj = {
        "backoffLimit": job.backoff_limit,
        "template": {
            "metadata": {
                "labels": dict(meta_labels),
                "annotations": identity_annotations(identity, job),
            },
            "spec": pod_spec(job, run, name),
        },
    }
    if job.workers > 1:
        spec.update(completionMode="Indexed", completions=job.workers, parallelism=job.workers)
    if job.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = job.active_deadline_seconds
    if job.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = job.ttl_seconds_after_finished
    if job.queue:
        meta_labels[KUEUE_QUEUE] = job.queue
        spec["suspend"] = True  # Kueue admits (unsuspends) it when the queue has room
    return finish(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "labels": meta_labels,
                "annotations": identity_annotations(identity, job),
            },
            "spec": spec,
        }
    )


def finish(obj: Obj) -> Obj:
    """Stamp ``obj`` with the hash of its spec (create-or-adopt compares it, K2)."""
    obj["metadata"]["labels"][SPEC_HASH] = spec_hash(obj["spec"])
    return obj


def spec_hash(spec: Obj) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.title() for p in rest)
