"""Running one chaos run: its attempts as child processes, the faults, the kill and the retry.

A run is one or two attempts. The first gets the plan's faults (armed before it starts, stream
faults fired on a timer) and/or its kill: SIGKILL to the child's whole process group, as when a
worker's container dies, or SIGTERM to the child, escalated to SIGKILL after the grace a
worker's supervisor gives. An attempt the signal reached before it had finished is retried once
(also when it reported a failure on its way out, as a SIGTERMed worker does), with the same
run identity and no interference: that retry must adopt what the first attempt left (the Job,
the MLflow run, the model version) and finish the run. After every attempt the child's process
group must be empty: anything left there is reported and stopped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chaos.plan import STREAM_FAULTS, RunPlan, arm, disarm
from mlrelay import _proc
from mlrelay.testing.faults import Faults

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("chaos")
# What a worker's supervisor gives a SIGTERMed task before SIGKILL (Airflow's
# killed_task_cleanup_time): Airflow's task runner only calls on_kill() on SIGTERM and goes on.
SIGTERM_GRACE = 60.0


class Stopped(Exception):
    """The runner stopped before this attempt could start."""


@dataclass
class Outcome:
    """What became of one run (the report's row)."""

    plan: RunPlan
    status: str = "pending"  # "succeeded" | "failed" | "hang" | "crash"
    attempts: int = 0
    killed: bool = False  # the signal landed before the attempt finished
    seconds: float = 0.0
    first_attempt_seconds: float = 0.0
    fired: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # processes left in a child's group
    sigterm_exit: float | None = None  # seconds a SIGTERMed child took to exit
    escalated: bool = False  # still alive SIGTERM_GRACE after SIGTERM: SIGKILLed
    states: dict[str, str] = field(default_factory=dict)
    killed_attempt: dict[str, Any] | None = None  # what the killed attempt reported, if anything

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "plan"}, **self.plan.as_dict()}


def namespace(adapter: str) -> str:
    return f"chaos-{adapter}"


def adapter_env(base: dict[str, str], adapter: str, kubeconfig: str) -> dict[str, str]:
    """The world's environment with this adapter's model, namespace and Airflow connection."""
    ns = namespace(adapter)
    env = {**base, "CHAOS_MODEL": f"chaos-{adapter}"}
    env.update(MLRELAY_K8S_NAMESPACE=ns, MLRELAY_KSERVE_NAMESPACE=ns)
    if adapter == "airflow":
        extra = {"kube_config_path": kubeconfig, "namespace": ns}
        env["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(
            {"conn_type": "kubernetes", "extra": extra}
        )
    return env


