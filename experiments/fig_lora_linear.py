r"""Figure ``lora-linear``: approximation error vs LoRA rank for random linear models.

Reproduces: Zeng & Lee (ICLR 2024), the linear-model comparison of Lemma 1 (seed 000, Case 1):
the construction's error, the optimum $\sigma_{RL+1}(E)$ and gradient-trained LoRA, with the
exactness threshold $\lceil R_E/L\rceil$ marked.

Command: ``make fig-lora-linear`` (``--quick`` for a seconds-long smoke run, ``FULL=1`` for
the paper-like sizes). Expected runtime on 2 CPU cores: quick ~10 s, default ~1 min, full
~5 min.

Expected result: the construction lies exactly on $\sigma_{RL+1}(E)$ for every $R$ (relative
difference ~1e-14), reaches 0 at $R = \lceil R_E/L\rceil$; Adam-trained LoRA never goes below
the curve and, from the default initialisation, comes close to it (within a few per cent
at most ranks; it reaches zero error above the threshold only up to its optimisation error).
Right panel: the same in mean squared error on Gaussian inputs
$x\sim\mathcal N(0, I_D)$, where $\mathbb E\|(\prod(W_l+\Delta W_l)-\bar W)x\|_2^2 =
\|\prod(W_l+\Delta W_l)-\bar W\|_F^2$ exactly (no sampling). Quick and full runs show the same
picture; the quick one at $D=8$.

Instances: frozen $W_l$ Gaussian with entries $\mathcal N(0, 1/D)$, target $\bar W$ an
independent Gaussian matrix of the same scale ($R_E = D$), one instance per depth $L$.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

import lowrank_theory as lt
from lowrank_theory.pipeline.plotting import subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 16
    depths: tuple[int, ...] = (1, 2, 4)
    gd_seeds: int = 5
    gd_steps: int = 3000
    lr: float = 1e-2

    @classmethod
    def quick(cls) -> Config:
        return cls(d=8, depths=(1, 2), gd_seeds=2, gd_steps=300)

    @classmethod
    def full(cls) -> Config:
        return cls(d=16, depths=(1, 2, 3, 4), gd_seeds=10, gd_steps=10000)


def _instance(cfg: Config, n_layers: int):
    keys = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), n_layers), n_layers + 1)
    frozen = [jax.random.normal(k, (cfg.d, cfg.d)) / math.sqrt(cfg.d) for k in keys[:-1]]
    target = jax.random.normal(keys[-1], (cfg.d, cfg.d)) / math.sqrt(cfg.d)
    return frozen, target


def _one_depth(cfg: Config, n_layers: int) -> dict:
    frozen, target = _instance(cfg, n_layers)
    ranks = list(range(1, cfg.d + 1))
    out = {
        "L": n_layers,
        "ranks": ranks,
        "threshold": lt.min_lora_rank(frozen, target),
        "sigma": [],
        "construction": [],
        "construction_mse": [],
        "gd": [],
        "gd_mse": [],
    }
    for r in ranks:
        out["sigma"].append(lt.linear_min_error(frozen, target, r))
        adapters = lt.linear_adapters(frozen, target, r)
        diff = lt.lora_product(frozen, adapters) - target
        out["construction"].append(float(jnp.linalg.norm(diff, 2)))
        out["construction_mse"].append(float(jnp.sum(diff**2)))
        spec, mse = [], []
        for s in range(cfg.gd_seeds):
            key = jax.random.fold_in(jax.random.key(cfg.seed + 1000), s)
            trained = lt.lora.train_linear_lora(
                frozen, target, r, key, starts=1, steps=cfg.gd_steps, lr=cfg.lr
            )
            diff = lt.lora_product(frozen, trained) - target
            spec.append(float(jnp.linalg.norm(diff, 2)))
            mse.append(float(jnp.sum(diff**2)))
        out["gd"].append(spec)
        out["gd_mse"].append(mse)
    # the best achievable MSE with rank RL: sum of the squared tail singular values of E
    s = np.asarray(
        jnp.linalg.svd(target - lt.linalg.chain_product(frozen, identity=cfg.d), compute_uv=False)
    )
    out["optimal_mse"] = [float(np.sum(s[r * n_layers :] ** 2)) for r in ranks]
    return out


def main(cfg: Config, sweep: Sweep) -> dict:
    res = sweep.run(
        [f"L={L}" for L in cfg.depths], lambda k: _one_depth(cfg, int(k[2:])), desc="depths"
    )
    return {"depths": list(res.values())}


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, 2, width=5.0)
    markers = "osd^v"
    for i, dep in enumerate(result["depths"]):
        c = f"C{i}"
        ranks = np.array(dep["ranks"])
        for ax, key, opt in ((axes[0, 0], "", "sigma"), (axes[0, 1], "_mse", "optimal_mse")):
            gd = np.array(dep["gd" + key])
            ax.plot(ranks, dep[opt], "--", color=c, lw=1)
            ax.plot(
                ranks,
                dep["construction" + key],
                markers[i % 5],
                color=c,
                mfc="none",
                label=f"L={dep['L']}: construction",
            )
            ax.plot(ranks, gd.mean(1), "-", color=c, alpha=0.8, label=f"L={dep['L']}: Adam LoRA")
            ax.fill_between(ranks, gd.min(1), gd.max(1), color=c, alpha=0.15, lw=0)
            ax.axvline(dep["threshold"], color=c, ls=":", lw=1)
    axes[0, 0].set(
        xlabel="LoRA rank R",
        ylabel=r"$\|\prod(W_l+\Delta W_l)-\bar W\|_2$",
        title=r"spectral error (dashed: $\sigma_{RL+1}(E)$)",
        yscale="symlog",
    )
    axes[0, 1].set(
        xlabel="LoRA rank R",
        ylabel=r"MSE on $x\sim\mathcal{N}(0,I)$",
        title="mean squared error (dashed: optimum)",
        yscale="symlog",
    )
    for ax in axes.flat:
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylim(bottom=0.0)
    axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    fig.suptitle(f"Lemma 1, D={cfg.d}: dotted lines mark $\\lceil R_E/L\\rceil$", fontsize=9)
    return fig


if __name__ == "__main__":
    run_experiment("lora-linear", Config, main, plot, script=__file__)
