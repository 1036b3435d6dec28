"""The checks after a chaos session (the issue's four, and listeners): findings must be empty.

1. ``orphans``: every pod is owned by an existing Job; every Job has ended (its run is finished,
   or it was cleaned up); every InferenceService is a chaos model's endpoint and serves a
   version whose gate decision promoted it;
   every model server process belongs to an existing InferenceService; no MLflow training run
   is left RUNNING; no process remains in a child's group or under the runner beyond the
   servers, the live pods and the live model servers.
2. ``duplicates``: one model version per training run (MLflow: versions per source run == 1),
   and at most one finished training run per run identity (a retry adopts, never trains twice).
3. ``unexplained``: every failed run failed with a reason: a typed error (mlrelay's, or the
   orchestrator's failure with its message), never a hang or a crash without one.
4. ``bad_aliases``: ``@champion`` points at a version whose recorded gate decision promoted it,
   with the metric the gate saw equal to the run's, and better than the champion it replaced.
5. ``listeners``: nothing the run started listens beyond 127.0.0.1 (sampled while runs go).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

from mlrelay.testing.kinds import INFERENCE_SERVICES, JOBS, PODS
from mlrelay.testing.server import KubeEmulator

TYPED_MODULES = ("mlrelay", "airflow_mlrelay", "prefect_mlrelay", "dagster_mlrelay")
MLRELAY_ERRORS = {
    "ConfigError", "MissingDependency", "DataValidationError", "TrainingSetIncomplete",
    "TrainingFailed", "RegistrationFailed", "ModelRejected", "DeploymentFailed",
    "ServiceUnavailable", "OperationTimeout", "PromotionConflict",
}  # fmt: skip


def _ended(job: dict[str, Any]) -> bool:
    conditions = job.get("status", {}).get("conditions") or []
    done = any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)
    return done or bool(job["metadata"].get("deletionTimestamp"))


def settle(emulator: KubeEmulator, timeout: float = 120.0) -> None:
    """Wait (bounded) until every Job has ended and every pod that is going has gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = emulator.store.list(JOBS)[0]
        pods = emulator.store.list(PODS)[0]
        terminating = [p for p in pods if p["metadata"].get("deletionTimestamp")]
        if all(_ended(j) for j in jobs) and not terminating:
            return
        time.sleep(1.0)


def orphans(emulator: KubeEmulator, mlflow_uri: str, models: list[str]) -> list[str]:
    found = []
    jobs = emulator.store.list(JOBS)[0]
    uids = {j["metadata"]["uid"] for j in jobs}
    for pod in emulator.store.list(PODS)[0]:
        owners = {o["uid"] for o in pod["metadata"].get("ownerReferences") or []}
        if not owners & uids:
            found.append(f"pod {_name(pod)} has no existing owner Job")
    for job in jobs:
        if not _ended(job):
            found.append(f"Job {_name(job)} still running after every run finished")
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    found += _isvc_orphans(emulator, models, client)
    for model in models:
        experiment = client.get_experiment_by_name(model)
        if experiment is None:
            continue
        for run in client.search_runs([experiment.experiment_id], max_results=5000):
            if run.info.status in ("RUNNING", "SCHEDULED"):
                found.append(f"MLflow run {run.info.run_id} ({model}) left {run.info.status}")
    return found


def _isvc_orphans(emulator: KubeEmulator, models: list[str], client: Any) -> list[str]:
    from mlrelay.lineage import promotion_tag
    from mlrelay.serving.isvc import MODEL_NAME, MODEL_VERSION

    found = []
    controller = emulator.cluster.kserve if emulator.cluster else None
    isvcs = emulator.store.list(INFERENCE_SERVICES)[0]
    names = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in isvcs}
    for isvc in isvcs:
        if isvc["metadata"]["name"] not in models:
            found.append(f"InferenceService {_name(isvc)} is no chaos model's endpoint")
            continue
        notes = isvc["metadata"].get("annotations") or {}
        model, version = notes.get(MODEL_NAME, ""), notes.get(MODEL_VERSION, "")
        try:
            raw = client.get_model_version(model, version).tags.get(promotion_tag("champion"))
        except Exception as exc:  # the version does not exist (or the name is empty)
            found.append(f"InferenceService {_name(isvc)} serves {model} v{version}: {exc}")
            continue
        if raw is None or not json.loads(raw).get("promoted"):
            found.append(f"InferenceService {_name(isvc)} serves {model} v{version}: not gated")
    if controller is not None:
        for key in list(controller._services):
            if key not in names and controller.processes(*key):
                found.append(f"model servers of deleted InferenceService {key} still run")
    return found


