"""Deep matrix completion at d = 100,000 on a laptop (seed 004, (11); issue 15).

The target problem: $d_1=d_2=10^5$, $r^\\star=5$, $|\\Omega| = 2\\cdot10^7$ entries drawn
uniformly, $L=3$, width $2r=10$ after compression, $\\epsilon_l=10^{-3}$, $\\gamma=0.2$,
$\\eta = c/p$ with $c = 0.8\\cdot 2/(L+2\\gamma)$ (80 % of the compressed chain's stability limit at
the solution; module docstring of ``lowrank_theory.dmf.large_completion``), run by
:func:`~lowrank_theory.dmf.large_completion.run_sparse_compressed` until the relative recovery
error (exact, from the factors) is $\\le10^{-6}$.

* ``dmc.d1e5_seconds_to_1e-6``: wall time of the compression setup (subspace iteration from the
  sparse gradient) plus GD until the first 50-step record at $\\le10^{-6}$; compile excluded
  (both jitted functions are compiled by a one-iteration / one-chunk warm-up on the same
  problem first); the problem's generation (sampling, values, packing) is reported apart.
* ``dmc.d1e5_peak_rss_gb``: peak resident memory of the process that generates the problem and
  runs it end to end (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of that subprocess).
* ``dmc.large_step_ns_per_entry_ratio``: the scaling table over $d = 10^3, 10^4, 10^5$ at the
  target's $|\\Omega|/(d r^\\star\\ln d) = 3.47$: seconds per GD step over $|\\Omega|$ at
  $d=10^5$ over the same at $d=10^3$ (1 = time per step $\\propto|\\Omega|$).

Each problem runs in its own subprocess (``python benchmarks/bench_dmc_large.py --child
JSON``); the load average is recorded before and after each, since the machine may be shared.
Run alone: ``python benchmarks/run.py --only dmc_large`` (about 10 minutes on 2 idle cores).
"""

import json
import math
import os
import resource
import subprocess
import sys
import time

from _timing import entry

D_TARGET, N_TARGET, RANK = 100_000, 20_000_000, 5
#: |Omega| / (d r ln d) of the target problem, kept fixed in the scaling table
RATIO = N_TARGET / (D_TARGET * RANK * math.log(D_TARGET))
DEPTH, EPS, GAMMA, TOL = 3, 1e-3, 0.2, 1e-6
LR_TIMES_P = 0.8 * 2.0 / (DEPTH + 2 * GAMMA)
RECORD_EVERY = 50
MAX_STEPS = 8000
TARGET_SECONDS, TARGET_GB = 600.0, 4.0


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def _progress(rec: dict) -> None:
    if rec["step"] % 500 == 0:
        print(f"      step {rec['step']}: recovery {rec['recovery']:.2e}, {rec['seconds']:.1f} s, "
              f"load {_loadavg()}", file=sys.stderr, flush=True)  # fmt: skip


