"""A closed-loop HTTP load generator: fixed concurrency, fixed duration, keep-alive connections.

Run as its own process (``python benchmarks/loadgen.py URL BODY_FILE ...``) so the client's CPU
is not the server's and both servers in a comparison meet exactly the same client. ``C``
coroutines each send the same POST body back to back on a pool of ``C`` kept-alive
connections; requests completed during the warm-up are not counted. It prints one JSON object:
requests/s, latency percentiles in milliseconds, error count.

aiohttp rather than httpx: on two cores the client shares the CPU with the server it measures,
and aiohttp's client needs roughly half of httpx's CPU per request, so less of the client's
cost shows up as server latency (the same client is used for every server compared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
from common import percentile  # run as a script: benchmarks/ is on sys.path


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    measure_from: float,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    headers = {"Content-Type": "application/json"}
    while (start := time.perf_counter()) < stop_at:
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                ok = response.status == 200
                status = str(response.status)
        except aiohttp.ClientError as exc:
            ok, status = False, type(exc).__name__
        end = time.perf_counter()
        if start >= measure_from and end <= stop_at:
            if ok:
                latencies.append(end - start)
            else:
                errors.append(status)


async def run(
    url: str, body: bytes, *, concurrency: int, duration: float, warmup: float
) -> dict[str, float | int | str]:
    """Load ``url`` for ``warmup + duration`` seconds and summarise the measured part."""
    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        measure_from, stop_at = began + warmup, began + warmup + duration
        await asyncio.gather(
            *(
                _worker(
                    session,
                    url,
                    body,
                    measure_from=measure_from,
                    stop_at=stop_at,
                    latencies=latencies,
                    errors=errors,
                )
                for _ in range(concurrency)
            )
        )
    ms = [x * 1000 for x in latencies]
    return {
        "url": url,
        "concurrency": concurrency,
        "duration_s": duration,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": round(len(latencies) / duration, 1),
        "p50_ms": round(percentile(ms, 50), 3) if ms else float("nan"),
        "p99_ms": round(percentile(ms, 99), 3) if ms else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("body", type=Path, help="file holding the JSON request body")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    args = p.parse_args(argv)
    summary = asyncio.run(
        run(
            args.url,
            args.body.read_bytes(),
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
        )
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
