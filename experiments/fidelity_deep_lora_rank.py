r"""Fidelity experiment ``fidelity/deep-lora-rank``: why vanilla LoRA does not overfit with $r$.

Question (``docs/fidelity.md``, row Fig. 8). Seed 004, Fig. 8 / Section 4: "choosing the rank
$r$ in LoRA is a delicate process [...] The proposed Deep LoRA, on the other hand, avoids
catastrophic overfitting as we increase $r$"; the figure shows vanilla LoRA's validation metric
falling as $r$ grows ($n=16$). In our ``deep-lora`` figure vanilla LoRA *improves* with $r$ on
both tasks.

Reason tested here: the LoRA scale. The paper's text writes $W_0+\frac{\alpha}{r}W^{(2)}W^{(1)}$
with $\alpha=8$ (what ``lowrank_theory.dmf.deep_lora.lora_adapters`` implements), so a larger
$r$ shrinks the update's scale; the authors' public code (``cjyaras/deep-lora-transformers``,
``dlt/models.py``: ``MatrixFactorization`` returns ``multi_dot(layers)``; no $\alpha$ anywhere)
adds $W^{(2)}W^{(1)}$ unscaled, at one Adam rate ($10^{-4}$, ``scripts/stsb_varying_rank.py``)
for every $r$, so there a larger $r$ means a larger effective step. Here: vanilla LoRA at
$n=16$ for $r\in$ ``ranks`` with $\alpha=8$ (text) and with $\alpha=r$ (code: scale 1), one
learning rate for all $r$ (selected at $r=8$ on 10 separate tuning seeds, as the script uses one
rate), 10 evaluation seeds, both tasks of ``deep-lora``.

Command: ``python experiments/fidelity_deep_lora_rank.py`` (``--quick``: one task, two ranks).
Runtime on 2 shared cores: quick ~1 min, default ~5 min (compilation dominates).

Expected result: if the scale is what matters, LoRA's metric falls with $r$ under $\alpha=r$
and not under $\alpha=8$.

Result (default run): at the rate selected at $r=8$ ($10^{-3}$, the grid's smallest) neither
version falls with $r$ (teacher $R^2$ 0.42 / 0.44 at $r=2$ to 0.68 at $r=32$). At any larger
single rate the unscaled (code) version falls with $r$ (teacher at $3\cdot10^{-3}$: 0.45, 0.52,
-0.16 for $r=2,8,32$; digits at $10^{-2}$: 0.57, 0.58, 0.54), while the $\alpha/r$ version
rises with $r$ at every rate where it trains stably (digits: at all five).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from matplotlib.ticker import NullFormatter

from lowrank_theory.core.stats import ci95
from lowrank_theory.dmf import models
from lowrank_theory.pipeline.plotting import legend_outside, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment

NAME = "fidelity/deep-lora-rank"
HIGH_LR = 1e-2  # also drawn: one rate for all r, above the selected one


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    tasks: tuple[str, ...] = ("teacher", "digits")
    n: int = 16
    ranks: tuple[int, ...] = (2, 8, 32)
    select_r: int = 8
    seeds: int = 10
    tune_seeds: int = 10
    steps: int = 400
    lr_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    alpha: float = 8.0

    @classmethod
    def quick(cls) -> Config:
        return cls(tasks=("teacher",), ranks=(2, 8), seeds=2, tune_seeds=2, steps=60,
                   lr_grid=(1e-2, 3e-2))  # fmt: skip

    @classmethod
    def full(cls) -> Config:
        return cls()


def _point(cfg: Config, key: str) -> dict:
    """``<task>/<scale>/<r>``, scale ``alpha`` (alpha/r) or ``code`` (1): all grid rates."""
    task_name, scale, r = key.split("/")
    r = int(r)
    alpha = cfg.alpha if scale == "alpha" else float(r)
    task = models.get_task(task_name)
    tune = [cfg.seed * 100_000 + 90_000 + i for i in range(cfg.tune_seeds)]
    seeds = [cfg.seed * 100_000 + i for i in range(cfg.seeds)]
    out: dict = {"alpha": alpha, "tune": [], "eval": []}
    for lr in cfg.lr_grid:
        kw = dict(r=r, steps=cfg.steps, lr=lr, alpha=alpha)
        out["tune"].append(
            float(np.mean(models.few_shot(task, "lora", cfg.n, tune, **kw)["metric"]))
        )
        out["eval"].append(models.few_shot(task, "lora", cfg.n, seeds, **kw)["metric"])
    return out


def main(cfg: Config, sweep: Sweep) -> dict:
    keys = [f"{t}/{s}/{r}" for t in cfg.tasks for s in ("alpha", "code") for r in cfg.ranks]
    runs = sweep.run(keys, lambda k: _point(cfg, k), desc="LoRA runs")
    summary = {}
    for t in cfg.tasks:
        for s in ("alpha", "code"):
            sel = runs[f"{t}/{s}/{cfg.select_r}"]
            i = int(np.argmax(sel["tune"]))
            rows = {}
            for r in cfg.ranks:
                ev = runs[f"{t}/{s}/{r}"]["eval"]
                mean, lo, hi = ci95(np.asarray(ev[i]))
                best = int(np.argmax(runs[f"{t}/{s}/{r}"]["tune"]))
                rows[str(r)] = {"mean": mean, "ci95": [lo, hi],
                                "best_lr": cfg.lr_grid[best],
                                "mean_at_best_lr": float(np.mean(ev[best]))}  # fmt: skip
            by_lr = {f"{lr:g}": [float(np.mean(runs[f"{t}/{s}/{r}"]["eval"][j])) for r in cfg.ranks]
                     for j, lr in enumerate(cfg.lr_grid)}  # fmt: skip
            summary[f"{t}/{s}"] = {
                "lr": cfg.lr_grid[i],
                "by_r": rows,
                "by_lr": by_lr,  # mean metric at each rate, one entry per rank
                "falls_with_r": {lr: v[-1] < v[0] for lr, v in by_lr.items()},
            }
    return {"runs": runs, "summary": summary}


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, len(cfg.tasks), width=3.6, height=2.9)
    for ax, t in zip(axes[0], cfg.tasks, strict=True):
        for s, c, lab in (("alpha", "C3", f"α={cfg.alpha:g} (paper text: α/r)"),
                          ("code", "C0", "α=r (authors' code: no scale)")):  # fmt: skip
            v = result["summary"][f"{t}/{s}"]
            rows = [v["by_r"][str(r)] for r in cfg.ranks]
            m = np.array([x["mean"] for x in rows])
            lo = np.array([x["ci95"][0] for x in rows])
            hi = np.array([x["ci95"][1] for x in rows])
            ax.plot(cfg.ranks, m, "o-", color=c, label=f"{lab}, lr {v['lr']:g}")
            ax.fill_between(cfg.ranks, lo, hi, color=c, alpha=0.2, lw=0)
            hi_lr = f"{HIGH_LR:g}"
            if hi_lr in v["by_lr"]:
                ax.plot(cfg.ranks, v["by_lr"][hi_lr], "s--", color=c, label=f"{lab}, lr {hi_lr}")
        ax.set_xscale("log")
        ax.set_xticks(list(cfg.ranks), [str(r) for r in cfg.ranks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="LoRA rank r", ylabel="validation metric",
               title=f"{t}: vanilla LoRA, n={cfg.n}")  # fmt: skip
        legend_outside(ax, "below")
    fig.suptitle("Fig. 8 fidelity: one learning rate for all r (selected at r=8)", fontsize=9)
    return fig


if __name__ == "__main__":
    # --out defaults to <repo>/figures: figures/fidelity/<name>.json, the cache figures/.cache/
    run_experiment(NAME, Config, main, plot, script=__file__)
