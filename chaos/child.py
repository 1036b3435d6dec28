"""One attempt of one chaos run, in its own process so that the runner can kill it.

Usage: ``python -m chaos.child SPEC.json``. The spec names the adapter, the run's key, seed,
training set and attempt; the result (``ok``, states, failures) is written to
``spec["result"]`` when the orchestrator returns. An exception that escapes the orchestrator is
itself reported as the failure, with its type; a child that dies without a result file is what
the runner calls a crash (or a kill, when it sent the signal).

SIGTERM is what each orchestrator's worker gets when it is stopped: Airflow's task runner and
Prefect's engine handle it themselves; Dagster's CLI entry points map it to an interrupt
(``setup_interrupt_handlers``), so the child does the same for ``execute_job``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    out = Path(spec["result"])
    if spec["adapter"] == "dagster":
        from dagster._utils.interrupts import setup_interrupt_handlers

        setup_interrupt_handlers()
    from chaos.pipelines import RUNNERS

    try:
        result = RUNNERS[spec["adapter"]](spec)
    except BaseException as exc:  # reported, with its type, to the runner
        traceback.print_exc()
        cls = type(exc)
        failure = {"task": "orchestrator", "type": cls.__name__, "module": cls.__module__,
                   "message": str(exc)[:500]}  # fmt: skip
        result = {"ok": False, "states": {}, "failures": [failure], "escaped": True}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(out)
    print(f"chaos child done: ok={result['ok']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
