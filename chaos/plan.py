"""What happens to each chaos run, decided by a seeded RNG, and the faults the emulator injects.

Each adapter works in its own namespace, so a request fault armed for a run matches only that
run's requests (an adapter's runs go one at a time) and what fired is counted per run. Request
faults are armed before the run starts and fire on the next matching request; stream faults
(watch 410, watch closed, log streams cut) are fired at a random moment while the run goes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mlrelay.testing.faults import Faults

JOBS = r"/apis/batch/v1/namespaces/{ns}/jobs"
ISVCS = r"/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"


def _request_faults() -> dict[str, Callable[[Faults, str], None]]:
    def job_path(ns: str, tail: str = "") -> str:
        return JOBS.format(ns=ns) + tail

    return {
        # K1: the create fails twice; backoff, the same name, one Job.
        "500-job-create": lambda f, ns: f.fail_next(
            2, method="POST", path=job_path(ns, "$"), status=500
        ),
        # K2: the create commits, its answer is lost; the retry's 409 AlreadyExists adopts.
        "lost-response": lambda f, ns: f.lose_response_next(method="POST", path=job_path(ns, "$")),
        # K3: 409 Conflict (not AlreadyExists): retry, never read as "exists".
        "409-conflict": lambda f, ns: f.fail_next(
            1, method="POST", path=job_path(ns, "$"), status=409
        ),
        # K4/K5: throttled / the API server rolling, with Retry-After.
        "429-retry-after": lambda f, ns: f.fail_next(
            1, method="GET", path=job_path(ns), status=429, retry_after=2
        ),
        "503-retry-after": lambda f, ns: f.fail_next(
            2, path=f"/namespaces/{ns}/", status=503, retry_after=1
        ),
        # The KServe rollout's requests fail too.
        "isvc-500": lambda f, ns: f.fail_next(1, path=ISVCS.format(ns=ns), status=500),
        "isvc-503": lambda f, ns: f.fail_next(
            1, path=ISVCS.format(ns=ns), status=503, retry_after=1
        ),
    }


REQUEST_FAULTS = _request_faults()
# Stream faults end the open streams of the run's namespace at the moment they fire.
STREAM_FAULTS: dict[str, Callable[[Faults, str], int]] = {
    "watch-410": lambda f, ns: f.expire_watches(namespace=ns),  # K9
    "watch-closed": lambda f, ns: f.close_watches(namespace=ns),  # K10
    "cut-logs": lambda f, ns: f.cut_log_streams(namespace=ns),  # T11
}
FAULT_KINDS = sorted([*REQUEST_FAULTS, *STREAM_FAULTS])


@dataclass
class RunPlan:
    """One chaos run: its identity, its training seed and what is done to it."""

    adapter: str
    index: int
    key: str
    seed: int  # the trainer's split seed: versions differ in roc_auc, the gate has work
    action: str  # "clean" | "fault" | "kill" | "both" (faults armed, then a kill)
    faults: list[str] = field(default_factory=list)
    stream_at: list[float] = field(default_factory=list)  # seconds after start, per stream fault
    signal: str | None = None  # "SIGTERM" | "SIGKILL"
    kill_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_plans(
    adapters: list[str],
    runs: int,
    seed: int,
    durations: dict[str, float],
    only: str | None = None,
) -> list[RunPlan]:
    """``runs`` plans per adapter. The first two runs of each adapter are a fault run and a kill
    run, so that even the smoke version covers both; the rest are drawn: 40 % faults, 35 %
    kills, 25 % clean. A kill lands uniformly within the adapter's expected run time.
    ``only`` makes every run that action (``clean`` measures a run's time)."""
    rng = random.Random(seed)  # a replayable draw
    plans = []
    for adapter in adapters:
        expected = durations.get(adapter, 40.0)
        for index in range(runs):
            if only is not None:
                action = only
            elif index < 2:
                action = ("fault", "kill")[index]
            else:
                action = rng.choices(["fault", "kill", "clean"], weights=[40, 35, 25])[0]
            plan = RunPlan(
                adapter=adapter,
                index=index,
                key=f"{adapter}-{seed}-{index}",
                seed=rng.randrange(1, 10_000),
                action=action,
            )
            if action in ("fault", "both"):
                plan.faults = rng.sample(FAULT_KINDS, k=rng.choice([1, 1, 2, 3]))
                plan.stream_at = [
                    round(rng.uniform(2.0, expected), 1) for k in plan.faults if k in STREAM_FAULTS
                ]
            if action in ("kill", "both"):
                plan.signal = rng.choice(["SIGTERM", "SIGKILL"])
                # Not before the child has imported its orchestrator (~5 s): that kill tests little.
                plan.kill_after = round(rng.uniform(5.0, expected), 1)
            plans.append(plan)
    return plans


def arm(faults: Faults, plan: RunPlan, namespace: str) -> None:
    for kind in plan.faults:
        if kind in REQUEST_FAULTS:
            REQUEST_FAULTS[kind](faults, namespace)


def disarm(faults: Faults, namespace: str) -> int:
    """Drop the rules a run armed but never triggered, so they do not hit the next run."""
    return faults.discard(namespace)