def child(cfg: dict) -> dict:
    """One problem end to end in this process; returns the measurements."""
    import jax

    from lowrank_theory.dmf import large_completion as lc

    d, n_obs = cfg["d"], cfg["n_obs"]
    out = {"d": d, "n_obs": n_obs, "load_before": _loadavg()}
    t0 = time.perf_counter()
    prob = lc.sparse_completion_instance(jax.random.key(cfg["seed"]), (d, d), RANK, n_obs)
    out["generate_s"] = time.perf_counter() - t0
    out["generate_parts"] = prob.info
    out["block"] = prob.entries.block
    key = jax.random.key(cfg["seed"] + 1)
    lr = lc.lr_for_sampling((d, d), n_obs, LR_TIMES_P)
    kw = {"lr": lr, "gamma": GAMMA, "record_every": RECORD_EVERY}
    # compile (excluded): one setup iteration and one GD chunk on this problem
    warm = lc.compress_sparse(key, prob, RANK, depth=DEPTH, eps=EPS, max_iter=1)
    lc.run_sparse_compressed(warm, prob, steps=RECORD_EVERY, **kw)
    del warm
    t0, c0 = time.perf_counter(), time.process_time()
    comp = lc.compress_sparse(key, prob, RANK, depth=DEPTH, eps=EPS)
    jax.block_until_ready(comp.u)
    out["setup_s"] = time.perf_counter() - t0
    run = lc.run_sparse_compressed(comp, prob, steps=MAX_STEPS, tol=TOL, progress=_progress, **kw)
    out["total_s"] = time.perf_counter() - t0
    out["cpu_s"] = time.process_time() - c0  # all threads: a load-independent view
    per_chunk = [b - a for a, b in zip(run.seconds[1:-1], run.seconds[2:], strict=True)]
    per_chunk = sorted(per_chunk) or [run.seconds[-1]]
    out["step_s"] = per_chunk[len(per_chunk) // 2] / RECORD_EVERY  # median chunk
    out["setup_iterations"], out["setup_residual"] = comp.iterations, comp.residual
    out["gap"] = comp.gap
    out["reached"] = run.reached
    out["steps"] = int(run.steps[-1])
    out["final_error"] = float(run.recovery[-1])
    out["lr"], out["lr_times_p"] = lr, LR_TIMES_P
    out["self_maxrss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out["load_after"] = _loadavg()
    return out


def _spawn(cfg: dict) -> tuple[dict, float]:
    """Run :func:`child` in a subprocess; returns its result and its peak RSS in GB (the
    children's maximum so far: spawn the largest problem first)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)],
        stdout=subprocess.PIPE,  # the result; progress goes to this process's stderr
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {cfg} failed (exit {proc.returncode}; its stderr is above)")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return json.loads(proc.stdout.strip().splitlines()[-1]), rss


def _n_obs(d: int) -> int:
    return N_TARGET if d == D_TARGET else round(RATIO * d * RANK * math.log(d))


def _describe(r: dict) -> str:
    reached = (
        f"reached 1e-6 at step {r['reached']}"
        if r["reached"] is not None
        else (f"did NOT reach 1e-6 in {r['steps']} steps")
    )
    return (
        f"d={r['d']}: |Omega|={r['n_obs']} (block {r['block']}), generation {r['generate_s']:.1f} s, "
        f"setup {r['setup_s']:.1f} s ({r['setup_iterations']} iterations, gap {r['gap']:.3g}), "
        f"{reached} (final {r['final_error']:.2e}), {r['step_s'] * 1e3:.2f} ms/step = "
        f"{r['step_s'] / r['n_obs'] * 1e9:.2f} ns per observed entry, total {r['total_s']:.1f} s "
        f"({r['cpu_s']:.0f} CPU-s), "
        f"peak RSS {r['self_maxrss_gb']:.2f} GB; load average {r['load_before']} -> {r['load_after']}"
    )


def run() -> list[dict]:
    results = {}
    big, rss = _spawn({"d": D_TARGET, "n_obs": N_TARGET, "seed": 0})  # first: RUSAGE_CHILDREN
    results[D_TARGET] = big
    print(f"    {_describe(big)}", file=sys.stderr, flush=True)
    for d in (1000, 10_000):
        results[d] = _spawn({"d": d, "n_obs": _n_obs(d), "seed": 0})[0]
        print(f"    {_describe(results[d])}", file=sys.stderr, flush=True)
    hyper = (
        f"L={DEPTH}, r*=r={RANK}, width {2 * RANK}, eps={EPS}, gamma={GAMMA}, eta={LR_TIMES_P:.4f}/p "
        f"(80% of the stability limit 2/(p(L+2 gamma)) of the compressed chain), "
        f"{os.cpu_count()} CPUs"
    )
    table = "; ".join(_describe(results[d]) for d in sorted(results))
    ns = {d: results[d]["step_s"] / results[d]["n_obs"] for d in results}
    value = big["total_s"] if big["reached"] is not None else math.inf
    return [
        entry("dmc.d1e5_seconds_to_1e-6", value, "s", target=TARGET_SECONDS, better="lower",
              notes=f"setup + GD to relative error 1e-6 (compile excluded; generation apart). "
              f"{_describe(big)}. {hyper}"),
        entry("dmc.d1e5_peak_rss_gb", rss, "GB", target=TARGET_GB, better="lower",
              notes=f"peak RSS (getrusage RUSAGE_CHILDREN) of the subprocess that generates the "
              f"d=1e5 problem ({N_TARGET} entries) and runs it end to end "
              f"(its own RUSAGE_SELF: {big['self_maxrss_gb']:.2f} GB)"),
        entry("dmc.large_step_ns_per_entry_ratio", ns[D_TARGET] / ns[1000], "ratio",
              better="lower",
              notes=f"seconds per GD step / |Omega| at d=1e5 over d=1e3, at fixed "
              f"|Omega|/(d r ln d) = {RATIO:.3f} (1 = time per step proportional to |Omega|). "
              f"Scaling table: {table}"),
    ]  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))), flush=True)
    else:
        for row in run():
            print(json.dumps(row, indent=1))