class Executor:
    """Runs plans against one world; thread-safe (one run per adapter at a time)."""

    def __init__(
        self, env: dict[str, str], faults: Faults, workdir: Path, training_set: Path, *,
        timeout: float, parallel: int,
    ) -> None:  # fmt: skip
        self.env, self.faults, self.dir = env, faults, workdir
        self.training_set = training_set
        self.timeout = timeout
        self.slots = threading.BoundedSemaphore(parallel)
        self.child_groups: list[int] = []
        self._stopping = False
        self._lock = threading.Lock()
        self._epoch = datetime(2026, 1, 1, tzinfo=UTC)

    def stop(self) -> None:
        """Start no more children and stop the process group of every child still running.

        Called from the runner's ``finally`` (Ctrl-C, SIGTERM) while worker threads may be about
        to start a retry: the flag is checked under the same lock as the spawn.
        """
        with self._lock:
            self._stopping = True
            groups = list(self.child_groups)
        for pgid in groups:
            if _proc.members(pgid):
                _proc.stop_group(pgid, grace=5)

    def run(self, plan: RunPlan) -> Outcome:
        outcome = Outcome(plan)
        run_dir = self.dir / "runs" / plan.key
        run_dir.mkdir(parents=True, exist_ok=True)
        env = adapter_env(self.env, plan.adapter, self.env["MLRELAY_K8S_KUBECONFIG"])
        env.update(
            CHAOS_SEED=str(plan.seed),
            CHAOS_TRAINING_SET=str(self.training_set),
            MLRELAY_HOME=str(run_dir / "mlrelay-home"),
        )
        spec = {
            "adapter": plan.adapter,
            "key": plan.key,
            "seed": plan.seed,
            "model": env["CHAOS_MODEL"],
            "training_set": str(self.training_set),
            "state_dir": str(run_dir),
            # Airflow: the run identity is the logical date; a retry reuses it.
            "logical_date": (self._epoch + timedelta(minutes=plan.index)).isoformat(),
        }
        started = time.monotonic()
        with self.slots:
            result = self._attempt(plan, outcome, spec, env, run_dir, first=True)
            outcome.first_attempt_seconds = round(time.monotonic() - started, 1)
            if outcome.killed:  # even if it reported (a SIGTERM may end in a clean failure)
                outcome.killed_attempt = result
                result = self._attempt(plan, outcome, spec, env, run_dir, first=False)
        outcome.seconds = round(time.monotonic() - started, 1)
        if outcome.status == "pending":
            if result is None:
                outcome.status = "crash"
            else:
                outcome.status = "succeeded" if result["ok"] else "failed"
                outcome.failures = result.get("failures", [])
                outcome.states = result.get("states", {})
        return outcome

    def _attempt(
        self, plan: RunPlan, outcome: Outcome, spec: dict[str, Any], env: dict[str, str],
        run_dir: Path, *, first: bool,
    ) -> dict[str, Any] | None:  # fmt: skip
        outcome.attempts += 1
        n = outcome.attempts
        result_path = run_dir / f"result-{n}.json"
        spec_path = run_dir / f"spec-{n}.json"
        spec_path.write_text(json.dumps({**spec, "attempt": n, "result": str(result_path)}))
        env = {**env, "CHAOS_FAILURES": str(run_dir / f"failures-{n}.jsonl")}
        ns = namespace(plan.adapter)
        fired_before = len(self.faults.fired)
        if first and plan.faults:
            arm(self.faults, plan, ns)
        with self._lock:  # stop() holds it too: no child starts once the runner is stopping
            if self._stopping:
                raise Stopped(plan.key)
            with (run_dir / f"attempt-{n}.log").open("wb") as log:
                proc = _proc.spawn(
                    [sys.executable, "-m", "chaos.child", str(spec_path)],
                    env=env, cwd=ROOT, stdout=log, stderr=log,
                )  # fmt: skip
            self.child_groups.append(proc.pid)
        timers = self._stream_timers(plan, outcome, ns) if first and plan.faults else []
        try:
            if first and plan.signal:
                self._kill_later(plan, outcome, proc, result_path)
            else:
                self._wait(proc, self.timeout, outcome)
        finally:
            for timer in timers:
                timer.cancel()
            if first and plan.faults:
                disarm(self.faults, ns)
                for _, path, action in self.faults.fired[fired_before:]:
                    if f"/namespaces/{ns}/" in path:
                        outcome.fired[action] = outcome.fired.get(action, 0) + 1
            self._reap(proc, outcome)
        if result_path.exists():
            loaded: dict[str, Any] = json.loads(result_path.read_text())
            return loaded
        return None

    def _wait(self, proc: Any, timeout: float, outcome: Outcome) -> None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # the run hangs
            outcome.status = "hang"
            outcome.failures = [{"task": "run", "type": "", "module": "",
                                 "message": f"no result after {timeout:.0f}s"}]  # fmt: skip

    def _kill_later(self, plan: RunPlan, outcome: Outcome, proc: Any, result: Path) -> None:
        try:
            proc.wait(timeout=plan.kill_after)
            return  # finished before the kill: nothing to retry
        except subprocess.TimeoutExpired:
            log.debug("%s: killing after %ss", plan.key, plan.kill_after)
        if result.exists():
            return
        outcome.killed = True
        if plan.signal == "SIGKILL":
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's container dies, all of it
            proc.wait()
            return
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=SIGTERM_GRACE)
            outcome.sigterm_exit = round(time.monotonic() - sent, 1)
        except subprocess.TimeoutExpired:  # still going: the supervisor escalates
            outcome.escalated = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _stream_timers(
        self, plan: RunPlan, outcome: Outcome, namespace: str
    ) -> list[threading.Timer]:
        kinds = [k for k in plan.faults if k in STREAM_FAULTS]
        timers = []
        for kind, at in zip(kinds, plan.stream_at, strict=True):

            def fire(kind: str = kind) -> None:
                hit = STREAM_FAULTS[kind](self.faults, namespace)
                if kind == "cut-logs":
                    return  # the emulator records each cut as it happens: counted from `fired`
                with self._lock:
                    outcome.fired[kind] = outcome.fired.get(kind, 0) + hit

            timer = threading.Timer(at, fire)
            timer.daemon = True
            timer.start()
            timers.append(timer)
        return timers

    def _reap(self, proc: Any, outcome: Outcome) -> None:
        """The child is gone (or is stopped now); its group must be empty too."""
        if proc.poll() is None:
            _proc.stop_group(proc.pid, grace=10, proc=proc)
        left = _proc.members(proc.pid)
        if left:
            outcome.leftovers += [_cmdline(pid) for pid in left]
            _proc.stop_group(proc.pid, grace=5)


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} " + raw.replace(b"\0", b" ").decode(errors="replace")[:200]
