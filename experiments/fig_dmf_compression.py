r"""Figure ``dmf-compression``: full-width vs compressed deep matrix factorization (Fig. 4).

Reproduces Fig. 4 of seed 004: GD on the original problem (2) and on the compressed problem (9)
(width $2r$, built at initialisation, Section 2.3), $L=3$, $r=r^\star=5$, $\epsilon_l=10^{-3}$.
Left: the two end-to-end trajectories projected on their top two principal components
(computed in the $2r\times2r$ coordinates $U_{L,1}^\top f V_{1,1}$, which hold all of both
trajectories except the invariant part $\prod_l\rho_l(t)\,U_{L,2}V_{1,2}^\top$, of norm
$\le\sqrt m\,\epsilon^3\approx3\cdot10^{-8}$). Right: training loss vs wall time, where wall time
is the iteration count times the measured time per step (compile excluded, after
``block_until_ready``); the compressed run's setup (subspace extraction) is added to its times.

Command: ``make fig-dmf-compression`` (``--quick``: $d=30$, 1000 steps (smoke run, not converged); default $d=400$; ``FULL=1``: the
paper's $d=1000$). Runtime on 2 cores: quick ~5 s, default ~1 min, full ~10 min.

Expected result: the trajectories coincide (max distance $\le\sqrt{m}\epsilon^3$, Prop. 2.2),
the losses agree to $\tfrac12 m\prod\rho_l^2$, and the compressed run is far faster in wall
time (the full step costs $O(d^3)$, the compressed one $O(r^3)$ after an $O(d^3)$ setup). The
quick and default runs show the same picture at smaller $d$ (smaller speed-up).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

import lowrank_theory as lt
from lowrank_theory.core.linalg import random_with_spectrum
from lowrank_theory.core.stats import principal_scores
from lowrank_theory.pipeline.plotting import COLORS, shared_legend, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment, seconds_per_step


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 400
    r: int = 5
    depth: int = 3
    eps: float = 1e-3
    lr: float = 0.3
    steps: int = 6000
    record_every: int = 100

    @classmethod
    def quick(cls) -> Config:
        return cls(d=30, steps=1000, record_every=100)

    @classmethod
    def full(cls) -> Config:
        return cls(d=1000)


def _setup(cfg: Config):
    k1, k2 = jax.random.split(jax.random.key(cfg.seed))
    ws = lt.orthogonal_init(k1, cfg.d, cfg.depth, cfg.eps)
    phi = random_with_spectrum(k2, cfg.d, cfg.d, np.ones(cfg.r))
    jax.block_until_ready(lt.compress(ws, phi, cfg.r).u)  # compile
    t0 = time.perf_counter()
    comp = lt.compress(ws, phi, cfg.r)
    jax.block_until_ready(comp.u)
    return ws, phi, comp, time.perf_counter() - t0


def _full(cfg: Config, sweep: Sweep) -> dict:
    ws, phi, comp, _ = _setup(cfg)
    u, v = comp.u, comp.v

    def coords(w):
        return u.T @ lt.end_to_end(w) @ v

    full = lt.run_factorization(ws, phi, lr=cfg.lr, steps=cfg.steps, record_every=cfg.record_every,
                                record=("loss",), record_fn=coords,
                                chunking=sweep.chunks("full width"))  # fmt: skip
    t_full = seconds_per_step(
        lambda s: lt.run_factorization(ws, phi, lr=cfg.lr, steps=s).weights, 20
    )
    return {"steps": full.steps, "loss": np.asarray(full.records["loss"]),
            "coords": np.asarray(full.records["custom"]), "sec_per_step": t_full}  # fmt: skip


def _compressed(cfg: Config, sweep: Sweep) -> dict:
    _, _, comp, setup = _setup(cfg)
    small = lt.run_compressed(comp, lr=cfg.lr, steps=cfg.steps, record_every=cfg.record_every,
                              record=("loss", "weights"), chunking=sweep.chunks("compressed"))  # fmt: skip
    n = len(small.steps)
    c_small = np.stack([np.asarray(lt.end_to_end([small.records["weights"][l][i]
                                                   for l in range(cfg.depth)])) for i in range(n)])  # fmt: skip
    t_comp = seconds_per_step(lambda s: lt.run_compressed(comp, lr=cfg.lr, steps=s).weights, 2000)
    return {"loss": np.asarray(small.records["loss"]), "coords": c_small, "sec_per_step": t_comp,
            "setup_s": setup}  # fmt: skip


def main(cfg: Config, sweep: Sweep) -> dict:
    # one cached point per run (compressed, full width), each GD run checkpointed mid-run
    runs = sweep.run(["compressed", "full"],
                     lambda k: _full(cfg, sweep) if k == "full" else _compressed(cfg, sweep),
                     desc="runs")  # fmt: skip
    full, small = runs["full"], runs["compressed"]
    c_full, c_small = np.asarray(full["coords"]), np.asarray(small["coords"])
    n = len(full["steps"])
    pcs = principal_scores(np.concatenate([c_full.reshape(n, -1), c_small.reshape(n, -1)]), 2)
    t_full, t_comp = full["sec_per_step"], small["sec_per_step"]
    return {
        "steps": full["steps"],
        "pc_full": pcs[:n],
        "pc_compressed": pcs[n:],
        "loss_full": full["loss"],
        "loss_compressed": small["loss"],
        "max_coord_distance": float(np.abs(c_full - c_small).max()),
        "bound_sqrt_m_eps3": float(np.sqrt(cfg.d - 2 * cfg.r) * cfg.eps**cfg.depth),
        "sec_per_step_full": t_full,
        "sec_per_step_compressed": t_comp,
        "setup_s": small["setup_s"],
        "speedup_per_step": t_full / t_comp,
    }


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, 2, width=4.4)
    a, b = np.array(result["pc_full"]), np.array(result["pc_compressed"])
    axes[0, 0].plot(a[:, 0], a[:, 1], "-", color=COLORS["full"], lw=3, alpha=0.6, label="original")
    axes[0, 0].plot(b[:, 0], b[:, 1], "o--", ms=2, color=COLORS["compressed"], label="compressed")
    axes[0, 0].set(xlabel="PC 1", ylabel="PC 2", title="end-to-end trajectories")
    s = np.array(result["steps"])
    for key, t0, c, lab in (("full", 0.0, COLORS["full"], "original"),
                            ("compressed", result["setup_s"], COLORS["compressed"], "compressed")):  # fmt: skip
        t = t0 + s * result[f"sec_per_step_{key}"]
        keep = t > 0  # log time axis: the original run's t = 0 point is left out
        axes[0, 1].loglog(t[keep], np.asarray(result[f"loss_{key}"], dtype=float)[keep], color=c,
                          label=lab)  # fmt: skip
    axes[0, 1].set(xlabel="iterations x measured s/step (+ setup), log", ylabel="training loss",
                   title=f"per-step speed-up {result['speedup_per_step']:.0f}x")  # fmt: skip
    shared_legend(axes[0], axes[0, 1])
    fig.suptitle(f"Fig. 4: L={cfg.depth}, d={cfg.d}, r=r*={cfg.r}, eps={cfg.eps}", fontsize=9)
    return fig


if __name__ == "__main__":
    run_experiment("dmf-compression", Config, main, plot, script=__file__)
