"""``KServeBackend``: roll a registered model version out to a KServe InferenceService.

One rollout, whatever the strategy: resolve where the model is (an ``mlflow-artifacts:`` URI
mapped onto the store KServe reads), apply the InferenceService (create, or patch what
changed; the same spec twice changes nothing), wait through the shared watch loop until the new
revision is the ready one (D2), smoke-test that revision with V2 requests, then promote. A
revision that fails to load (D1), a smoke test that fails (D4) or a deadline (D3) restores the
previous predictor spec, so the previous version keeps serving, and raises
``DeploymentFailed(rolled_back=True)`` with KServe's failure info. Nothing is left half rolled
out: a first deploy that fails is deleted.

Canary (``Canary(percent, steps)``) uses KServe's ``canaryTrafficPercent``; it splits only once a
previous rolled-out revision exists, so a first deploy gets 100 % and says so (D5). Promotion
removes the field; a rollback restores the previous spec. Canary is a Serverless feature:
asking for it in RawDeployment mode is a ``ConfigError``.

``deploy`` is ``begin`` + ``wait`` + ``complete`` (``mlrelay.serving.rollout``): the same rollout,
split so that an orchestrator can wait elsewhere (Airflow's triggerer) on a JSON handle, and
``abort`` undoes a rollout in progress (a task killed, a deadline passed).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlrelay import _mlflow
from mlrelay.errors import ConfigError, DeploymentFailed
from mlrelay.kube.client import Kube, NotFound
from mlrelay.serving import artifacts, isvc, smoke
from mlrelay.serving.isvc import (
    INFERENCE_SERVICES,
    MANAGED_BY,
    MODEL_NAME,
    MODEL_VERSION,
    PREVIOUS,
    PREVIOUS_VERSION,
    RUN_ID,
    Obj,
    Predictor,
    Rollout,
    without_canary,
)  # fmt: skip
from mlrelay.serving.rollout import RolloutHandle, RolloutStatus
from mlrelay.serving.rollout_wait import Watcher
from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec
from mlrelay.settings import KServeSettings, KubernetesSettings, LocalSettings, MLflowSettings

log = logging.getLogger("mlrelay.serving")


class KServeBackend:
    """Deploys model versions as KServe InferenceServices (see the module docstring).

    Args:
        settings: namespace, deployment mode, storage service account, default ready timeout.
        kubernetes: the API server (``settings.namespace`` wins for the namespace).
        mlflow: the registry the versions come from (and ``artifact_destinations``).
        predictor: model format, runtime, resources, replicas and scaling of the predictor.
        local: where the model is downloaded for its input example (the smoke test's rows).
    """

    kind = "kserve"

    def __init__(
        self,
        settings: KServeSettings | None = None,
        *,
        kubernetes: KubernetesSettings | None = None,
        mlflow: MLflowSettings | None = None,
        predictor: Predictor | None = None,
        local: LocalSettings | None = None,
        kube: Kube | None = None,
        relist_interval: float = 30.0,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or KServeSettings()
        base = kubernetes or KubernetesSettings()
        self._kube_settings = base.model_copy(update={"namespace": self.settings.namespace})
        self._kube = kube
        self.mlflow = mlflow
        self.predictor = predictor or Predictor(service_account=self.settings.service_account)
        self.local = local or LocalSettings()
        self.relist_interval = relist_interval
        self._log = log
        self._clock = clock

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self._kube_settings)
        return self._kube

    # -- ServingBackend ------------------------------------------------------------------------

    def deploy(self, spec: DeploymentSpec) -> Deployment:
        return self.run(self.begin(spec))

    def run(self, handle: RolloutHandle, stop: threading.Event | None = None) -> Deployment:
        """Wait and complete ``handle`` here, step by step, to the end (``deploy`` after
        ``begin``). ``stop`` set while waiting (a task killed: its ``on_kill`` sets it and
        calls ``abort``) ends the rollout undone, with ``DeploymentFailed(reason="Stopped")``."""
        while True:
            try:
                status = self.wait(handle)
            except BaseException:  # an API error, a kill: nothing stays half rolled out
                self._abort_quietly(handle)
                raise
            if stop is not None and stop.is_set():
                status = RolloutStatus(
                    state="failed", reason="Stopped", message="the rollout was stopped",
                    isvc=status.isvc, restored=self.abort(handle),
                )  # fmt: skip
            done = self.complete(handle, status)
            if isinstance(done, Deployment):
                return done
            handle = done  # the next canary step

    # -- the rollout, in three calls (see mlrelay.serving.rollout) -----------------------------

    def begin(self, spec: DeploymentSpec) -> RolloutHandle:
        """Check the spec, read the model's smoke-test rows, apply the InferenceService.

        Raises:
            ConfigError: bad spec, unknown model version, unmapped storage; before any change.
        """
        started = time.time()
        if isinstance(spec.strategy, Canary) and self.settings.deployment_mode != "Serverless":
            message = "canary needs KServe's Serverless mode (RawDeployment rolls out with the "
            raise ConfigError(
                message + "Deployment's own strategy): use Replace()", field="strategy"
            )
        storage, run_id, dataset_hash = isvc.resolve(spec, _mlflow.resolve(self.mlflow, self.local))
        artifacts.rows_for(spec, self.mlflow, self.local)  # no smoke rows: fail before a change
        predictor = self.predictor.spec(storage)
        base: dict[str, Any] = {
            "spec": spec, "namespace": self.kube.namespace, "run_id": run_id, "started_at": started,
            "timings": {"resolve": round(time.time() - started, 3)},
        }  # fmt: skip
        try:
            existing: Obj | None = self.kube.get(INFERENCE_SERVICES, spec.name)
        except NotFound:
            existing = None
        meta = isvc.lineage_annotations(spec, self.settings.deployment_mode, run_id, dataset_hash)
        if existing is None:
            return self._create(spec, predictor, meta, base)
        notes = (existing.get("metadata") or {}).get("annotations") or {}
        if without_canary((existing.get("spec") or {}).get("predictor")) == predictor:
            current = Rollout(existing)
            if current.ready_on(None) and len(current.traffic()) == 1:
                self._say(f"{spec.name} already serves {spec.model.uri}: nothing to change")
                return RolloutHandle(
                    action="unchanged", generation=isvc.generation(existing), **base
                )
            if current.ready_on(None):  # this version is a canary already: carry on from there
                previous = json.loads(notes[PREVIOUS]) if PREVIOUS in notes else None
                return RolloutHandle(
                    action="resume", previous=previous, previous_version=notes.get(PREVIOUS_VERSION),
                    generation=isvc.generation(existing), **base,
                )  # fmt: skip
        return self._update(spec, existing, predictor, meta, base)

    def wait(self, handle: RolloutHandle, timeout: float | None = None) -> RolloutStatus:
        """Wait for the new revision to be ready (or failed, D1-D3), or for a canary step.

        Only reads: it can run anywhere that reaches the API server, be cut off and be
        repeated. ``timeout`` defaults to the spec's ``ready_timeout``.
        """
        self._check(handle)
        return self._watcher().rollout(
            handle, handle.spec.ready_timeout if timeout is None else timeout
        )

    def complete(self, handle: RolloutHandle, status: RolloutStatus) -> Deployment | RolloutHandle:
        """Finish what ``wait`` saw: smoke-test the new revision, then take the next canary step
        (returned as the handle to wait on next) or promote; restore the previous spec if any
        of it failed. ``status`` is used as it is: the object is not read again (O7).

        Raises:
            DeploymentFailed: the rollout failed and was undone (``rolled_back`` says whether
                the previous version serves again; a failed first deploy is removed).
        """
        self._check(handle)
        try:
            checked = handle.smoke_test
            if status.state == "ready" and handle.step is None and handle.action != "unchanged":
                status, checked = self._smoke(handle, status)
            if status.state != "ready":
                raise self._undone(handle, status)
            return self._advance(handle, status.rollout, checked)
        except DeploymentFailed:
            raise
        except BaseException:  # an API error, a kill: nothing stays half rolled out
            self._abort_quietly(handle)
            raise

    def abort(self, handle: RolloutHandle, timeout: float | None = None) -> bool:
        """Undo the rollout of ``handle``: restore the previous predictor spec, or delete a first
        deploy. Safe to call twice. True when the previous version serves again."""
        self._check(handle)
        if handle.action == "create":
            self.kube.delete(INFERENCE_SERVICES, handle.name, propagation="Foreground")
            return False
        if handle.action == "unchanged":
            return False
        try:
            live = self.kube.get(INFERENCE_SERVICES, handle.name)
        except NotFound:
            return False
        notes = (live.get("metadata") or {}).get("annotations") or {}
        if PREVIOUS not in notes and notes.get(MODEL_VERSION) == handle.previous_version:
            return Rollout(live).condition("Ready") == "True"  # restored already
        if PREVIOUS not in notes or notes.get(MODEL_VERSION) != handle.spec.model.version:
            return False  # not this rollout's to undo any more
        previous = handle.previous or json.loads(notes[PREVIOUS])
        wait = handle.spec.ready_timeout if timeout is None else timeout
        return self._watcher().restore(live, wait, previous) is not None

    # -- rollback, undeploy, list ---------------------------------------------------------------

    def rollback(self, name: str) -> Deployment:
        """Back to the predictor spec the last rollout replaced (a new revision of it)."""
        try:
            existing = self.kube.get(INFERENCE_SERVICES, name)
        except NotFound:
            raise ConfigError(f"there is no InferenceService {name!r}", field="name") from None
        notes = (existing.get("metadata") or {}).get("annotations") or {}
        if PREVIOUS not in notes:
            raise ConfigError(f"{name!r} has no earlier rollout to go back to", field="name")
        restored = self._watcher().restore(existing, self.settings.ready_timeout)
        version = notes.get(PREVIOUS_VERSION, "?")
        self._say(f"{name} rolled back to version {version}")
        return self._deployment(name, notes.get(MODEL_NAME, name), version, restored, promoted=True)

    def undeploy(self, name: str) -> None:
        if self.kube.delete(INFERENCE_SERVICES, name, propagation="Foreground"):
            self._watcher().until(name, lambda r: None, 120.0, f"deleting {name}", gone_ok=True)
            self._say(f"deleted InferenceService {name}")

    def list(self) -> list[Deployment]:
        items = self.kube.list(INFERENCE_SERVICES, selector=f"{MANAGED_BY}=mlrelay").get("items")
        return [self._listed(obj) for obj in items or []]

    def _listed(self, obj: Obj) -> Deployment:
        notes = obj["metadata"].get("annotations") or {}
        model, version = notes.get(MODEL_NAME, ""), notes.get(MODEL_VERSION, "")
        return self._deployment(obj["metadata"]["name"], model, version, Rollout(obj), True)

    # -- applying and undoing -------------------------------------------------------------------

    def _create(
        self, spec: DeploymentSpec, predictor: Obj, meta: dict[str, str], base: dict[str, Any]
    ) -> RolloutHandle:
        if isinstance(spec.strategy, Canary):
            self._say(
                f"first deploy of {spec.name}: 100 % to its only revision (a canary needs a "
                "previous rolled-out revision to split with)"
            )
        body = {
            "apiVersion": INFERENCE_SERVICES.api_version,
            "kind": INFERENCE_SERVICES.kind,
            "metadata": {"name": spec.name, "labels": {MANAGED_BY: "mlrelay"}, "annotations": meta},
            "spec": {"predictor": predictor},
        }
        created = self.kube.create(INFERENCE_SERVICES, body)
        return RolloutHandle(action="create", generation=isvc.generation(created), **base)

    def _update(
        self, spec: DeploymentSpec, existing: Obj, predictor: Obj, meta: dict[str, str],
        base: dict[str, Any],
    ) -> RolloutHandle:  # fmt: skip
        before = Rollout(existing)
        old = without_canary((existing.get("spec") or {}).get("predictor"))
        notes = (existing.get("metadata") or {}).get("annotations") or {}
        meta = {**meta, PREVIOUS: json.dumps(old, sort_keys=True)}
        meta[PREVIOUS_VERSION] = notes.get(MODEL_VERSION, "")
        canary = spec.strategy if isinstance(spec.strategy, Canary) else None
        patch_predictor = {**{k: None for k in old if k not in predictor}, **predictor}
        patch_predictor["canaryTrafficPercent"] = canary.percent if canary else None
        patched = self.kube.patch(
            INFERENCE_SERVICES,
            spec.name,
            {"metadata": {"annotations": meta}, "spec": {"predictor": patch_predictor}},
        )
        self._say(
            f"{spec.name}: rolling out {spec.model.uri}"
            + (f" as a {canary.percent} % canary" if canary else " (replace)")
        )
        return RolloutHandle(
            action="update", previous=old, previous_revision=before.created,
            previous_version=notes.get(MODEL_VERSION), generation=isvc.generation(patched), **base,
        )  # fmt: skip

    def _advance(
        self, handle: RolloutHandle, ready: Rollout, checked: Obj | None
    ) -> Deployment | RolloutHandle:
        """The next canary step (patched, to be waited on) or the result."""
        spec, timings = handle.spec, dict(handle.timings)
        if handle.step is None and handle.action in ("create", "update"):
            timings["ready"] = round(time.time() - handle.started_at, 3)
        if handle.step is not None:
            done = " (promoted)" if handle.step >= 100 else ""
            self._say(f"{spec.name}: {handle.step} % of traffic on {handle.revision}{done}")
        step = handle.next_step()
        if step is not None:
            value = None if step >= 100 else step  # promotion removes the field
            patch = {"spec": {"predictor": {"canaryTrafficPercent": value}}}
            self.kube.patch(INFERENCE_SERVICES, spec.name, patch)
            revision = handle.revision or ready.created
            update = {"step": step, "revision": revision, "smoke_test": checked, "timings": timings}
            return handle.model_copy(update=update)
        canary = spec.strategy if isinstance(spec.strategy, Canary) else None
        promoted = handle.action == "create" or (
            handle.action != "unchanged" and (canary is None or canary.promote)
        )
        timings["total"] = round(time.time() - handle.started_at, 3)
        return self._result(spec, ready, handle.run_id, promoted, timings, checked)

    def _undone(self, handle: RolloutHandle, status: RolloutStatus) -> DeploymentFailed:
        """Undo a failed rollout (unless the waiter did already) and say what serves now."""
        if handle.action == "unchanged":
            return status.error(handle, rolled_back=False, outcome="")
        restored = self.abort(handle) if status.restored is None else status.restored
        if handle.action == "create":
            return status.error(handle, False, "the new InferenceService was removed")
        return status.error(
            handle, restored, f"version {handle.previous_version or '?'} serves again"
        )

    def _abort_quietly(self, handle: RolloutHandle) -> None:
        try:
            self.abort(handle)
        except Exception:  # the original error is the one to raise
            log.exception("could not undo the rollout of %s", handle.name)

    def _watcher(self) -> Watcher:
        return Watcher(self.kube, self.relist_interval, self._clock)

    def _check(self, handle: RolloutHandle) -> None:
        if handle.namespace != self.kube.namespace:
            raise ConfigError(
                f"the rollout of {handle.name!r} is in namespace {handle.namespace!r}, this "
                f"backend works in {self.kube.namespace!r}",
                field="namespace",
            )

    def _smoke(
        self, handle: RolloutHandle, status: RolloutStatus
    ) -> tuple[RolloutStatus, Obj | None]:
        """V2 requests to the new revision (by its tag); a failed status if they fail (D4)."""
        rows, source = artifacts.rows_for(handle.spec, self.mlflow, self.local)  # cached
        if rows is None:
            return status, None
        ready = status.rollout
        url = ready.tag_url("latest") or ready.url
        try:
            return status, smoke.run(str(url), handle.name, rows, source=source)
        except smoke.SmokeTestFailed as exc:
            failed = RolloutStatus(
                state="failed", reason="SmokeTestFailed", failure_info=exc.info, isvc=status.isvc,
                message=f"smoke test of revision {ready.created} failed: {exc}",
            )  # fmt: skip
            return failed, None

    # -- helpers -------------------------------------------------------------------------------

    def _result(
        self, spec: DeploymentSpec, r: Rollout, run_id: str | None, promoted: bool,
        timings: dict[str, float], checked: Obj | None = None,
    ) -> Deployment:  # fmt: skip
        found = self._deployment(spec.name, spec.model.name, spec.model.version, r, promoted)
        return found.model_copy(
            update={"run_id": run_id, "timings": timings, "smoke_test": checked}
        )

    def _deployment(
        self, name: str, model: str, version: str, r: Rollout | None, promoted: bool
    ) -> Deployment:
        r = r or Rollout({})
        notes = (r.obj.get("metadata") or {}).get("annotations") or {}
        traffic = isvc.traffic_by_version(r, version)
        return Deployment(
            name=name, backend=self.kind, url=str(r.url or ""), model_name=model,
            model_version=version, run_id=notes.get(RUN_ID), traffic=traffic, promoted=promoted,
            created_at=datetime.now(UTC),
        )  # fmt: skip

    def _say(self, message: str) -> None:
        log.info("%s", message)
        if self._log is not None:
            self._log(message)
