r"""Figure ``dmf-svd``: SVD dynamics of the first layer of a deep factorization (seed 004, Fig. 3).

Reproduces Fig. 3 of seed 004: $L=3$, $d=30$, $r^\star=3$, $\epsilon_l=1$, GD without weight
decay on $\tfrac12\|W_3W_2W_1-\Phi\|_F^2$. Left: the singular values $\sigma_i(t)$ of $W_1(t)$;
middle/right: the angles between the right/left singular vectors at $t$ and at the start.

Command: ``make fig-dmf-svd`` (``--quick``: 20 steps; ``FULL=1``: the paper's 50 steps, the same
as the default since it takes seconds). Runtime: ~10 s on 2 cores.

Expected result: $d-2r^\star = 24$ singular values stay equal to $\rho(t)$ of recursion (6)
(plotted dashed, on top of them; deviation $\sim10^{-15}$) while $2r^\star=6$ move (some
above, some below $\rho$); the invariant block's singular subspace is $V_{1,2}$ / $U_{1,2}$ of
Theorem 2.1 at every $t$ (largest principal angle $\sim10^{-6}$ degrees, rounding). Because $W_1(0)=\epsilon Q$
has all singular values equal, the individual singular vectors at $t=0$ are not defined; we
measure angles against the singular vectors of $W_1(1)$ (after the degeneracy splits), per index
for the $2r^\star$ moving ones, and as the largest principal angle between the $m$-dimensional
invariant spans (the $\rho$ block stays degenerate, so per-vector angles there are arbitrary).
The paper plots per-index angles for all $i$; with exact degeneracy those depend on the SVD
routine's choice, so we show the basis-independent version.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

import lowrank_theory as lt
from lowrank_theory.core.linalg import principal_angles, random_with_spectrum
from lowrank_theory.pipeline.plotting import legend_outside, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 30
    rstar: int = 3
    depth: int = 3
    eps: float = 1.0
    steps: int = 50
    lr: float = 0.1

    @classmethod
    def quick(cls) -> Config:
        return cls(steps=20)

    @classmethod
    def full(cls) -> Config:
        return cls()


def _setup(cfg: Config):
    k1, k2 = jax.random.split(jax.random.key(cfg.seed))
    ws = lt.orthogonal_init(k1, cfg.d, cfg.depth, cfg.eps)
    phi = random_with_spectrum(k2, cfg.d, cfg.d, np.linspace(1.0, 0.5, cfg.rstar))
    return ws, phi


def _gd(cfg: Config, sweep: Sweep) -> dict:
    """The GD run: W_1(t) at every step."""
    ws, phi = _setup(cfg)
    res = lt.run_factorization(ws, phi, lr=cfg.lr, steps=cfg.steps, record_every=1,
                               record=("weights",), chunking=sweep.chunks())  # fmt: skip
    return {"w1": np.asarray(res.records["weights"][0])}


def _analysis(cfg: Config, w1: np.ndarray) -> dict:
    """Singular values and angles of the recorded W_1(t)."""
    ws, phi = _setup(cfg)
    k = 2 * cfg.rstar
    rho = lt.rho_sequence(cfg.eps, cfg.lr, 0.0, cfg.steps, depth=cfg.depth)[:, 0]
    sub = lt.invariant_subspaces(ws, phi, cfg.rstar)
    v12, u12 = np.asarray(sub.v2(1)), np.asarray(sub.u2(1))
    sig, moving_v, moving_u, ang_v, ang_u, inv_v, inv_u = [], [], [], [], [], [], []
    for t, w in enumerate(w1):
        u, s_, vt = np.linalg.svd(w)
        sig.append(s_)
        # the m singular triplets closest to |rho(t)| form the invariant block
        order = np.argsort(np.abs(s_ - abs(rho[t])))
        inv, mov = np.sort(order[: cfg.d - k]), np.sort(order[cfg.d - k :])
        moving_v.append(vt[mov])
        moving_u.append(u[:, mov])
        inv_v.append(float(np.degrees(principal_angles(vt[inv].T, v12).max())))
        inv_u.append(float(np.degrees(principal_angles(u[:, inv], u12).max())))
    sig = np.stack(sig)
    for t in range(len(w1)):
        ref = 1 if t else 0
        cv = np.abs(np.sum(moving_v[t] * moving_v[1], axis=1)).clip(0, 1)
        cu = np.abs(np.sum(moving_u[t] * moving_u[1], axis=0)).clip(0, 1)
        ang_v.append(np.degrees(np.arccos(cv)) if ref else np.zeros(k))
        ang_u.append(np.degrees(np.arccos(cu)) if ref else np.zeros(k))
    dev = max(
        float(np.abs(np.sort(np.abs(s_ - abs(r)))[: cfg.d - k]).max())
        for s_, r in zip(sig, rho, strict=True)
    )
    return {
        "sigma": sig,
        "rho": rho,
        "angle_v_top": np.stack(ang_v),
        "angle_u_top": np.stack(ang_u),
        "angle_v_invariant": inv_v,
        "angle_u_invariant": inv_u,
        "max_dev_from_rho": dev,
    }


def main(cfg: Config, sweep: Sweep) -> dict:
    # two cached points: the GD trajectory, then its SVD analysis
    w1 = np.asarray(sweep.run(["gd"], lambda _: _gd(cfg, sweep), desc="gd")["gd"]["w1"])
    return sweep.run(["analysis"], lambda _: _analysis(cfg, w1), desc="analysis")["analysis"]


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, 3, width=3.8)
    sig = np.array(result["sigma"])
    t = np.arange(sig.shape[0])
    k = 2 * cfg.rstar
    for i in range(sig.shape[1]):
        axes[0, 0].plot(t, sig[:, i], color="C0", lw=1, alpha=0.7)
    axes[0, 0].plot(t, np.abs(result["rho"]), "k--", lw=1, label=r"$\rho(t)$ from (6)")
    axes[0, 0].set(xlabel="iteration t", ylabel=r"$\sigma_i(W_1(t))$", title="singular values")
    legend_outside(axes[0, 0], "below", ncol=1)
    for ax, key, inv, nm in ((axes[0, 1], "angle_v_top", "angle_v_invariant", "v"),
                             (axes[0, 2], "angle_u_top", "angle_u_invariant", "u")):  # fmt: skip
        a = np.array(result[key])
        for i in range(k):
            ax.plot(t[1:], a[1:, i], color="C0", lw=1, alpha=0.7)
        ax.plot(t[1:], np.array(result[inv])[1:], color="C1", lw=2,
                label=f"invariant span vs Thm 2.1 ({cfg.d - k} dims)")  # fmt: skip
        ax.set(xlabel="iteration t", ylabel="degrees",
               title=rf"$\angle({nm}_i(t), {nm}_i(1))$, top {k} (blue)")  # fmt: skip
        legend_outside(ax, "below", ncol=1)
    fig.suptitle(f"Fig. 3: L={cfg.depth}, d={cfg.d}, r*={cfg.rstar}, eps={cfg.eps}", fontsize=9)
    return fig


if __name__ == "__main__":
    run_experiment("dmf-svd", Config, main, plot, script=__file__)