def stray_processes(allowed_groups: set[int], allowed_pids: set[int]) -> list[str]:
    """Processes under the runner that nothing accounts for (``psutil``: the runner's tree)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.pid in allowed_pids or os.getpgid(proc.pid) in allowed_groups:
                continue
            if any(p.pid in allowed_pids for p in proc.parents()):
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            found.append(f"process {proc.pid} {' '.join(proc.cmdline())[:160]}")
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    return found


def exposed_listeners() -> list[str]:
    """Sockets listening beyond loopback, opened by this process or anything under it."""
    import psutil

    me = psutil.Process()
    ours = {me.pid} | {p.pid for p in me.children(recursive=True)}
    found = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.status != psutil.CONN_LISTEN or conn.pid not in ours or not conn.laddr:
            continue
        if conn.laddr.ip not in ("127.0.0.1", "::1"):
            found.append(f"pid {conn.pid} listens on {conn.laddr.ip}:{conn.laddr.port}")
    return found


def live_pids(emulator: KubeEmulator) -> set[int]:
    """Model servers of existing InferenceServices and pod processes of existing pods."""
    pids: set[int] = set()
    cluster = emulator.cluster
    if cluster is None:
        return pids
    if cluster.kserve is not None:
        for isvc in emulator.store.list(INFERENCE_SERVICES)[0]:
            meta = isvc["metadata"]
            pids |= set(cluster.kserve.processes(meta["namespace"], meta["name"]).values())
    return pids


def duplicates(mlflow_uri: str, models: list[str]) -> list[str]:
    from mlflow import MlflowClient

    from mlrelay.lineage import IDENTITY

    client = MlflowClient(mlflow_uri)
    found = []
    for model in models:
        experiment = client.get_experiment_by_name(model)
        runs = (
            client.search_runs([experiment.experiment_id], max_results=5000) if experiment else []
        )
        finished = Counter(r.data.tags.get(IDENTITY) for r in runs if r.info.status == "FINISHED")
        found += [
            f"{model}: {n} finished training runs for identity {key}"
            for key, n in finished.items()
            if key and n > 1
        ]
        versions = client.search_model_versions(f"name='{model}'", max_results=10_000)
        per_run = Counter(v.run_id for v in versions)
        found += [
            f"{model}: {n} versions from training run {run}" for run, n in per_run.items() if n > 1
        ]
    return found


def typed(failure: dict[str, str]) -> bool:
    module, name, message = failure.get("module", ""), failure.get("type", ""), failure["message"]
    if not message.strip():
        return False
    if module.startswith(TYPED_MODULES) or name in MLRELAY_ERRORS:
        return True
    # An orchestrator's own failure (a task marked failed, an interrupted step) with its message.
    return bool(name) and not module.startswith("builtins")


def unexplained(outcomes: list[dict[str, Any]]) -> list[str]:
    found = []
    for o in outcomes:
        if o["status"] in ("hang", "crash"):
            found.append(f"{o['key']}: {o['status']} (attempts {o['attempts']})")
        elif o["status"] == "failed" and not any(typed(f) for f in o["failures"]):
            found.append(f"{o['key']}: failed without a typed reason: {o['failures']}")
    return found


def bad_aliases(mlflow_uri: str, models: list[str], alias: str = "champion") -> list[str]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlrelay.lineage import promotion_tag

    client = MlflowClient(mlflow_uri)
    found = []
    for model in models:
        try:
            version = client.get_model_version_by_alias(model, alias)
        except MlflowException:
            continue  # no champion (e.g. no run got through): nothing points anywhere
        raw = version.tags.get(promotion_tag(alias))
        if raw is None:
            found.append(f"{model}@{alias} -> v{version.version}: no gate decision recorded")
            continue
        decision = json.loads(raw)
        metric = client.get_run(version.run_id).data.metrics.get(decision["metric"])
        if not decision["promoted"]:
            found.append(f"{model}@{alias} -> v{version.version}: the gate rejected it")
        elif metric is None or abs(metric - decision["candidate_value"]) > 1e-9:
            found.append(f"{model}@{alias} -> v{version.version}: gated on {metric} != run's")
        elif decision.get("champion_value") is not None and str(
            decision.get("champion_version")
        ) != str(version.version):
            margin = decision["gate"].get("min_delta", 0.0)
            if decision["candidate_value"] < decision["champion_value"] + margin - 1e-12:
                found.append(f"{model}@{alias} -> v{version.version}: not better than before")
    return found


def _name(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
