"""What every cluster training backend does the same way, whatever object runs the trainer.

A batch Job, a TrainJob and a PyTorchJob differ in the object created and in how its status
reads; everything else is here, once: create-or-adopt (FAULTS K1-K3, O2, O3), the Secret that
carries secret values (S2), waiting through the shared watch loop (K9-K12), following every
pod's logs (T11, T12), failed pods' last log lines (T1, T3, T8), and cancellation with
Foreground propagation and a grace period (O1).

Waiting costs the API server next to nothing per job: every waiter of the process shares one
informer per namespace for the owner kind and one for pods (:mod:`mlrelay.kube.shared`) and
picks its own job and pods out of them; only the log streams are per job.

A subclass says what to create (``manifest``), how to find its pods (``pod_selector``) and how
to read its state (``decide``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from mlrelay.errors import ConfigError, OperationTimeout
from mlrelay.kube import logs as kube_logs
from mlrelay.kube.client import (
    PODS,
    SECRETS,
    AlreadyExists,
    Kind,
    Kube,
    NotFound,
    Obj,
    owner_reference,
)
from mlrelay.kube.shared import Followed
from mlrelay.kube.watch import Watch
from mlrelay.settings import KubernetesSettings, redact_uri
from mlrelay.training import manifests
from mlrelay.training.podstate import Limits, condition
from mlrelay.training.spec import (
    JobHandle,
    JobState,
    JobStatus,
    RunContext,
    RunIdentity,
    TrainingJob,
)

log = logging.getLogger("mlrelay.training")

TERMINAL_CONDITIONS = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget", "Succeeded")
OURS = f"{manifests.MANAGED_BY}=mlrelay"  # on every object we create, pods included


class ClusterBackend:
    """The shared part of the cluster backends (see the module docstring).

    Args:
        settings: the API server and namespace.
        limits: scheduling timeout and config-error grace (from the objects' timestamps).
        relist_interval: seconds between re-lists of the shared informers, the bound on how long a
            dropped event can hide a job's end (K11): only a backstop, as watches resume from
            the last resourceVersion (bookmarks included); its cost is per namespace, not job.
        grace_period: seconds a cancelled trainer gets between SIGTERM and SIGKILL.
        log_linger: seconds a log stream may stay open after its container ended (T12).
        log: called with each message of the backend (not the trainer's output).
        kube: an existing connection (tests, or to share one); built from ``settings`` otherwise.
        now: the wall clock, injectable (time-based verdicts compare it with object timestamps).
    """

    name = "cluster"
    kind: Kind
    #: Selects the pods of every job of this kind that we created, in a namespace.
    pods_selector = OURS

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        *,
        limits: Limits | None = None,
        relist_interval: float = 300.0,
        grace_period: int = 30,
        log_linger: float = 3.0,
        log: Callable[[str], None] | None = None,
        kube: Kube | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._kube = kube
        self.limits = limits or Limits()
        self.relist_interval = relist_interval
        self.grace_period = grace_period
        self.log_linger = log_linger
        self._log = log
        self._now = now
        self._clock = clock

    @property
    def kube(self) -> Kube:
        """The connection, opened on first use (so ``validate`` needs no cluster)."""
        if self._kube is None:
            self._kube = Kube(self._settings)
        return self._kube

    # -- what a subclass provides --------------------------------------------------------------

    def manifest(
        self, job: TrainingJob, run: RunContext, name: str, identity: RunIdentity | None
    ) -> Obj:
        raise NotImplementedError

    def pod_selector(self, name: str) -> str:
        raise NotImplementedError

    def decide(self, obj: Obj | None, pods: list[Obj]) -> JobStatus:
        raise NotImplementedError

    # -- TrainingBackend -------------------------------------------------------------------------

    def validate(self, job: TrainingJob) -> None:
        if not job.image:
            raise ConfigError("a cluster backend runs an image: set image", field="image")

    def submit(
        self, job: TrainingJob, run: RunContext, identity: RunIdentity | None = None
    ) -> JobHandle:
        """Create the object (and its Secret), or adopt the one an earlier try created."""
        self.validate(job)
        name = identity.job_name(job.name) if identity is not None else job.name
        ns = self.kube.namespace
        body = self.manifest(job, run, name, identity)
        secret = None
        if manifests.has_secrets(job, run):
            secret = manifests.secret(job, run, name, dict(body["metadata"]["labels"]))
        created = self._create_or_adopt(body, secret, identity)
        try:
            self._say(
                f"{'adopted' if created is None else 'created'} {self.kind.kind} {ns}/{name} "
                f"(MLflow run {run.run_id})"
            )
            return JobHandle(
                backend=self.name,
                job_name=name,
                run_id=run.run_id,
                experiment_id=run.experiment_id,
                tracking_uri=redact_uri(run.tracking_uri),
                namespace=ns,
                submitted_at=datetime.now(UTC),
            )
        except BaseException:
            # An interrupt (Dagster's termination raises in whatever line runs) before the caller
            # holds the handle: nobody could cancel this job later, so it goes now.
            self._delete_if_ours(body)
            raise

    def status(self, handle: JobHandle) -> JobStatus:
        ns = handle.namespace or self.kube.namespace
        try:
            obj: Obj | None = self.kube.get(self.kind, handle.job_name, ns)
        except NotFound:
            obj = None
        pods = self.kube.list(PODS, ns, selector=self.pod_selector(handle.job_name))
        return self.decide(obj, list(pods.get("items") or []))

    def wait(self, handle: JobHandle, timeout: float | None = None) -> JobStatus:
        """Watch the object and its pods until the state is terminal (or a pod fails it)."""
        ns = handle.namespace or self.kube.namespace
        with Watch() as watch:
            owner, pods = self._join(watch, handle.job_name, ns)
            last: list[JobState] = []

            def decide() -> JobStatus | None:
                status = self.decide(owner.get(), pods())
                if not last or last[-1] is not status.state:
                    last.append(status.state)
                    self._say(f"{handle.job_name}: {status.state.value}" + _detail(status))
                return status if status.state.terminal else None

            status = watch.until(
                decide, timeout=timeout, what=f"training job {handle.job_name!r}", clock=self._clock
            )
            if status.state is JobState.FAILED:
                # The owner's verdict can arrive before the last pod's update does (two watches):
                # read the pods once more so that every attempt is reported (T8).
                items = self.kube.list(PODS, ns, selector=self.pod_selector(handle.job_name))
                final = self.decide(owner.get(), items.get("items") or [])
                status = final if final.state.terminal else status
        return self._with_pod_logs(status, ns)

    def logs(self, handle: JobHandle, follow: bool = True) -> Iterator[str]:
        ns = handle.namespace or self.kube.namespace
        selector = self.pod_selector(handle.job_name)
        if not follow:
            items = self.kube.list(PODS, ns, selector=selector).get("items") or []
            for pod in items:
                for c in (pod.get("spec") or {}).get("containers") or []:
                    lines = kube_logs.tail(
                        self.kube, ns, pod["metadata"]["name"], c["name"], lines=10**6
                    )
                    yield from (f"[{pod['metadata']['name']}] {line}" for line in lines)
            return

        # The owner's state comes from the shared informers too: polling it while a job runs
        # for hours would cost two requests every few seconds.
        with Watch() as watch:
            owner, pods = self._join(watch, handle.job_name, ns)

            def finished(current: list[Obj]) -> bool:
                return self.decide(owner.get(), current).state.terminal

            yield from kube_logs.follow_pods(
                self.kube, ns, watch=watch, pods=pods, finished=finished, linger=self.log_linger
            )

    def cancel(self, handle: JobHandle) -> None:
        """Delete the object with Foreground propagation unless it already ended; wait (bounded)
        until it and its pods are gone, so nothing is left running that nobody owns."""
        ns = handle.namespace or self.kube.namespace
        try:
            obj = self.kube.get(self.kind, handle.job_name, ns)
        except NotFound:
            return
        if _ended(obj):
            return
        self.kube.delete(
            self.kind,
            handle.job_name,
            ns,
            propagation="Foreground",
            grace_seconds=self.grace_period,
        )
        self._say(
            f"deleted {self.kind.kind} {ns}/{handle.job_name} (Foreground, grace {self.grace_period}s)"
        )
        with Watch() as watch:
            gone = self._watch_owner(watch, handle.job_name, ns)
            try:
                watch.until(
                    lambda: True if gone.get() is None else None,
                    timeout=self.grace_period + 30.0,
                    what=f"deleting {handle.job_name!r}",
                    clock=self._clock,
                )
            except OperationTimeout:
                log.warning("%s %s is still being deleted", self.kind.kind, handle.job_name)

    # -- helpers ---------------------------------------------------------------------------------

    def _create_or_adopt(
        self, body: Obj, secret: Obj | None, identity: RunIdentity | None
    ) -> Obj | None:
        """The created object, or None when an identical one (same owner labels and spec hash)
        was adopted. Anything else of that name is a clear error (K2); a Secret we created for
        an object that was not created is deleted again (nothing orphaned)."""
        made_secret = secret is not None and self._create_secret(secret)
        try:
            try:
                created = self.kube.create(self.kind, body)
            except AlreadyExists:
                return self._adopt(body, secret, identity)
            if secret is not None:
                self.kube.patch(
                    SECRETS,
                    secret["metadata"]["name"],
                    {"metadata": {"ownerReferences": [owner_reference(created)]}},
                )
        except BaseException:
            # The create may have committed before the failure (a lost response, an interrupt
            # while the answer was on its way): a job of this very run and spec is ours to remove.
            self._delete_if_ours(body)
            if made_secret and secret is not None:
                self.kube.delete(SECRETS, secret["metadata"]["name"], propagation="Background")
            raise
        return created

    def _watch_owner(self, watch: Watch, name: str, namespace: str) -> Followed:
        """The job object itself, from the namespace's shared informer of its kind."""
        informer = watch.add(
            self.kube, self.kind, namespace, label_selector=OURS,
            relist_interval=self.relist_interval, interest=lambda o: o["metadata"]["name"] == name,
        )  # fmt: skip
        return watch.follow(informer, name, self.kube)

    def _join(
        self, watch: Watch, name: str, namespace: str
    ) -> tuple[Followed, Callable[[], list[Obj]]]:
        """The job and (a reader of) its pods, from the namespace's shared informers."""
        key, _, value = self.pod_selector(name).partition("=")
        owner = self._watch_owner(watch, name, namespace)
        pods = watch.add(
            self.kube, PODS, namespace, label_selector=self.pods_selector,
            relist_interval=self.relist_interval,
            interest=lambda pod: (pod["metadata"].get("labels") or {}).get(key) == value,
        )  # fmt: skip
        return owner, lambda: pods.select(key, value)

    def _delete_if_ours(self, body: Obj) -> None:
        name = body["metadata"]["name"]
        try:
            if _same(self.kube.get(self.kind, name), body):
                self.kube.delete(self.kind, name, propagation="Foreground", grace_seconds=0)
                self._say(f"removed {self.kind.kind} {name}: its submission did not complete")
        except Exception as exc:  # the original failure is the one to report
            log.warning("could not check for a half-created %s %s: %s", self.kind.kind, name, exc)

    def _create_secret(self, secret: Obj) -> bool:
        """Create the job's Secret; False if ours (same labels) was there already."""
        name = secret["metadata"]["name"]
        try:
            self.kube.create(SECRETS, secret)
            return True
        except AlreadyExists:
            if not _same(self.kube.get(SECRETS, name), secret):
                raise ConfigError(
                    f"a Secret named {name!r} already exists and was not created for this run; "
                    "delete it or choose another job name",
                    field="name",
                ) from None
            return False

    def _adopt(self, body: Obj, secret: Obj | None, identity: RunIdentity | None) -> Obj | None:
        name = body["metadata"]["name"]
        existing = self.kube.get(self.kind, name)
        if _same(existing, body):
            return None
        if identity is not None and _same_owner(existing, body) and _ended(existing):
            # An earlier try of this task ran another job (a failed one) under this name: it is
            # ours to replace.
            self.kube.delete(self.kind, name, propagation="Foreground", grace_seconds=0)
            self._await_gone(name)
            return self._create_or_adopt(body, secret, identity)
        raise ConfigError(
            f"a {self.kind.kind} named {name!r} already exists in {self.kube.namespace} and "
            "was not created for this run and spec; delete it or choose another job name",
            field="name",
        )

    def _await_gone(self, name: str) -> None:
        with Watch() as watch:
            gone = self._watch_owner(watch, name, self.kube.namespace)
            watch.until(
                lambda: True if gone.get() is None else None,
                timeout=120.0,
                what=f"deleting {name!r}",
            )

    def _with_pod_logs(self, status: JobStatus, namespace: str) -> JobStatus:
        """Each failed attempt with its last log lines (the previous run's for a crash loop)."""
        if not status.attempts:
            return status
        enriched = []
        for a in status.attempts:
            lines = kube_logs.tail(
                self.kube,
                namespace,
                a.pod,
                a.container or manifests.CONTAINER,
                previous=a.reason == "CrashLoopBackOff",
            )
            enriched.append(a.model_copy(update={"logs": lines}))
        return status.model_copy(update={"attempts": enriched})

    def _say(self, message: str) -> None:
        log.info("%s", message)
        if self._log is not None:
            self._log(message)


def _same(existing: Obj, body: Obj) -> bool:
    want = body["metadata"]["labels"]
    have = existing.get("metadata", {}).get("labels") or {}
    keys = (manifests.MANAGED_BY, manifests.MLFLOW_RUN, manifests.IDENTITY, manifests.SPEC_HASH)
    return all(have.get(k) == want.get(k) for k in keys)


def _same_owner(existing: Obj, body: Obj) -> bool:
    want = body["metadata"]["labels"]
    have = existing.get("metadata", {}).get("labels") or {}
    keys = (manifests.MANAGED_BY, manifests.IDENTITY)
    return all(have.get(k) == want.get(k) for k in keys)


def _ended(obj: Obj) -> bool:
    return any(condition(obj, t) is not None for t in TERMINAL_CONDITIONS)


def _detail(status: JobStatus) -> str:
    text = f" ({status.reason})" if status.reason else ""
    return text + (f": {status.message}" if status.message else "")
