r"""Fidelity experiment ``fidelity/lin-condition``: why κ does not order the training losses.

Question (``docs/fidelity.md``, row "condition-number experiment"). Seed 003, Section 6: "Does
the condition number on matrix K really bound the empirical risk? [...] Higher condition number
→ Higher train loss". Our ``lin-condition`` figure compares parameter subsets (single layers,
pairs, all layers, LoRA factors) and finds the opposite tendency: Spearman(κ, loss) < 0.

Reason tested here: the scale of the kernel. Theorem 5 bounds the kernel-ridge risk by
$(\sigma\|y\|/(\sigma+\lambda_{\max}))^2$ and $(\sigma\|y\|/(\sigma+\lambda_{\min}))^2$; across
subsets of different size $\lambda_{\max}(K)$ changes by orders of magnitude, and a larger
subset has both a larger $\lambda_{\max}$ (lower risk) and a larger
$\kappa(K+\sigma I)=(\lambda_{\max}+\sigma)/(\lambda_{\min}+\sigma)$. With $\lambda_{\min}(K)\ll\sigma$
(an $n\times n$ NTK of a small subset is nearly singular), $\kappa(K+\sigma I)\approx
1+\lambda_{\max}/\sigma$: $\kappa$ then measures the kernel's scale, and a larger scale means a
*lower* risk. If that is the reason, (i) Spearman($\kappa$, risk) equals Spearman($\lambda_{\max}$,
risk) and $\lambda_{\min}/\sigma\approx0$ for every subset, and (ii) with every kernel rescaled
to $\lambda_{\max}=1$ (a per-subset rescaling of its parameters, i.e. of its learning rate) and a
$\sigma$ small against it (``sigma_rel``), $\kappa$ measures the conditioning proper; the
experiment reports the correlation there. Same tasks, model, subsets, $\sigma$ and $n$ as the
figure's default run; kernel-ridge risk only (no gradient fine-tuning).

Command: ``python experiments/fidelity_lin_condition.py`` (``--quick``: one task, 3 subsets).
Runtime on 2 shared cores: quick ~20 s, default ~1.5 min.

Result (default run): Spearman($\kappa$, risk) = Spearman($\lambda_{\max}$, risk) = -0.74
(digits) and -0.81 (synthetic), with $\lambda_{\min}/\sigma\le0.2$ for every subset; with
the kernels rescaled to $\lambda_{\max}=1$ and $\sigma=10^{-3}$: +0.98 and +0.88, the seed's
"higher condition number, higher train loss".
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from scipy.stats import spearmanr

from lowrank_theory.lin.models import TASKS, LayerSubset, LoRALayer, pretrained_task
from lowrank_theory.lin.ntk import empirical_ntk, risk_bounds
from lowrank_theory.pipeline.plotting import legend_outside, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment

NAME = "fidelity/lin-condition"
SUBSETS = ("0", "1", "2", "0+1", "1+2", "0+1+2", "lora0", "lora1")


@dataclasses.dataclass(frozen=True)
class Config:
    # the defaults of experiments/fig_lin_condition.py
    seed: int = 0
    width: int = 32
    n_pre: int = 600
    n_train: int = 128
    sigma: float = 0.5
    sigma_rel: float = 1e-3  # sigma for the kernels rescaled to lambda_max = 1
    pre_steps: int = 1500
    lora_rank: int = 2
    subsets: tuple[str, ...] = SUBSETS
    tasks: tuple[str, ...] = ("digits", "synthetic")

    @classmethod
    def quick(cls) -> Config:
        return cls(n_pre=200, n_train=48, pre_steps=200, subsets=("0", "0+1+2", "lora1"),
                   tasks=("synthetic",))  # fmt: skip

    @classmethod
    def full(cls) -> Config:
        return cls(n_pre=1000, n_train=256, pre_steps=3000)


def _model(p0, name: str, cfg: Config, key):
    if name.startswith("lora"):
        m = LoRALayer(p0, int(name[4:]), cfg.lora_rank)
        return m, m.init(key, b_scale=0.1)  # as the figure: B small but non-zero
    m = LayerSubset(p0, tuple(int(c) for c in name.split("+")))
    return m, m.init()


@functools.lru_cache(maxsize=4)
def _task(cfg: Config, task: str):
    key = jax.random.fold_in(jax.random.key(cfg.seed), TASKS.index(task))
    sizes = dict(n_pre=cfg.n_pre, n_train=cfg.n_train, n_test=10, pre_steps=cfg.pre_steps)
    return pretrained_task(key, task, hidden=(cfg.width, cfg.width), **sizes)


def _one(cfg: Config, task: str, name: str) -> dict:
    """KRR risk and κ of one subset's empirical NTK, as is (σ) and rescaled to λ_max = 1
    (σ_rel)."""
    data, p0 = _task(cfg, task)
    x, y = data["train"]
    m, q0 = _model(p0, name, cfg, jax.random.key(cfg.seed + 7))
    k = np.asarray(empirical_ntk(m, q0, x))
    k = (k + k.T) / 2
    resid = np.asarray(y) - np.asarray(jax.vmap(lambda xi: m(q0, xi))(x))
    lmax = float(np.linalg.eigvalsh(k)[-1])
    return {
        "name": name,
        "lambda_max": lmax,
        "raw": risk_bounds(k, resid, cfg.sigma),
        "normalised": risk_bounds(k / lmax, resid, cfg.sigma_rel),
    }


def main(cfg: Config, sweep: Sweep) -> dict:
    out = {}
    for task in cfg.tasks:
        keys = [f"{task}/{s}" for s in cfg.subsets]
        rows = list(sweep.run(keys, lambda k: _one(cfg, *k.split("/", 1)), desc=task).values())
        risk_raw = [r["raw"]["risk"] for r in rows]
        risk_norm = [r["normalised"]["risk"] for r in rows]
        out[task] = {
            "rows": rows,
            "spearman_kappa_risk": _spearman([r["raw"]["kappa"] for r in rows], risk_raw),
            "spearman_lambda_max_risk": _spearman([r["lambda_max"] for r in rows], risk_raw),
            "max_lambda_min_over_sigma": max(r["raw"]["lambda_min"] for r in rows) / cfg.sigma,
            "spearman_kappa_risk_normalised": _spearman(
                [r["normalised"]["kappa"] for r in rows], risk_norm
            ),
        }
    return out


def _spearman(a, b) -> float:
    return float(spearmanr(a, b)[0])


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, 2, width=3.8, height=2.9)
    for j, (key, title) in enumerate((("raw", "(a) as in the figure"),
                                      ("normalised", f"(b) each K scaled to λ_max = 1, σ={cfg.sigma_rel:g}"))):  # fmt: skip
        ax = axes[0, j]
        for i, task in enumerate(cfg.tasks):
            res = result[task]
            rows = res["rows"]
            rho = res["spearman_kappa_risk" if key == "raw" else "spearman_kappa_risk_normalised"]
            ax.loglog([r[key]["kappa"] for r in rows], [r[key]["risk"] for r in rows], "os"[i % 2],
                      color=f"C{i}", label=f"{task}: Spearman {rho:+.2f}")  # fmt: skip
            for r in rows:
                ax.annotate(r["name"], (r[key]["kappa"], r[key]["risk"]), fontsize=6)
        ax.set(xlabel=r"$\kappa(K+\sigma I)$", ylabel="KRR training risk", title=title)
        legend_outside(ax, "below")
    fig.suptitle(f"lin-condition fidelity: σ={cfg.sigma}, n={cfg.n_train}", fontsize=9)
    return fig


if __name__ == "__main__":
    # --out defaults to <repo>/figures: figures/fidelity/<name>.json, the cache figures/.cache/
    run_experiment(NAME, Config, main, plot, script=__file__)
