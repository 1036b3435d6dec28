"""The emulated Kubeflow Trainer (v2.0): a controller for ``trainer.kubeflow.org/v1alpha1`` TrainJobs.

A TrainJob names a runtime (``spec.runtimeRef``: a ClusterTrainingRuntime by default, or a
TrainingRuntime in its namespace); the runtime's ``spec.template`` is a JobSet template whose
trainer replicated job (labelled ``trainer.kubeflow.org/trainjob-ancestor-step: trainer``, or
named ``node``) is the pod template. Deliberate simplification: the real stack goes TrainJob ->
JobSet -> Job -> Pod; here the controller creates the batch/v1 Job ``<trainjob>-<rjob>-0`` that
JobSet would (owned by the TrainJob itself, with JobSet's labels and annotations on it and on its
pod template) and the emulated Job controller makes the pods, so Job semantics (Indexed
completion, ``backoffLimit``, suspension, ``batch.kubernetes.io/job-completion-index``) come
for free. Only the trainer replicated job runs (initializer jobs and JobSet failure policies are
not emulated) and it is replicated once.

As the Trainer's plugins do, ``spec.trainer`` overrides the ``node`` container's image, command,
args and resources (``resourcesPerNode``), upserts its env, and sets ``numNodes`` as the Job's
parallelism and completions; with an ``mlPolicy.torch`` runtime the torchrun env follows:
``PET_NNODES``, ``PET_NPROC_PER_NODE`` (``auto`` unless set, or derived from
``resourcesPerNode``), ``PET_NODE_RANK`` (from the completion-index annotation),
``PET_MASTER_ADDR=<trainjob>-node-0-0.<trainjob>`` and ``PET_MASTER_PORT=29500``. Pods get
``subdomain: <trainjob>`` and ``restartPolicy: OnFailure`` when the runtime says none (JobSet's
defaults).

Status is the v2.0 controller's (``metav1.Condition``s): ``Suspended`` (reasons Suspended /
Resumed), ``Created`` (``JobsCreationSucceeded`` "Succeeded to create Jobs", or False
``JobsBuildFailed`` "Failed to build Jobs" when the runtime is gone), then the JobSet's terminal
condition: ``Complete`` (``AllJobsCompleted`` "jobset completed successfully") or ``Failed``
(``FailedJobs`` "jobset failed due to one or more job failures"), plus ``jobsStatus``. Its
validating webhook is emulated too: a TrainJob naming a runtime that does not exist, or setting a
reserved ``PET_*`` env for a torch runtime, is refused at create (422 here, 403 on a cluster).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable

from mlrelay.testing.jobstatus import true_condition
from mlrelay.testing.kinds import (
    CLUSTER_TRAINING_RUNTIMES,
    JOBS,
    TRAIN_JOBS,
    TRAINING_RUNTIMES,
    Causes,
    Obj,
)
from mlrelay.testing.reconciler import Key, Reconciler
from mlrelay.testing.recorder import Clock, gone_ok, timestamp, utcnow
from mlrelay.testing.runtime import quantity
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store, WatchEvent

GROUP = "trainer.kubeflow.org"
ANCESTOR = "trainer.kubeflow.org/trainjob-ancestor-step"
NODE, MASTER_PORT = "node", 29500
JOBSET = "jobset.sigs.k8s.io/"
TORCH_ENV = (
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
)
INDEX_PATH = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
COMPLETE = ("AllJobsCompleted", "jobset completed successfully")
FAILED = ("FailedJobs", "jobset failed due to one or more job failures")
_RUNTIME_KINDS = {
    "ClusterTrainingRuntime": CLUSTER_TRAINING_RUNTIMES,
    "TrainingRuntime": TRAINING_RUNTIMES,
}


class BuildFailed(Exception):
    """The runtime or its trainer template is missing: no Job can be built."""


def _default(job: Obj) -> None:
    """The CRD's structural defaults, which the API server persists."""
    spec = job.setdefault("spec", {})
    ref = spec.setdefault("runtimeRef", {})
    ref.setdefault("apiGroup", GROUP)
    ref.setdefault("kind", "ClusterTrainingRuntime")
    spec.setdefault("suspend", False)


