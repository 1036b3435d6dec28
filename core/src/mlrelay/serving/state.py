"""Records of local deployments: one JSON file per endpoint name, so any process can manage them.

A deployment outlives the Python process that started it (an Airflow task ends, the model server
keeps serving). The record is what lets a later process find the server again, stop it
(``undeploy``) or bring back the version it replaced (``rollback``). Files are written
atomically (temporary file + rename), so a reader never sees half a record, and every change of
one name happens under an exclusive ``flock`` so two deploys of the same endpoint cannot
interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from mlrelay import _proc
from mlrelay._model import Frozen
from mlrelay.errors import ConfigError
from mlrelay.serving.spec import Deployment, DeploymentSpec

log = logging.getLogger("mlrelay.serving")

SERVER_MODULE = "mlrelay.serving.server"


class DeploymentRecord(Frozen):
    """One running (or formerly running) local model server.

    Attributes:
        spec: the spec it was deployed from; ``rollback`` redeploys the previous record's spec.
        pgid: the process group to stop (the server is its leader, so ``pgid == pid``).
        model_dir: the downloaded model version the server loaded.
        log_file: the server's combined stdout and stderr.
        previous: the record this one replaced (without its own ``previous``): the rollback target.
    """

    name: str
    spec: DeploymentSpec
    url: str
    host: str
    port: int
    pid: int
    pgid: int
    model_name: str
    model_version: str
    run_id: str | None = None
    model_dir: str
    log_file: str
    created_at: datetime
    smoke_test: dict[str, Any] | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    previous: DeploymentRecord | None = None

    def to_deployment(self, *, promoted: bool = True) -> Deployment:
        """The public result: what adapters put in XCom, artifacts and metadata."""
        return Deployment(
            name=self.name,
            backend="local",
            url=self.url,
            model_name=self.model_name,
            model_version=self.model_version,
            run_id=self.run_id,
            traffic={self.model_version: 100},
            promoted=promoted,
            pid=self.pid,
            smoke_test=self.smoke_test,
            timings=self.timings,
            created_at=self.created_at,
        )


def is_serving(record: DeploymentRecord) -> bool:
    """Whether the record's server process still runs.

    The command line is checked as well as the pid: after a reboot or a long time the pid may
    belong to an unrelated process, which must never be signalled.
    """
    if not _proc.alive(record.pid):
        return False
    try:
        with open(f"/proc/{record.pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    named = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == b"--name"]
    return SERVER_MODULE.encode() in argv and named == [record.name.encode()]


def stop(record: DeploymentRecord, *, grace: float = 10.0) -> bool:
    """Stop the record's server (its whole process group); False if it was not running."""
    if not is_serving(record):
        return False
    log.info(
        "stopping model server of %r (version %s, pid %d)",
        record.name,
        record.model_version,
        record.pid,
    )
    _proc.stop_group(record.pgid, grace=grace)
    _reap(record.pid)
    return True


def _reap(pid: int, timeout: float = 5.0) -> None:
    """Collect the exit status if this process started the server (else it stays a zombie).

    A long-lived worker that deploys many times would otherwise collect zombies. The server is
    multi-threaded: its main thread shows as a zombie before the other threads have exited and
    the status can be collected, hence the short bounded wait.
    """
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.02)


class StateStore:
    """The directory of deployment records (``LocalSettings.state_dir``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the exclusive lock of one endpoint name (released when the holder dies)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f".{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get(self, name: str) -> DeploymentRecord | None:
        """The record of ``name``, whether or not its server still runs."""
        path = self._path(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            return DeploymentRecord.model_validate_json(text)  # type: ignore[no-any-return]
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"unreadable deployment record {path}: {exc}", field="name") from None

    def put(self, record: DeploymentRecord) -> None:
        """Write ``record`` atomically: readers see the old file or the new one, never a mix."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{record.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(record.model_dump_json(indent=2))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path(record.name))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def all(self) -> list[DeploymentRecord]:
        """Every readable record, sorted by name; unreadable files are skipped with a warning."""
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = self.get(path.stem)
            except ConfigError as exc:
                log.warning("skipping %s", exc)
                continue
            if record is not None:
                records.append(record)
        return records
