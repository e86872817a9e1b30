r"""Figure ``lora-fnn``: approximation error vs LoRA rank for ReLU networks.

Reproduces: Zeng & Lee (ICLR 2024), the ReLU-network comparisons behind Lemma 9 (one-layer
target from an $L$-layer frozen network, seed 000 Case 2) and Theorem 5 with the seed's
Example 1 (two-layer target from a four-layer frozen network, uniform partition, Case 3).

Command: ``make fig-lora-fnn`` (``--quick`` for a seconds-long smoke run, ``FULL=1`` for more
seeds and steps). Expected runtime on 2 CPU cores: quick ~20 s, default ~2-3 min, full ~10 min.

Expected result. Left (one-layer target, $L\in\{1,2,4\}$): the construction's mean squared error
stays below the corrected bound $\operatorname{tr}(\Sigma)\sigma^2_{RL+1}(E)$ (dashed) and reaches
0 at $R=\lceil R_E/L\rceil$ (dotted); on these generic instances it is far below the bound
(the ReLU clips much of the error). The seed's $\|\Sigma\|_F$ version (thin dash-dot) is smaller
by $\|\Sigma\|_F/\operatorname{tr}\Sigma\approx D^{-1/2}$ and is *not* a valid bound in general
(claim ``lora.lemma9.mse_bound``). Adam-trained LoRA (mean, min-max band over seeds) is shown
for comparison: gradient training finds no exact solution at the threshold and can beat the
construction below it (the construction is not optimal for ReLU networks). Right (Example 1,
$\bar L=2$, $L=4$): $\mathbb E\|f-\bar f\|_2$ of the Theorem 5 construction, the corrected bound
and the seed's bound (both loose by orders of magnitude, the price of Frobenius norms and
$\alpha^{\bar L-i}$), and Adam-trained LoRA.

Instances: frozen $W_l$ Gaussian $\mathcal N(0,1/D)$, biases $\mathcal N(0, 0.1^2)$; target
weights $\mathcal N(0,1/D)$ and biases $\mathcal N(0,1)$ ($R_E=D$); inputs uniform on a fixed
sample of ``n`` points of the cube $[-1,1]^D$ (a bounded-support distribution whose
expectations are exact sample means; training uses the same points).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

import lowrank_theory as lt
from lowrank_theory.pipeline.plotting import legend_outside, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 16
    depths: tuple[int, ...] = (1, 2, 4)
    n: int = 256
    gd_seeds: int = 4
    gd_steps: int = 1500
    lr: float = 1e-2

    @classmethod
    def quick(cls) -> Config:
        return cls(d=3, depths=(1, 2), n=16, gd_seeds=2, gd_steps=50)

    @classmethod
    def full(cls) -> Config:
        return cls(n=1024, gd_seeds=8, gd_steps=6000)


def _net(key, d: int, n_layers: int, wstd: float, bstd: float):
    ks = jax.random.split(key, 2 * n_layers)
    ws = [jax.random.normal(k, (d, d)) * wstd / math.sqrt(d) for k in ks[:n_layers]]
    bs = [jax.random.normal(k, (d,)) * bstd for k in ks[n_layers:]]
    return ws, bs


def _instance(cfg: Config, n_layers: int, lbar: int):
    key = jax.random.fold_in(jax.random.key(cfg.seed), 10 * n_layers + lbar)
    k1, k2, k3 = jax.random.split(key, 3)
    ws, bs = _net(k1, cfg.d, n_layers, 1.0, 0.1)
    tws, tbs = _net(k2, cfg.d, lbar, 1.0, 1.0)
    x = np.asarray(jax.random.uniform(k3, (cfg.n, cfg.d), minval=-1.0, maxval=1.0))
    return ws, bs, tws, tbs, x


def _gd(cfg, ws, bs, x, y, r):
    key = jax.random.fold_in(jax.random.key(cfg.seed + 1000), r)
    out = lt.train_lora(ws, bs, x, y, r, key, seeds=cfg.gd_seeds, steps=cfg.gd_steps, lr=cfg.lr)
    res_mse, res_l2 = [], []
    for s in range(cfg.gd_seeds):
        f = lt.relu_fnn(list(jnp.asarray(ws) + out["adapters"][s]), list(out["biases"][s]), x)
        res_mse.append(float(jnp.mean(jnp.sum((f - y) ** 2, axis=1))))
        res_l2.append(float(jnp.mean(jnp.linalg.norm(f - y, axis=1))))
    return res_mse, res_l2


def _one_layer(cfg: Config, n_layers: int) -> dict:
    ws, bs, tws, tbs, x = _instance(cfg, n_layers, 1)
    y = lt.relu_fnn(tws, tbs, x)
    sig = x.T @ x / x.shape[0]
    e = np.asarray(tws[0] - lt.linalg.chain_product(ws, identity=cfg.d))
    s = np.linalg.svd(e, compute_uv=False)
    out = {"L": n_layers, "ranks": list(range(1, cfg.d + 1))}
    out["threshold"] = lt.min_lora_rank(ws, tws[0])
    out.update(construction=[], bound_trace=[], bound_fro=[], gd=[])
    for r in out["ranks"]:
        c = lt.relu_adapters(ws, bs, tws[0], tbs[0], r, x)
        f = c(x)
        out["construction"].append(float(jnp.mean(jnp.sum((f - y) ** 2, axis=1))))
        sk = float(s[r * n_layers]) if r * n_layers < cfg.d else 0.0
        out["bound_trace"].append(float(np.trace(sig)) * sk**2)
        out["bound_fro"].append(float(np.linalg.norm(sig)) * sk**2)
        out["gd"].append(_gd(cfg, ws, bs, x, y, r)[0])
    return out


def _example1(cfg: Config) -> dict:
    ws, bs, tws, tbs, x = _instance(cfg, 4, 2)
    y = lt.relu_fnn(tws, tbs, x)
    sig = x.T @ x / x.shape[0]
    out = {"ranks": list(range(1, cfg.d + 1)), "construction": [], "bound": [], "gd": []}
    out["bound_corrected"] = []
    for r in out["ranks"]:
        c = lt.theorem5_construction(ws, bs, tws, tbs, r, x)
        out["construction"].append(float(jnp.mean(jnp.linalg.norm(c(x) - y, axis=1))))
        t = lt.theorem5_bound(ws, tws, tbs, r, sig)
        out["bound"].append(t.bound)
        out["bound_corrected"].append(t.bound_corrected)
        out["gd"].append(_gd(cfg, ws, bs, x, y, r)[1])
    # Example 1's threshold: every block exact once R*M >= D (M = 2)
    out["threshold"] = math.ceil(cfg.d / 2)
    return out


def main(cfg: Config, sweep: Sweep) -> dict:
    keys = [f"L={L}" for L in cfg.depths] + ["example1"]

    def fn(k: str) -> dict:
        return _example1(cfg) if k == "example1" else _one_layer(cfg, int(k[2:]))

    res = sweep.run(keys, fn, desc="lora-fnn")
    return {"one_layer": [res[f"L={L}"] for L in cfg.depths], "example1": res["example1"]}


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, 2, width=4.8)
    ax = axes[0, 0]
    for i, dep in enumerate(result["one_layer"]):
        c = f"C{i}"
        ranks = np.array(dep["ranks"])
        gd = np.array(dep["gd"])
        ax.plot(
            ranks,
            dep["construction"],
            "o",
            color=c,
            mfc="none",
            label=f"L={dep['L']}: construction",
        )
        ax.plot(ranks, dep["bound_trace"], "--", color=c, lw=1)
        ax.plot(ranks, dep["bound_fro"], "-.", color=c, lw=0.6)
        ax.plot(ranks, gd.mean(1), "-", color=c, alpha=0.8, label=f"L={dep['L']}: Adam LoRA")
        ax.fill_between(ranks, gd.min(1), gd.max(1), color=c, alpha=0.15, lw=0)
        ax.axvline(dep["threshold"], color=c, ls=":", lw=1)
    ax.set(
        xlabel="LoRA rank R",
        ylabel=r"$\mathbb{E}\|f(x)-\bar f(x)\|_2^2$",
        title=r"one-layer target (Lemma 9); dashed: tr$\Sigma\,\sigma^2_{RL+1}(E)$",
    )
    legend_outside(ax, "below", fontsize=6)
    ex = result["example1"]
    ax = axes[0, 1]
    ranks = np.array(ex["ranks"])
    gd = np.array(ex["gd"])
    ax.plot(ranks, ex["construction"], "o", color="C3", mfc="none", label="Theorem 5 construction")
    ax.plot(ranks, ex["bound_corrected"], "--", color="C3", lw=1, label="bound (corrected)")
    ax.plot(ranks, ex["bound"], "-.", color="C3", lw=0.6, label="bound (as written)")
    ax.plot(ranks, gd.mean(1), "-", color="C4", label="Adam LoRA")
    ax.fill_between(ranks, gd.min(1), gd.max(1), color="C4", alpha=0.15, lw=0)
    ax.axvline(ex["threshold"], color="C3", ls=":", lw=1)
    ax.set(
        xlabel="LoRA rank R",
        ylabel=r"$\mathbb{E}\|f(x)-\bar f(x)\|_2$",
        title=r"Example 1: $\bar L=2$, $L=4$ (Theorem 5)",
    )
    legend_outside(ax, "below", fontsize=6)
    for a in axes.flat:
        a.set_yscale("symlog", linthresh=1e-4)
        a.set_ylim(bottom=0.0)
    fig.suptitle(f"ReLU networks, D={cfg.d}: dotted lines mark the exactness threshold", fontsize=9)
    return fig


if __name__ == "__main__":
    run_experiment("lora-fnn", Config, main, plot, script=__file__)
