"""Baselines that the other benchmarks divide by: float64 GEMM rate and memory bandwidth."""

import jax
import jax.numpy as jnp
from _timing import entry, time_fn

import lowrank_theory  # noqa: F401  (float64)


def gemm_gflops(n: int = 2048) -> float:
    """Achieved float64 matrix-multiply rate (GFLOP/s) on n x n operands, compile excluded."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (n, n))
    b = jax.random.normal(k2, (n, n))
    t = time_fn(jax.jit(jnp.matmul), a, b, repeats=5)
    return 2 * n**3 / t / 1e9


def memory_bandwidth_gbs(n: int = 4096, passes: tuple[int, int] = (4, 24)) -> float:
    """Achieved bandwidth (GB/s) of a float64 ``x + 1`` over an n x n array (read + write).

    Differential timing: jitted ``fori_loop``s of ``passes[0]`` and ``passes[1]`` in-place
    passes; the bandwidth is the extra traffic over the extra time, so the fixed cost of a call
    (dispatch, and the first-touch page faults of its freshly allocated output) cancels.
    Timing a single call instead (as before) measured mostly that fixed cost: 7.7 GB/s at
    n = 4096 vs 47 GB/s with 40 passes in one loop, 120 vs 315 GB/s at n = 1000 (one run).
    """
    a = jax.random.normal(jax.random.key(1), (n, n))
    times = []
    for p in passes:
        f = jax.jit(lambda x, p=p: jax.lax.fori_loop(0, p, lambda _, y: y + 1.0, x))
        times.append(time_fn(f, a, repeats=5))
    return 2 * a.size * 8 * (passes[1] - passes[0]) / (times[1] - times[0]) / 1e9


def run() -> list[dict]:
    g = gemm_gflops()
    bw = memory_bandwidth_gbs()
    return [
        entry(
            "linalg.gemm_gflops",
            g,
            "GFLOP/s",
            better="higher",
            notes="float64 jnp.matmul 2048x2048 under jit, min of >=5 runs after block_until_ready, "
            "compile excluded; the baseline other benchmarks divide by",
        ),
        entry(
            "linalg.memory_bandwidth_gbs",
            bw,
            "GB/s",
            better="higher",
            notes="float64 x + 1 over 4096x4096 (read + write counted), differential timing of 4 vs 24 "
            "in-place passes in one jitted fori_loop (the call's fixed cost: dispatch, page faults "
            "of the fresh output, cancels), min over repeats, compile excluded",
        ),
    ]
