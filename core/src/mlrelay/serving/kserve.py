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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlrelay import _mlflow
from mlrelay.errors import ConfigError, DeploymentFailed, OperationTimeout
from mlrelay.kube.client import Kube, NotFound
from mlrelay.kube.watch import Watch
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
from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec
from mlrelay.settings import KServeSettings, KubernetesSettings, LocalSettings, MLflowSettings

log = logging.getLogger("mlrelay.serving")

Decision = tuple[str, Rollout]  # ("ready" | "failed" | "split", status)


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
        started = time.perf_counter()
        if isinstance(spec.strategy, Canary) and self.settings.deployment_mode != "Serverless":
            message = "canary needs KServe's Serverless mode (RawDeployment rolls out with the "
            raise ConfigError(
                message + "Deployment's own strategy): use Replace()", field="strategy"
            )
        storage, run_id, dataset_hash = isvc.resolve(spec, _mlflow.resolve(self.mlflow, self.local))
        rows, source = artifacts.rows_for(spec, self.mlflow, self.local)
        predictor = self.predictor.spec(storage)
        timings: dict[str, float] = {"resolve": round(time.perf_counter() - started, 3)}
        try:
            existing: Obj | None = self.kube.get(INFERENCE_SERVICES, spec.name)
        except NotFound:
            existing = None
        meta = isvc.lineage_annotations(spec, self.settings.deployment_mode, run_id, dataset_hash)
        if existing is None:
            return self._first(spec, predictor, meta, rows, source, timings, started)
        if without_canary((existing.get("spec") or {}).get("predictor")) == predictor:
            current = Rollout(existing)
            if current.ready_on(None) and len(current.traffic()) == 1:
                self._say(f"{spec.name} already serves {spec.model.uri}: nothing to change")
                return self._result(spec, current, run_id, promoted=False, timings=timings)
            if current.ready_on(None):  # this version is a canary already: carry on from there
                return self._advance(spec, current, rows, source, timings, started, run_id)
        return self._update(spec, existing, predictor, meta, rows, source, timings, started, run_id)

    def rollback(self, name: str) -> Deployment:
        """Back to the predictor spec the last rollout replaced (a new revision of it)."""
        try:
            existing = self.kube.get(INFERENCE_SERVICES, name)
        except NotFound:
            raise ConfigError(f"there is no InferenceService {name!r}", field="name") from None
        notes = (existing.get("metadata") or {}).get("annotations") or {}
        if PREVIOUS not in notes:
            raise ConfigError(f"{name!r} has no earlier rollout to go back to", field="name")
        restored = self._restore(existing, self.settings.ready_timeout)
        version = notes.get(PREVIOUS_VERSION, "?")
        self._say(f"{name} rolled back to version {version}")
        return self._deployment(name, notes.get(MODEL_NAME, name), version, restored, promoted=True)

    def undeploy(self, name: str) -> None:
        if self.kube.delete(INFERENCE_SERVICES, name, propagation="Foreground"):
            self._wait(name, lambda r: None, 120.0, f"deleting {name}", gone_ok=True)
            self._say(f"deleted InferenceService {name}")

    def list(self) -> list[Deployment]:
        items = self.kube.list(INFERENCE_SERVICES, selector=f"{MANAGED_BY}=mlrelay").get("items")
        return [self._listed(obj) for obj in items or []]

    def _listed(self, obj: Obj) -> Deployment:
        notes = obj["metadata"].get("annotations") or {}
        model, version = notes.get(MODEL_NAME, ""), notes.get(MODEL_VERSION, "")
        return self._deployment(obj["metadata"]["name"], model, version, Rollout(obj), True)

    # -- the rollout ---------------------------------------------------------------------------

    def _first(
        self, spec: DeploymentSpec, predictor: Obj, meta: dict[str, str], rows: Any, source: str,
        timings: dict[str, float], started: float,
    ) -> Deployment:  # fmt: skip
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
        self.kube.create(INFERENCE_SERVICES, body)
        try:
            ready = self._until_ready(spec, None)
            timings["ready"] = round(time.perf_counter() - started, 3)
            checked = self._smoke(spec, ready, rows, source)
        except BaseException as exc:
            # Nothing to roll back to: remove what did not work rather than leave it half-up.
            self.kube.delete(INFERENCE_SERVICES, spec.name, propagation="Foreground")
            if not isinstance(exc, DeploymentFailed):
                raise
            raise DeploymentFailed(
                f"{exc}; the new InferenceService was removed",
                name=spec.name, reason=exc.reason, rolled_back=False, failure_info=exc.failure_info,
            ) from None  # fmt: skip
        timings["total"] = round(time.perf_counter() - started, 3)
        return self._result(spec, ready, meta.get(RUN_ID), True, timings, checked)

    def _update(
        self, spec: DeploymentSpec, existing: Obj, predictor: Obj, meta: dict[str, str], rows: Any,
        source: str, timings: dict[str, float], started: float, run_id: str | None,
    ) -> Deployment:  # fmt: skip
        before = Rollout(existing)
        old = without_canary((existing.get("spec") or {}).get("predictor"))
        notes = (existing.get("metadata") or {}).get("annotations") or {}
        meta = {**meta, PREVIOUS: json.dumps(old, sort_keys=True)}
        meta[PREVIOUS_VERSION] = notes.get(MODEL_VERSION, "")
        canary = spec.strategy if isinstance(spec.strategy, Canary) else None
        patch_predictor = {**{k: None for k in old if k not in predictor}, **predictor}
        patch_predictor["canaryTrafficPercent"] = canary.percent if canary else None
        self.kube.patch(
            INFERENCE_SERVICES,
            spec.name,
            {"metadata": {"annotations": meta}, "spec": {"predictor": patch_predictor}},
        )
        self._say(
            f"{spec.name}: rolling out {spec.model.uri}"
            + (f" as a {canary.percent} % canary" if canary else " (replace)")
        )
        try:
            ready = self._until_ready(spec, before.created)
            timings["ready"] = round(time.perf_counter() - started, 3)
            checked = self._smoke(spec, ready, rows, source)
        except DeploymentFailed as exc:
            restored = self._restore(
                self.kube.get(INFERENCE_SERVICES, spec.name), spec.ready_timeout
            )
            raise DeploymentFailed(
                f"{exc}; version {notes.get(MODEL_VERSION, '?')} serves again",
                name=spec.name, reason=exc.reason, rolled_back=restored is not None,
                failure_info=exc.failure_info,
            ) from None  # fmt: skip
        return self._advance(spec, ready, None, source, timings, started, run_id, checked)

    def _advance(
        self, spec: DeploymentSpec, ready: Rollout, rows: Any, source: str,
        timings: dict[str, float], started: float, run_id: str | None, checked: Obj | None = None,
    ) -> Deployment:  # fmt: skip
        """Canary steps, then promotion (unless the canary is to stay)."""
        canary = spec.strategy if isinstance(spec.strategy, Canary) else None
        if rows is not None:  # a canary left running by an earlier call: test it again first
            checked = self._smoke(spec, ready, rows, source)
        promoted = canary is None or canary.promote
        if canary is not None:
            steps = [s for s in (canary.steps or []) if canary.percent < s < 100]
            for step in [*steps, 100] if canary.promote else []:
                ready = self._set_traffic(spec, ready, step)
        timings["total"] = round(time.perf_counter() - started, 3)
        return self._result(spec, ready, run_id, promoted, timings, checked)

    def _set_traffic(self, spec: DeploymentSpec, current: Rollout, percent: int) -> Rollout:
        """Move the canary to ``percent`` (100 promotes: the field is removed) and wait for it."""
        revision = current.created
        value = None if percent >= 100 else percent
        patch = {"spec": {"predictor": {"canaryTrafficPercent": value}}}
        self.kube.patch(INFERENCE_SERVICES, spec.name, patch)

        def applied(r: Rollout) -> Decision | None:
            return (
                ("split", r) if r.current and r.traffic().get(revision or "") == percent else None
            )

        done = self._settled(
            self._wait(spec.name, applied, spec.ready_timeout, f"{spec.name} to {percent} %"),
            spec.name,
        )
        self._say(
            f"{spec.name}: {percent} % of traffic on {revision}"
            + (" (promoted)" if value is None else "")
        )
        return done

    def _restore(self, existing: Obj, timeout: float) -> Rollout | None:
        """Put the previous predictor spec back; the Rollout once it serves, None if it did not."""
        name = existing["metadata"]["name"]
        notes = existing["metadata"].get("annotations") or {}
        old = json.loads(notes[PREVIOUS])
        now = without_canary((existing.get("spec") or {}).get("predictor"))
        patch_predictor = {
            **{k: None for k in now if k not in old},
            **old,
            "canaryTrafficPercent": None,
        }
        annotations = {
            MODEL_VERSION: notes.get(PREVIOUS_VERSION),
            PREVIOUS: None,
            PREVIOUS_VERSION: None,
        }
        self.kube.patch(
            INFERENCE_SERVICES, name,
            {"metadata": {"annotations": annotations}, "spec": {"predictor": patch_predictor}},
        )  # fmt: skip
        failed_revision = Rollout(existing).created
        try:
            decision = self._wait(
                name,
                lambda r: ("ready", r) if r.ready_on(failed_revision) else None,
                timeout,
                f"restoring {name}",
            )
            return self._settled(decision, name)
        except DeploymentFailed as exc:
            log.error("could not restore the previous spec of %s: %s", name, exc)
            return None

    def _until_ready(self, spec: DeploymentSpec, previous: str | None) -> Rollout:
        """Wait until a revision newer than ``previous`` is ready; DeploymentFailed if it failed."""

        def decide(r: Rollout) -> Decision | None:
            if r.ready_on(previous):
                return ("ready", r)
            if r.created not in (None, previous) and r.failure is not None:
                return ("failed", r)
            return None

        outcome, r = self._wait(
            spec.name, decide, spec.ready_timeout, f"{spec.name} to be ready"
        ) or (
            "failed",
            Rollout({}),
        )
        if outcome == "failed":
            failure = r.failure or {
                "reason": "DeletedExternally",
                "message": "the InferenceService is gone",
            }
            raise DeploymentFailed(
                f"revision {r.created} failed: {str(failure.get('message', ''))[-500:]}",
                name=spec.name, reason=str(failure.get("reason") or "FailedToLoad"),
                rolled_back=False, failure_info={**failure, "status": r.summary()},
            )  # fmt: skip
        return r

    def _settled(self, decision: Decision | None, name: str) -> Rollout:
        if decision is None or decision[0] == "failed":
            raise DeploymentFailed(
                "the InferenceService is gone", name=name, reason="DeletedExternally",
                rolled_back=False, failure_info={},
            )  # fmt: skip
        return decision[1]

    def _wait(
        self, name: str, decide: Callable[[Rollout], Decision | None], timeout: float, what: str,
        *, gone_ok: bool = False,
    ) -> Decision | None:  # fmt: skip
        """The first decision ``decide`` takes on the InferenceService's status; None when it is
        gone and ``gone_ok``; ("failed", empty) when it is gone otherwise (D3 on the deadline)."""
        last: list[Rollout] = []
        with Watch() as watch:
            informer = watch.add(
                self.kube, INFERENCE_SERVICES, self.kube.namespace,
                field_selector=f"metadata.name={name}", relist_interval=self.relist_interval,
            )  # fmt: skip

            def step() -> Decision | str | None:
                obj = informer.snapshot().get(name)
                if obj is None:
                    return "gone" if gone_ok else ("failed", Rollout({}))
                last[:] = [Rollout(obj)]
                return decide(last[0])

            try:
                result = watch.until(step, timeout=timeout, what=what, clock=self._clock)
            except OperationTimeout:
                status = last[0].summary() if last else {}
                raise DeploymentFailed(
                    f"{what}: not done after {timeout:g}s",
                    name=name, reason="Timeout", rolled_back=False, failure_info={"status": status},
                ) from None  # fmt: skip
        return result if isinstance(result, tuple) else None

    def _smoke(self, spec: DeploymentSpec, ready: Rollout, rows: Any, source: str) -> Obj | None:
        if rows is None:
            return None
        url = ready.tag_url("latest") or ready.url
        try:
            return smoke.run(str(url), spec.name, rows, source=source)
        except smoke.SmokeTestFailed as exc:
            raise DeploymentFailed(
                f"smoke test of revision {ready.created} failed: {exc}",
                name=spec.name, reason="SmokeTestFailed", rolled_back=False, failure_info=exc.info,
            ) from None  # fmt: skip

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
