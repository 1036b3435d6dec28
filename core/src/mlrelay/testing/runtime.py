"""The emulated container runtime: a container is a local process group, its log a file.

A container's ``command + args`` run as an argv list (never a shell), prefixed by what the
``images`` mapping says for its image, with exactly the environment the pod spec declares (plus
``PATH`` so interpreters resolve), as a CRI runtime would build it. Output is captured line by
line with an RFC3339Nano timestamp per line, the way the kubelet's CRI log files store it, so
``timestamps``/``sinceTime``/``tailLines`` can be answered exactly.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from mlrelay import _proc
from mlrelay.testing.kinds import CONFIGMAPS, SECRETS, Obj
from mlrelay.testing.recorder import Clock, timestamp_nano, utcnow
from mlrelay.testing.status import ApiError
from mlrelay.testing.store import Store

#: Put on a container (env ``MLRELAY_EMULATOR_OOM=1``) or a pod (this annotation, value "true" or
#: a container name) to have the container OOM-killed right after it starts.
OOM_ENV = "MLRELAY_EMULATOR_OOM"
OOM_ANNOTATION = "mlrelay.testing/oom-kill"
# A reference ("name:tag", "registry/path@sha256:...") as distribution/reference parses it, simplified.
_IMAGE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$")
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class StartError(Exception):
    """The container cannot start: ``reason`` is its waiting reason (ErrImagePull, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def quantity(value: object) -> float:
    """A resource.Quantity as a number ("128Mi", "1G", "500m", "2")."""
    text = str(value).strip()
    if text.endswith("m") and text[:-1].replace(".", "", 1).isdigit():
        return float(text[:-1]) / 1000
    match = re.fullmatch(r"([0-9.eE+-]+?)([KMGT]i|[kMGT])?", text)
    if not match:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


#: image -> argv prefix (``[sys.executable]``: the image's entrypoint), or image -> {program in
#: the image -> local program} (``{"python": sys.executable}``: rewrites ``command[0]``).
Images = Mapping[str, Sequence[str] | Mapping[str, str]]


def container_argv(
    image: str, images: Images, missing: frozenset[str], words: Sequence[str]
) -> list[str]:
    """What runs for ``command + args`` in ``image``; raises StartError as a failed pull would."""
    if not _IMAGE.match(image):
        raise StartError(
            "InvalidImageName",
            f'Failed to apply default image tag "{image}": '
            f'couldn\'t parse image reference "{image}": invalid reference format',
        )
    if image in missing:
        raise StartError(
            "ErrImagePull",
            f'Failed to pull image "{image}": rpc error: code = NotFound '
            f'desc = failed to pull and unpack image "{image}": not found',
        )
    target = images.get(image, ())
    if isinstance(target, Mapping):
        if words and words[0] in target:
            return [target[words[0]], *words[1:]]
        return list(words)
    return [*target, *words]


def expand(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` expansion of command, args and env values; ``$$`` escapes, unknown refs stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def _field(pod: Obj, path: str) -> str:
    meta = pod["metadata"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise StartError("CreateContainerConfigError", f"unsupported fieldRef fieldPath {path!r}")


def _lookup(store: Store, ns: str, ref: Mapping[str, Any], kind: str) -> str | None:
    is_secret = kind == "Secret"
    try:
        obj = store.get(SECRETS if is_secret else CONFIGMAPS, ns, str(ref.get("name", "")))
    except ApiError:
        if ref.get("optional"):
            return None
        raise StartError(
            "CreateContainerConfigError", f'{kind.lower()} "{ref.get("name")}" not found'
        ) from None
    data = obj.get("data") or {}
    key = str(ref.get("key", ""))
    if key not in data:
        if ref.get("optional"):
            return None
        raise StartError(
            "CreateContainerConfigError",
            f"couldn't find key {key} in {kind} {ns}/{ref.get('name')}",
        )
    return base64.b64decode(data[key]).decode() if is_secret else str(data[key])


def container_env(store: Store, pod: Obj, container: Obj) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom first, then env, in order)."""
    ns = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {"HOSTNAME": pod["metadata"]["name"]}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix", ""))
        for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = source.get(field)
            if ref is None:
                continue
            try:
                obj = store.get(
                    SECRETS if kind == "Secret" else CONFIGMAPS, ns, str(ref.get("name"))
                )
            except ApiError:
                if ref.get("optional"):
                    continue
                raise StartError(
                    "CreateContainerConfigError", f'{kind.lower()} "{ref.get("name")}" not found'
                ) from None
            for key, value in (obj.get("data") or {}).items():
                env[prefix + key] = (
                    base64.b64decode(value).decode() if kind == "Secret" else str(value)
                )
    for var in container.get("env") or []:
        name = str(var["name"])
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand(str(var.get("value", "")), env)
        elif "fieldRef" in source:
            env[name] = _field(pod, str(source["fieldRef"].get("fieldPath")))
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            is_secret = "secretKeyRef" in source
            value = _lookup(
                store,
                ns,
                source["secretKeyRef" if is_secret else "configMapKeyRef"],
                "Secret" if is_secret else "ConfigMap",
            )
            if value is not None:
                env[name] = value
    return env


class ContainerProcess:
    """One run of one container: the process group, its log file, and how it ended."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        log_path: Path,
        on_exit: Callable[[], None],
        clock: Clock = utcnow,
    ) -> None:
        self.log_path = log_path
        self._on_exit = on_exit
        self._clock = clock
        self.exit_code: int | None = None
        self.finished_at: datetime | None = None
        self.oom_killed = False
        self.start_error: str | None = None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        self.started_at = clock()
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        try:
            self.proc: subprocess.Popen[bytes] | None = _proc.spawn(argv, env=full_env, cwd=cwd)
        except OSError as e:  # what runc reports as StartError / exit 128
            self.proc = None
            self.start_error = f"failed to create containerd task: exec: {argv[0]!r}: {e.strerror}"
            self._finish(128)
            return
        self.pid = self.proc.pid
        self._reader = threading.Thread(
            target=self._pump, name=f"log-{log_path.parent.name}", daemon=True
        )
        self._reader.start()

    @property
    def done(self) -> bool:
        return self.exit_code is not None

    def _pump(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with self.log_path.open("ab") as out:
            for line in iter(self.proc.stdout.readline, b""):
                stamp = timestamp_nano(self._clock()).encode()
                out.write(stamp + b" " + line.rstrip(b"\n") + b"\n")
                out.flush()
        self.proc.stdout.close()
        code = self.proc.wait()
        # The group may outlive its leader: what the container started goes with it.
        _proc.stop_group(self.proc.pid, grace=0)
        self._finish(128 - code if code < 0 else code)

    def _finish(self, code: int) -> None:
        self.finished_at = self._clock()
        self.exit_code = code
        self._on_exit()

    def rss_bytes(self) -> int:
        """Resident memory of the whole process group (what the cgroup's memory limit counts)."""
        total = 0
        for pid in _proc.members(self.pid) if self.proc is not None else []:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def oom_kill(self) -> None:
        """SIGKILL the group, as the kernel's OOM killer does in a cgroup over its limit."""
        if self.proc is not None and not self.done:
            self.oom_killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def stop(self, grace: float) -> None:
        """SIGTERM, SIGKILL after ``grace`` seconds, wait for the log to drain. Blocks."""
        if self.proc is None:
            return
        _proc.stop_group(self.pid, grace=grace, proc=self.proc)
        self._reader.join(timeout=5)
