"""The local training backend: the job's command as a process on this machine.

The trainer runs under a tiny supervisor (``_supervise.py``, standard library only) in a
process group of its own, with a minimal environment: a few inherited variables, the job's
variables (secrets resolved), and the MLflow run's. The supervisor writes the trainer's output
to ``<state_dir>/<job>/<run_id>/output.log`` as it is printed and its exit status to
``result.json``, so a handle alone (a pid and a path, JSON-serialisable) is enough for
``status``, ``logs`` and ``cancel`` from any process, as with a cluster job.

The command is an argv list, never a shell command line: ``;``, ``$(...)`` or ``|`` in an
argument reach the trainer as the characters they are (FAULTS S5).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from subprocess import DEVNULL, Popen
from typing import Any

from mlrelay import _proc
from mlrelay.errors import ConfigError, OperationTimeout
from mlrelay.settings import LocalSettings, redact_uri
from mlrelay.training.spec import (
    JobHandle,
    JobState,
    JobStatus,
    Resources,
    RunContext,
    RunIdentity,
    TrainingJob,
)

log = logging.getLogger("mlrelay.training")

SUPERVISOR = Path(__file__).with_name("_supervise.py")
LOG_FILE, RESULT_FILE, CANCELLED_FILE = "output.log", "result.json", "cancelled"
HANDLE_FILE = "handle.json"

# What a trainer inherits from the calling process: enough to find programs, certificates and
# proxies, nothing else. Credentials are never inherited: they reach the job only as job env
# (``secret_value`` / ``secret_key_ref``) or the MLflow token from the settings.
DEFAULT_INHERITED_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "VIRTUAL_ENV", "CONDA_PREFIX",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
)  # fmt: skip
EXEC_WINDOW_TRIES = 50  # re-reads of an empty /proc/PID/cmdline, 10 ms apart (see _running)


class LocalBackend:
    """Runs a ``TrainingJob`` as a local process group.

    Args:
        secrets_dir: where ``secret_key_ref`` values are read from: ``<secrets_dir>/<name>/<key>``,
            the layout of a Kubernetes Secret mounted as a volume. The value is used as is (a
            trailing newline stays), as Kubernetes does.
        state_dir: where each job's output and exit status are kept (default
            ``$MLRELAY_HOME/jobs``).
        log: called with each message of the backend (not the trainer's output).
        grace_period: seconds between SIGTERM and SIGKILL when a job is stopped.
        stop_with_caller: stop the trainer if the process that submitted it dies (even by
            SIGKILL). Turn off only to hand a running job over to another process.
        inherit_env: the variables a trainer inherits from this process.
        poll_interval: how often ``wait`` and ``logs(follow=True)`` look at the job (seconds).
        clock, sleep: injectable for tests (``time.monotonic``, ``time.sleep``).
    """

    name = "local"

    def __init__(
        self,
        secrets_dir: Path | str | None = None,
        *,
        state_dir: Path | str | None = None,
        log: Callable[[str], None] | None = None,
        grace_period: float = 10.0,
        stop_with_caller: bool = True,
        inherit_env: Sequence[str] = DEFAULT_INHERITED_ENV,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.secrets_dir = Path(secrets_dir) if secrets_dir is not None else None
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.grace_period = grace_period
        self.stop_with_caller = stop_with_caller
        self.inherit_env = tuple(inherit_env)
        self.poll_interval = poll_interval
        self._log = log
        self._clock = clock
        self._sleep = sleep
        self._children: dict[int, Popen[bytes]] = {}  # supervisors we started, to reap them

    # -- TrainingBackend -------------------------------------------------------------------

    def validate(self, job: TrainingJob) -> None:
        """Check that the command, working directory and secrets are all there."""
        if job.working_dir is not None and not Path(job.working_dir).is_dir():
            raise ConfigError(f"{job.working_dir!r} is not a directory", field="working_dir")
        env = {**self._inherited(), **self._job_env(job)}
        _executable(job.command[0], path=env.get("PATH", os.defpath), cwd=job.working_dir)

    def submit(
        self, job: TrainingJob, run: RunContext, identity: RunIdentity | None = None
    ) -> JobHandle:
        """Start the trainer under its supervisor and return without waiting.

        With an ``identity``, a trainer that an earlier try started for the same run and that is
        still running (or succeeded) is adopted. It survives its caller only when
        ``stop_with_caller`` is off; otherwise the earlier try's trainer was stopped with it and
        this try starts afresh.
        """
        self.validate(job)
        state = self._root() / job.name / run.run_id
        if identity is not None and (adopted := self._adopt(state)) is not None:
            return adopted
        self._note_ignored(job)
        job_env = self._job_env(job)
        env = {
            **self._inherited(),
            "PYTHONUNBUFFERED": "1",  # so a Python trainer's prints reach the log as they happen
            **run.env(),
            **run.secret_env(),
            **job_env,
        }
        secret_names = [e.name for e in job.env if e.value is None] + list(run.secret_env())
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_path, result_path = state / LOG_FILE, state / RESULT_FILE
        for stale in (log_path, result_path, state / CANCELLED_FILE, state / HANDLE_FILE):
            stale.unlink(missing_ok=True)  # an earlier try's, which failed: start clean
        options = {
            "log": str(log_path),
            "result": str(result_path),
            "mask_env": secret_names,
            "grace": self.grace_period,
            "stop_with_parent": self.stop_with_caller,
        }
        argv = [
            sys.executable, "-I", "-S", str(SUPERVISOR), json.dumps(options),
            "--", *job.command, *job.args,
        ]  # fmt: skip
        # The supervisor's own stderr goes to the job log, so even its crash would be visible.
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            proc = _proc.spawn(argv, env=env, cwd=job.working_dir, stdout=DEVNULL, stderr=log_fd)
        finally:
            os.close(log_fd)
        self._children[proc.pid] = proc
        self._say(
            f"started job {job.name!r} (process group {proc.pid}): "
            f"{shlex.join([*job.command, *job.args])}; output in {log_path}"
        )
        handle = JobHandle(
            backend=self.name,
            job_name=job.name,
            run_id=run.run_id,
            experiment_id=run.experiment_id,
            tracking_uri=redact_uri(run.tracking_uri),
            pid=proc.pid,
            log_path=str(log_path),
            submitted_at=datetime.now(UTC),
        )
        (state / HANDLE_FILE).write_text(handle.model_dump_json())
        return handle

    def _adopt(self, state: Path) -> JobHandle | None:
        """The handle an earlier try left in ``state``, if its trainer runs or succeeded."""
        try:
            handle = JobHandle.model_validate_json((state / HANDLE_FILE).read_text())
        except (OSError, ValueError):
            return None
        current = self.status(handle).state
        if current is JobState.RUNNING or current is JobState.SUCCEEDED:
            self._say(f"adopting job {handle.job_name!r} ({current.value}) from an earlier try")
            return handle
        return None

    def status(self, handle: JobHandle) -> JobStatus:
        """The job's state from its files and process: works in any process, from the handle."""
        state, pid = _state_dir(handle), _pid(handle)
        if (child := self._children.get(pid)) is not None and child.poll() is not None:
            self._children.pop(pid, None)  # reaped: no zombie left behind (wait and logs race here)
        result = _read_result(state)
        if result is None and self._running(handle):
            return JobStatus(state=JobState.RUNNING, started_at=handle.submitted_at)
        result = result or _read_result(state)  # it may have been written since we looked
        cancelled = (state / CANCELLED_FILE).exists()
        base: dict[str, Any] = {"started_at": handle.submitted_at}
        if result is None:
            if cancelled:
                return JobStatus(state=JobState.CANCELLED, reason="Cancelled", **base)
            return JobStatus(
                state=JobState.FAILED,
                reason="Lost",
                message="the job's supervisor ended without recording an exit status",
                **base,
            )
        code = int(result["exit_code"])
        finished = datetime.fromtimestamp(float(result["finished_at"]), UTC)
        base |= {"exit_code": code, "finished_at": finished}
        if result.get("stopped") == "parent-died":
            return JobStatus(
                state=JobState.CANCELLED,
                reason="OwnerDied",
                message="the process that submitted the job died, so the job was stopped",
                **base,
            )
        if cancelled:
            return JobStatus(state=JobState.CANCELLED, reason="Cancelled", **base)
        if code == 0:
            return JobStatus(state=JobState.SUCCEEDED, **base)
        how = f"killed by {result['signal']}" if result.get("signal") else f"exited with {code}"
        return JobStatus(state=JobState.FAILED, reason="NonZeroExit", message=how, **base)

    def wait(self, handle: JobHandle, timeout: float | None = None) -> JobStatus:
        """Poll ``status`` until the job ends; ``OperationTimeout`` if ``timeout`` passes first."""
        deadline = None if timeout is None else self._clock() + timeout
        while not (status := self.status(handle)).state.terminal:
            if deadline is not None and self._clock() >= deadline:
                raise OperationTimeout(
                    "the job is still running",
                    operation=f"training job {handle.job_name!r}",
                    timeout=float(timeout or 0),
                )
            self._sleep(self.poll_interval)
        return status

    def logs(self, handle: JobHandle, follow: bool = True) -> Iterator[str]:
        """Lines of the job's output file; with ``follow``, until the job ended and all is read."""
        path = Path(handle.log_path or "")
        if not path.is_file():
            raise ConfigError(f"no output file at {path}", field="handle.log_path")
        with open(path, "rb") as f:
            pending = b""
            while True:
                # Look at the state BEFORE reading: if the job had ended, this read gets the rest.
                ended = not follow or self.status(handle).state.terminal
                chunk = f.read(1 << 16)
                if chunk:
                    *lines, pending = (pending + chunk).split(b"\n")
                    yield from (_decode(line) for line in lines)
                elif ended:
                    if pending:
                        yield _decode(pending)
                    return
                else:
                    self._sleep(self.poll_interval)

    def cancel(self, handle: JobHandle) -> None:
        """SIGTERM the job's process group, SIGKILL it after the grace period."""
        if self.status(handle).state.terminal:
            return
        pid = _pid(handle)
        (_state_dir(handle) / CANCELLED_FILE).touch()
        if _proc.alive(pid) and not self._running(handle):
            log.warning("process %d is no longer job %r: not signalling it", pid, handle.job_name)
            return
        _proc.stop_group(
            pid,
            grace=self.grace_period,
            proc=self._children.pop(pid, None),
            sleep=self._sleep,
            clock=self._clock,
        )
        self._say(f"stopped job {handle.job_name!r} (process group {pid})")

    # -- helpers ---------------------------------------------------------------------------

    def _root(self) -> Path:
        return (self.state_dir or LocalSettings().home / "jobs").resolve()

    def _inherited(self) -> dict[str, str]:
        return {k: os.environ[k] for k in self.inherit_env if k in os.environ}

    def _job_env(self, job: TrainingJob) -> dict[str, str]:
        """The job's own variables with secrets resolved; ``ConfigError`` names a missing one."""
        env: dict[str, str] = {}
        for i, var in enumerate(job.env):
            if var.value is not None:
                env[var.name] = var.value
            elif var.secret_value is not None:
                env[var.name] = var.secret_value.get_secret_value()
            elif var.secret_key_ref is not None:
                env[var.name] = self._read_secret(
                    var.secret_key_ref.name,
                    var.secret_key_ref.key,
                    field=f"env[{i}].secret_key_ref",
                )
        return env

    def _read_secret(self, name: str, key: str, *, field: str) -> str:
        if self.secrets_dir is None:
            raise ConfigError(
                f"secret {name}/{key} is a secret_key_ref, but the local backend was given no "
                "secrets_dir to read <secrets_dir>/<name>/<key> from",
                field=field,
            )
        if "/" in key or key in (".", ".."):
            raise ConfigError(f"secret key {key!r} is not a file name", field=field)
        path = self.secrets_dir / name / key
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as exc:  # the path is not secret, the value is
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"cannot read secret {name}/{key} at {path}: {reason}", field=field
            ) from None

    def _running(self, handle: JobHandle) -> bool:
        """Whether the handle's pid is alive AND is still our supervisor (pids are reused)."""
        pid = _pid(handle)
        for _ in range(EXEC_WINDOW_TRIES):
            if not _proc.alive(pid):
                return False
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return False
            if cmdline:
                return str(_state_dir(handle) / RESULT_FILE).encode() in cmdline
            # Empty: Popen returns once exec closed the error pipe, which the kernel does before
            # it sets up the new argv; a loaded machine shows that window (a job read as Lost).
            time.sleep(0.01)
        return False  # empty for good: not a process of ours (a kernel thread took the pid)

    def _note_ignored(self, job: TrainingJob) -> None:
        ignored = [
            name
            for name, given in (
                ("image", job.image is not None),
                ("resources", job.resources != Resources()),
                ("node_selector", bool(job.node_selector)),
                ("tolerations", bool(job.tolerations)),
                ("service_account", job.service_account is not None),
                ("labels", bool(job.labels)),
                ("backoff_limit", job.backoff_limit > 0),
            )
            if given
        ]
        if ignored:
            self._say(
                f"job {job.name!r}: the local backend ignores {', '.join(ignored)} "
                "(they apply on a cluster); it runs the command once, as this user"
            )

    def _say(self, message: str) -> None:
        log.info("%s", message)
        if self._log is not None:
            self._log(message)


def _executable(command: str, *, path: str, cwd: str | None) -> str:
    """Resolve ``command`` as ``exec`` would, or raise ``ConfigError`` naming ``command``."""
    if "/" in command:
        candidate = Path(cwd or ".") / command
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise ConfigError(f"{command!r} is not an executable file", field="command")
    found = shutil.which(command, path=path)
    if found is None:
        raise ConfigError(f"{command!r} was not found on PATH", field="command")
    return found


def _pid(handle: JobHandle) -> int:
    if handle.backend != LocalBackend.name or handle.pid is None:
        raise ConfigError(f"not a local job handle (backend {handle.backend!r})", field="handle")
    return handle.pid


def _state_dir(handle: JobHandle) -> Path:
    if not handle.log_path:
        raise ConfigError("a local job handle needs log_path", field="handle.log_path")
    return Path(handle.log_path).parent


def _read_result(state: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state / RESULT_FILE).read_text())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")