def set_condition(status: Obj, type_: str, value: str, reason: str, message: str, now: str) -> None:
    """``meta.SetStatusCondition``: update in place, transition time only when the status flips."""
    conds: list[Obj] = status.setdefault("conditions", [])
    new = {"type": type_, "status": value, "reason": reason, "message": message}
    for cond in conds:
        if cond["type"] == type_:
            if cond["status"] != value:
                cond["lastTransitionTime"] = now
            cond.update(new)
            return
    conds.append({**new, "lastTransitionTime": now})


def _is_true(status: Obj, type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in status.get("conditions") or [])


def _upsert(env: list[Obj], *variables: Obj) -> None:
    for var in variables:
        names = [e.get("name") for e in env]
        if var["name"] in names:
            env[names.index(var["name"])] = var
        else:
            env.append(var)


def _nproc(policy: object, trainer: Obj) -> str:
    """The Torch plugin's numProcPerNode: the TrainJob's, else the runtime's, else ``auto``;
    with ``resourcesPerNode`` and ``auto`` a CPU-only node runs one process per CPU."""
    nproc = str(trainer.get("numProcPerNode") or policy or "auto")
    resources = trainer.get("resourcesPerNode")
    if resources is None:
        return nproc
    use_cpu: Callable[[Obj], bool] = lambda r: False  # noqa: E731
    fallback = nproc
    if nproc == "auto":
        use_cpu = lambda r: not any("gpu" in k.lower() for k in r)  # noqa: E731
    elif nproc == "cpu":
        use_cpu, fallback = (lambda r: "cpu" in r), "1"

    def per_node(found: Obj | None) -> tuple[str, bool]:  # calculateNumProcPerNode
        if found is None:
            return "1", False
        if use_cpu(found):
            return str(max(1, math.ceil(quantity(found.get("cpu", 0))))), True
        return fallback, False

    value, used = per_node(resources.get("limits"))
    return value if used else per_node(resources.get("requests"))[0]


