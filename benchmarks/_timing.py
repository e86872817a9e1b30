"""Timing helpers shared by the benchmarks: compile excluded, results synced.

Every time reported by ``make bench`` comes from :func:`time_fn`: the function is called once
to compile (not timed), then ``repeats`` times with ``jax.block_until_ready`` on the result;
the minimum wall time is reported (the least-disturbed run on a shared machine).
"""

import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import jax


def time_fn(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 5,
    min_time: float = 0.2,
    stat: str = "min",
) -> float:
    """Wall-clock seconds of ``fn(*args)`` over repeats, after a warm-up (compile) call: the
    minimum (``stat="min"``), or the median (``"median"``: for times under load, where the
    minimum would report the luckiest window)."""
    if stat not in ("min", "median"):
        raise ValueError(f"stat must be 'min' or 'median', got {stat!r}")
    jax.block_until_ready(fn(*args))
    best = float("inf")
    times = []
    n = 0
    t_total = 0.0
    while n < repeats or t_total < min_time:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        dt = time.perf_counter() - t0
        best = min(best, dt)
        times.append(dt)
        t_total += dt
        n += 1
        if n >= 100 * repeats:
            break
    return best if stat == "min" else float(statistics.median(times))


def host_peak_mb(fn: Callable[..., Any], *args: Any) -> float:
    """Peak Python-heap allocation in MB while running ``fn`` (NumPy buffers included)."""
    tracemalloc.start()
    try:
        jax.block_until_ready(fn(*args))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def entry(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    better: str = "higher",
    notes: str = "",
) -> dict[str, Any]:
    """One row of ``benchmarks/results.json`` (schema in DESIGN.md)."""
    if better not in ("higher", "lower"):
        raise ValueError("better must be 'higher' or 'lower'")
    return {
        "name": name,
        "value": float(value),
        "unit": unit,
        "target": target,
        "better": better,
        "notes": notes,
    }
