"""Serve registered MLflow model versions with the real KServe model server on 127.0.0.1.

One deployment name is one endpoint; one server process serves one model version. A rollout is
blue/green: the new version's server starts next to the old one, must report ready and pass a
smoke test, and only then is the endpoint's record switched to it and the old server stopped.
A new version that fails never takes the endpoint, and the old one never stops serving.

Each version gets its own free port, hence its own URL (the record, the returned ``Deployment``
and ``list_deployments`` say which). A pinned ``spec.port`` that the serving version holds cannot
be shared, so that rollout is stop-then-start ("recreate", with downtime, said in the log): the
new version is checked as far as possible before the old one stops, and if it fails, the old one
is started again. Canary needs two versions behind one address, which the local backend does not
have: a canary request is logged and carried out as a replace.

The records live in ``LocalSettings.state_dir`` (see ``state.py``), so the process that deploys,
the one that lists and the one that undeploys need not be the same.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlrelay import _proc
from mlrelay.errors import ConfigError, DeploymentFailed, MLRelayError
from mlrelay.serving import artifacts, process, smoke
from mlrelay.serving.process import HOST, ServerFailed
from mlrelay.serving.spec import Canary, Deployment, DeploymentSpec
from mlrelay.serving.state import DeploymentRecord, StateStore, is_serving, stop
from mlrelay.settings import LocalSettings, MLflowSettings

log = logging.getLogger("mlrelay.serving")


class LocalServingBackend:
    """Blue/green rollouts of MLflow model versions onto local KServe model servers.

    Args:
        settings: the MLflow registry to download versions from (default: from the environment).
        local: where models, records and server logs are kept (default: ``MLRELAY_HOME``).
        python: the interpreter that runs the server; it must have ``mlrelay[serve]``.
        startup_timeout: seconds a new server may take to report ready, unless the spec sets
            ``ready_timeout`` (a server start takes 7-20 s on two cores).
        clock, sleep: injectable so the waits can be tested without waiting.
    """

    kind = "local"

    def __init__(
        self,
        settings: MLflowSettings | None = None,
        local: LocalSettings | None = None,
        *,
        python: str = sys.executable,
        startup_timeout: float = 120.0,
        smoke_timeout: float = 30.0,
        poll_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.local = local or LocalSettings()
        self.python = python
        self.startup_timeout = startup_timeout
        self.smoke_timeout = smoke_timeout
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep
        self.store = StateStore(self.local.state_dir)

    # -- public ----------------------------------------------------------------------------

    def deploy(self, spec: DeploymentSpec) -> Deployment:
        """Roll ``spec.model`` out to the endpoint ``spec.name``; the old version serves until then.

        Redeploying the version that already serves is a no-op apart from the smoke test
        (``promoted=False``), so a retried task does not restart a healthy server.

        Raises:
            ConfigError: the version is not registered or not ready, the sample rows do not fit
                the signature, or there is nothing to smoke-test with (raised before any server
                starts or stops).
            DeploymentFailed: the new server exited, did not become ready in time, or failed the
                smoke test; it was stopped, and ``rolled_back`` says the old version serves.
            ServiceUnavailable: the MLflow registry could not be reached.
        """
        if isinstance(spec.strategy, Canary):
            log.warning(
                "canary (%d%%) is not supported by the local backend, where one process serves "
                "one version: replacing %r with version %s at 100%%",
                spec.strategy.percent,
                spec.name,
                spec.model.version,
            )
        with self.store.lock(spec.name):
            return self._rollout(spec, self._current(spec.name))

    def rollback(self, name: str) -> Deployment:
        """Bring back the version that ``name`` served before (blue/green again), then swap."""
        with self.store.lock(name):
            current = self.store.get(name)
            if current is None:
                raise ConfigError(f"no local deployment named {name!r}", field="name")
            if current.previous is None:
                raise ConfigError(f"deployment {name!r} has no previous version", field="name")
            log.info(
                "rolling %r back from version %s to version %s",
                name,
                current.model_version,
                current.previous.model_version,
            )
            return self._rollout(current.previous.spec, current)

    def undeploy(self, name: str) -> None:
        """Stop the server of ``name`` (and a replaced one a crash left running); forget it."""
        with self.store.lock(name):
            record = self.store.get(name)
            if record is None:
                log.info("nothing deployed as %r", name)
                return
            stop(record)
            if record.previous is not None:
                stop(record.previous)
            self.store.delete(name)
            Path(record.log_file).unlink(missing_ok=True)
            log.info("undeployed %r (version %s)", name, record.model_version)

    def list(self) -> list[Deployment]:
        """The deployments whose server runs; records of dead servers are left out (and said)."""
        live = []
        for record in self.store.all():
            if is_serving(record):
                live.append(record.to_deployment())
            else:
                log.warning(
                    "%r is recorded but its server (pid %d) is not running; "
                    "undeploy(%r) clears the record",
                    record.name,
                    record.pid,
                    record.name,
                )
        return live

    def get(self, name: str) -> Deployment | None:
        """The deployment of ``name`` if its server runs."""
        record = self._current(name)
        return record.to_deployment() if record is not None and is_serving(record) else None

    # -- the rollout -----------------------------------------------------------------------

    def _current(self, name: str) -> DeploymentRecord | None:
        record = self.store.get(name)
        if record is not None and not is_serving(record):
            log.warning(
                "the server of %r (version %s, pid %d) is not running",
                name,
                record.model_version,
                record.pid,
            )
        return record

    def _rollout(self, spec: DeploymentSpec, current: DeploymentRecord | None) -> Deployment:
        if current is not None and is_serving(current):
            if _same_target(spec, current):
                return self._reconfirm(spec, current)
            if spec.port is not None and spec.port == current.port:
                return self._recreate(spec, current)
        return self._blue_green(spec, current)

    def _recreate(self, spec: DeploymentSpec, current: DeploymentRecord) -> Deployment:
        """Stop, then start: ``spec.port`` is pinned and the serving version holds it.

        Everything that can fail without a server (registry, download, sample rows) is checked
        before the old server stops. If the new version then fails, the old one is started
        again on its port and the failure says ``rolled_back=True``. Cancelled in between,
        nothing serves and the record still names the old version: a retry starts the new one.
        """
        model_dir, _ = artifacts.download(spec.model, self.settings, self.local)
        artifacts.smoke_rows(spec, model_dir)
        log.warning(
            "port %d is pinned and held by version %s of %r: stopping it before version %s "
            "starts (recreate); the endpoint is down until then",
            current.port,
            current.model_version,
            spec.name,
            spec.model.version,
        )

        def restore() -> bool:
            log.warning("starting version %s of %r again", current.model_version, spec.name)
            try:
                self._blue_green(current.spec, current.previous)
            except MLRelayError as exc:
                log.error("version %s did not come back: %s", current.model_version, exc)
                return False
            return True

        if stop(current):
            Path(current.log_file).unlink(missing_ok=True)
        return self._blue_green(spec, current, restore=restore)

    def _blue_green(
        self,
        spec: DeploymentSpec,
        current: DeploymentRecord | None,
        *,
        restore: Callable[[], bool] | None = None,
    ) -> Deployment:
        """Start the new version next to the current one; swap only once it passed."""
        serving = current is not None and is_serving(current)
        began = self.clock()
        model_dir, run_id = artifacts.download(spec.model, self.settings, self.local)
        rows, source = artifacts.smoke_rows(spec, model_dir)
        started = self.clock()
        timings = {"download": started - began}
        timeout = self.startup_timeout
        if "ready_timeout" in spec.model_fields_set:
            timeout = spec.ready_timeout
        log_file = process.new_log_file(self.store.directory, spec)
        proc = process.spawn(self.python, spec, model_dir, log_file)
        try:
            port = process.wait_ready(
                proc,
                spec,
                log_file,
                timeout=timeout,
                clock=self.clock,
                sleep=self.sleep,
                poll_interval=self.poll_interval,
            )
            timings["start_to_ready"] = self.clock() - started
            url = f"http://{HOST}:{port}"
            checked = self.clock()
            result = None
            if rows is not None:
                result = smoke.run(
                    url,
                    spec.name,
                    rows,
                    expect_version=spec.model.version,
                    source=source,
                    timeout=self.smoke_timeout,
                )
            timings["smoke_test"] = self.clock() - checked
            timings["total"] = self.clock() - began
            record = DeploymentRecord(
                name=spec.name,
                spec=spec,
                url=url,
                host=HOST,
                port=port,
                pid=proc.pid,
                pgid=proc.pid,
                model_name=spec.model.name,
                model_version=spec.model.version,
                run_id=run_id,
                model_dir=str(model_dir),
                log_file=str(log_file),
                created_at=datetime.now(UTC),
                smoke_test=result,
                timings={k: round(v, 3) for k, v in timings.items()},
                previous=current.model_copy(update={"previous": None}) if current else None,
            )
            self.store.put(record)  # from here on, the endpoint is the new version
        except (ServerFailed, smoke.SmokeTestFailed) as exc:
            _proc.stop_group(proc.pid, proc=proc)
            rolled_back = restore() if restore is not None else serving
            failure = self._failure(spec, exc, log_file, pid=proc.pid, rolled_back=rolled_back)
            # Chain the informative cause (OperationTimeout, the HTTP error), not our marker.
            raise failure from (exc.__cause__ if isinstance(exc, ServerFailed) else exc)
        except BaseException:
            # Cancelled (an orchestrator turns SIGTERM into an exception), or a bug: the new
            # server is ours to stop; the old one keeps its record and its traffic.
            _proc.stop_group(proc.pid, proc=proc)
            raise
        log.info(
            "%r now serves %s version %s at %s (pid %d); ready after %.1fs, smoke test %s",
            spec.name,
            spec.model.name,
            spec.model.version,
            url,
            proc.pid,
            timings["start_to_ready"],
            "passed" if result else "skipped",
        )
        if current is not None and stop(current):
            Path(current.log_file).unlink(missing_ok=True)
            log.info(
                "stopped version %s of %r (pid %d) after the new version passed",
                current.model_version,
                spec.name,
                current.pid,
            )
        return record.to_deployment()

    def _reconfirm(self, spec: DeploymentSpec, current: DeploymentRecord) -> Deployment:
        """The version already serves: check it still answers, change nothing."""
        log.info(
            "%r already serves %s version %s (pid %d): not restarting it",
            spec.name,
            spec.model.name,
            spec.model.version,
            current.pid,
        )
        rows, source = artifacts.smoke_rows(spec, Path(current.model_dir))
        result = current.smoke_test
        if rows is not None:
            try:
                result = smoke.run(
                    current.url,
                    spec.name,
                    rows,
                    expect_version=spec.model.version,
                    source=source,
                    timeout=self.smoke_timeout,
                )
            except smoke.SmokeTestFailed as exc:
                raise self._failure(
                    spec, exc, Path(current.log_file), pid=current.pid, rolled_back=False
                ) from exc
        return current.model_copy(update={"smoke_test": result}).to_deployment(promoted=False)

    def _failure(
        self,
        spec: DeploymentSpec,
        exc: Exception,
        log_file: Path,
        *,
        pid: int,
        rolled_back: bool,
    ) -> DeploymentFailed:
        reason = exc.reason if isinstance(exc, ServerFailed) else "SmokeTestFailed"
        tail = process.tail(log_file)
        info: dict[str, Any] = {
            "model": spec.model.uri,
            "pid": pid,
            "log_file": str(log_file),
            "log_tail": tail,
        }
        if isinstance(exc, smoke.SmokeTestFailed):
            info["smoke_test"] = exc.info
        message = str(exc)
        if reason != "SmokeTestFailed" and tail:
            message += "\n" + "\n".join(f"  | {line}" for line in tail[-10:])
        return DeploymentFailed(
            message, name=spec.name, reason=reason, rolled_back=rolled_back, failure_info=info
        )


def _same_target(spec: DeploymentSpec, current: DeploymentRecord) -> bool:
    return (
        current.model_name == spec.model.name
        and current.model_version == spec.model.version
        and spec.port in (None, current.port)
    )