class TrainJobController(Reconciler):
    """Reconciles TrainJobs into a Job from their runtime; installs the runtime kinds."""

    name = "trainjob-controller"

    def __init__(self, store: Store, *, resync: float = 0.5, clock: Clock = utcnow) -> None:
        for kind in _RUNTIME_KINDS.values():
            store.register(kind)
        self.kind = store.register(
            dataclasses.replace(TRAIN_JOBS, defaulter=_default, validator=self._admit)
        )
        super().__init__(store, kinds=[self.kind, JOBS], resync=resync)
        self._clock = clock

    def on_event(self, event: WatchEvent) -> None:
        self.enqueue_owner(event, self.kind)

    def resync_keys(self) -> list[Key]:
        """Every TrainJob: a runtime created or deleted later changes what a sync builds."""
        return [_key(j) for j in self.store.list(self.kind)[0]]

    # -- admission (the Trainer's validating webhook) -------------------------------------------
    def _admit(self, job: Obj) -> Causes:
        spec = job.get("spec") or {}
        ref = spec.get("runtimeRef") or {}
        kind, group = ref.get("kind", "ClusterTrainingRuntime"), ref.get("apiGroup", GROUP)
        if not ref.get("name"):
            return [("spec.runtimeRef.name", "Required value")]
        if group != GROUP or kind not in _RUNTIME_KINDS:
            return [("spec.runtimeRef", f"Unsupported value: unsupported runtime: {kind}.{group}")]
        try:
            runtime = self._runtime(job)
        except BuildFailed as e:
            what = kind[0].lower() + kind[1:]
            return [
                (
                    "spec.RuntimeRef",
                    f"Invalid value: {json.dumps(ref)}: {e}: specified {what} must be created "
                    "before the TrainJob is created",
                )
            ]
        trainer = spec.get("trainer") or {}
        reserved = sorted({e.get("name") for e in trainer.get("env") or []} & set(TORCH_ENV))
        if reserved and "torch" in ((runtime.get("spec") or {}).get("mlPolicy") or {}):
            return [
                (
                    "spec.trainer.env",
                    f"Invalid value: {json.dumps(trainer['env'])}: must not have reserved envs, "
                    f"invalid envs configured: [{' '.join(reserved)}]",
                )
            ]
        return []

    def _runtime(self, job: Obj) -> Obj:
        ref = job["spec"]["runtimeRef"]
        kind = _RUNTIME_KINDS[ref.get("kind", "ClusterTrainingRuntime")]
        try:
            return self.store.get(kind, job["metadata"].get("namespace"), str(ref.get("name")))
        except ApiError as e:
            raise BuildFailed(f'{kind.plural}.{GROUP} "{ref.get("name")}" not found') from e

    # -- reconcile -----------------------------------------------------------------------------
    def sync(self, key: Key) -> None:
        try:
            job = self.store.get(self.kind, *key)
        except ApiError:
            return
        if job["metadata"].get("deletionTimestamp"):
            return
        status: Obj = copy.deepcopy(job.get("status") or {})
        if _is_true(status, "Complete") or _is_true(status, "Failed"):
            return
        now, suspend = timestamp(self._clock()), bool(job["spec"].get("suspend"))
        child: Obj | None
        try:
            child = self._apply(job, self._build(job))
            created = ("True", "JobsCreationSucceeded", "Succeeded to create Jobs")
        except BuildFailed:
            child, created = self._child(job), ("False", "JobsBuildFailed", "Failed to build Jobs")
        except ApiError:
            child, created = (
                self._child(job),
                ("False", "JobsCreationFailed", "Failed to create Jobs"),
            )
        if suspend:
            set_condition(status, "Suspended", "True", "Suspended", "TrainJob is suspended", now)
        elif _is_true(status, "Suspended"):
            set_condition(status, "Suspended", "False", "Resumed", "TrainJob is resumed", now)
        set_condition(status, "Created", *created, now)
        if child is not None:
            child_status = child.get("status") or {}
            if true_condition(child_status, "Complete"):
                set_condition(status, "Complete", "True", *COMPLETE, now)
            elif true_condition(child_status, "Failed"):
                set_condition(status, "Failed", "True", *FAILED, now)
            status["jobsStatus"] = [_jobs_status(child)]
        if status != (job.get("status") or {}):
            with gone_ok():
                self.store.update_status(self.kind, *key, status)

    def _child(self, job: Obj) -> Obj | None:
        uid = job["metadata"]["uid"]
        owned = self.store.list(
            JOBS,
            job["metadata"]["namespace"],
            lambda j: any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or []),
        )[0]
        return owned[0] if owned else None

    def _apply(self, job: Obj, desired: Obj) -> Obj:
        """Create the Job, or carry ``suspend`` over to it (the only mutable part of a TrainJob)."""
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        try:
            current = self.store.get(JOBS, ns, name)
        except ApiError:
            return self.store.create(JOBS, desired)
        if bool(current["spec"].get("suspend")) == desired["spec"]["suspend"]:
            return current

        def flip(obj: Obj) -> Obj:
            obj["spec"]["suspend"] = desired["spec"]["suspend"]
            return obj

        return self.store.patch(JOBS, ns, name, flip)

    def _build(self, job: Obj) -> Obj:
        """The Job JobSet would create for the trainer replicated job, with the Trainer's
        overrides and torchrun env applied (raises :class:`BuildFailed`)."""
        meta, spec = job["metadata"], job["spec"]
        runtime = self._runtime(job).get("spec") or {}
        rjobs = ((runtime.get("template") or {}).get("spec") or {}).get("replicatedJobs") or []
        rjob = next(
            (r for r in rjobs if _labels(r.get("template")).get(ANCESTOR) == "trainer"),
            next((r for r in rjobs if r.get("name") == NODE), None),
        )
        if rjob is None:
            raise BuildFailed("the runtime has no trainer replicated job")
        name, ns, rjob_name = meta["name"], meta["namespace"], str(rjob["name"])
        job_name = f"{name}-{rjob_name}-0"
        marks = {
            JOBSET + "jobset-name": name,
            JOBSET + "replicatedjob-name": rjob_name,
            JOBSET + "restart-attempt": "0",
            JOBSET + "replicatedjob-replicas": "1",
            JOBSET + "job-index": "0",
            JOBSET + "job-key": hashlib.sha1(f"{ns}/{job_name}".encode()).hexdigest(),  # noqa: S324
        }
        template = copy.deepcopy(rjob.get("template") or {})
        job_spec, ml = template.get("spec") or {}, runtime.get("mlPolicy") or {}
        trainer = spec.get("trainer")
        nodes = int((trainer or {}).get("numNodes") or ml.get("numNodes") or 1)
        job_spec.update(parallelism=nodes, completions=nodes, suspend=bool(spec.get("suspend")))
        job_spec.setdefault("completionMode", "Indexed")
        pod_tmpl = job_spec.setdefault("template", {})
        pod_meta = pod_tmpl.setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **marks}
        pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **marks}
        pod_spec = pod_tmpl.setdefault("spec", {})
        pod_spec.setdefault("restartPolicy", "OnFailure")
        pod_spec.setdefault("subdomain", name)
        node = next((c for c in pod_spec.get("containers") or [] if c.get("name") == NODE), None)
        if node is not None and trainer is not None:
            for field in ("image", "command", "args"):
                if trainer.get(field):
                    node[field] = copy.deepcopy(trainer[field])
            if trainer.get("resourcesPerNode") is not None:
                node["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
            env = node.setdefault("env", [])
            _upsert(env, *copy.deepcopy(trainer.get("env") or []))
            if "torch" in ml:
                nproc = _nproc((ml["torch"] or {}).get("numProcPerNode"), trainer)
                _upsert(
                    env,
                    {"name": "PET_NNODES", "value": str(nodes)},
                    {"name": "PET_NPROC_PER_NODE", "value": nproc},
                    {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": INDEX_PATH}}},
                    {"name": "PET_MASTER_ADDR", "value": f"{name}-{NODE}-0-0.{name}"},
                    {"name": "PET_MASTER_PORT", "value": str(MASTER_PORT)},
                )
                ports = node.setdefault("ports", [])
                if not any(p.get("containerPort") == MASTER_PORT for p in ports):
                    ports.append({"containerPort": MASTER_PORT})
        owner = {
            "apiVersion": self.kind.api_version,
            "kind": self.kind.kind,
            "name": name,
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        job_meta = {
            "name": job_name,
            "namespace": ns,
            "labels": {**_labels(template), **marks},
            "annotations": {**((template.get("metadata") or {}).get("annotations") or {}), **marks},
            "ownerReferences": [owner],
        }
        return {"metadata": job_meta, "spec": job_spec}


def _labels(template: Obj | None) -> dict[str, str]:
    return dict(((template or {}).get("metadata") or {}).get("labels") or {})


def _jobs_status(child: Obj) -> Obj:
    """JobSet's ``replicatedJobsStatus`` entry for the one Job: counts of Jobs, not pods."""
    status, spec = child.get("status") or {}, child["spec"]
    finished = true_condition(status, "Complete") or true_condition(status, "Failed")
    enough = status.get("ready", 0) + status.get("succeeded", 0) >= spec.get("parallelism", 1)
    return {
        "name": child["metadata"]["labels"].get(JOBSET + "replicatedjob-name", NODE),
        "ready": int(not finished and enough),
        "succeeded": int(bool(true_condition(status, "Complete"))),
        "failed": int(bool(true_condition(status, "Failed"))),
        "active": int(not finished and status.get("active", 0) > 0),
        "suspended": int(bool(spec.get("suspend"))),
    }


def _key(job: Obj) -> Key:
    return (str(job["metadata"].get("namespace") or ""), str(job["metadata"]["name"]))
