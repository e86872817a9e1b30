r"""Figure ``deep-lora``: Figs. 6-8 and 11 of seed 004 in miniature (Deep LoRA vs vanilla LoRA).

Reproduces, on small tanh MLPs pre-trained in :mod:`lowrank_theory.dmf.models` instead of BERT:

* (a) Fig. 6: validation metric vs number of few-shot training samples $n$ for LoRA and Deep
  LoRA ($r=8$), mean and 95 % CI over ``seeds`` draws of the training set (paired);
* (b) Fig. 7: histogram of the numerical ranks of every adapted $\Delta W$ at the end of training
  ($r=8$, $n=256$, Fig. 7's threshold with float32 $\epsilon$);
* (c) Fig. 8: validation metric vs $r$ at $n=16$;
* (d) Fig. 11 (Appendix D.2): training loss vs iteration for the full-width factorization (12),
  its width-$r$ compression (Deep LoRA) and a randomly initialised width-$r$ narrow
  factorization, $n=16$, median over seeds.

Rows: ``digits`` (real data: sklearn's bundled digits, adapted to images shifted one pixel)
and ``teacher`` (synthetic: a rank-2 shift of a random teacher network).

Protocol (Appendix B, scaled down): Adam, full batch, ``steps`` iterations; learning rates
selected per method and task from ``lr_grid`` by the best mean validation metric at the largest
$n$ on separate tuning seeds (the paper tuned on STS-B with 1024 samples); $\alpha=8$;
$\gamma=10^{-2}$, $\varepsilon=10^{-3}$, $L=3$ for Deep LoRA. Seeds run vectorised (``vmap``)
and sharded over devices when several exist.

Command: ``make fig-deep-lora`` (``--quick`` for a smoke run, ``FULL=1`` for 20 seeds and more
steps). Expected runtime on 2 CPU cores: quick ~1 min, default ~5 min, full ~15 min.

Expected result (measured with the default config, 10 seeds; numbers in
``docs/readme/deep_lora.md``): (b) carries over clearly: LoRA's $\Delta W$ always has numerical
rank exactly $r=8$, Deep LoRA's 1-3 on the teacher task (true shift rank 2) and 3-7 on digits.
(a) carries over on the teacher task (Deep LoRA better at every $n$, e.g. $R^2$ 0.86 vs 0.76 at
$n=256$) but not on digits (LoRA better at every $n$). (c) Deep LoRA is flatter in $r$ on both,
but LoRA does not overfit with larger $r$ here: it *improves* with $r$. (d) does **not** carry
over under Adam: the random narrow factorization trains as fast as or faster than the compressed
one, and the full-width one is fastest on the teacher task but stalls on digits at the selected
rate (Adam is not invariant under the rotations that make the compressed and full-width GD
trajectories equal, Prop. 2.2).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lowrank_theory.core.stats import ci95
from lowrank_theory.dmf import models
from lowrank_theory.pipeline.plotting import COLORS, legend_outside, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    tasks: tuple[str, ...] = ("digits", "teacher")
    ns: tuple[int, ...] = (16, 64, 256)
    ranks: tuple[int, ...] = (2, 4, 8, 16, 32)
    seeds: int = 10
    r: int = 8
    steps: int = 400
    lr_grid: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    tune_seeds: int = 10  # = seeds: the tuning runs reuse the compiled program
    gamma: float = 1e-2
    eps: float = 1e-3
    alpha: float = 8.0
    ablation_n: int = 16
    ablation_steps: int = 400

    @classmethod
    def quick(cls) -> Config:
        return cls(
            tasks=("teacher",),
            ns=(16,),
            ranks=(8,),
            seeds=2,
            steps=60,
            lr_grid=(1e-2,),
            tune_seeds=2,
            ablation_steps=60,
        )

    @classmethod
    def full(cls) -> Config:
        # n <= 449, the digits adaptation pool (half of sklearn's digits' target half)
        return cls(ns=(16, 64, 256, 448), seeds=20, tune_seeds=20, steps=1000, ablation_steps=1000)


def _seeds(cfg: Config, offset: int, count: int) -> list[int]:
    return [cfg.seed * 100_000 + offset + i for i in range(count)]


def _run(cfg: Config, task_name: str, method: str, n: int, r: int, lr: float, seeds, steps):
    task = models.get_task(task_name)
    return models.few_shot(
        task,
        method,
        n,
        seeds,
        r=r,
        steps=steps,
        lr=lr,
        gamma=cfg.gamma,
        alpha=cfg.alpha,
        eps=cfg.eps,
    )


def _summary(out: dict, keep_losses: bool = False) -> dict:
    res = {
        "metric": out["metric"].tolist(),
        "ranks": {p: v.tolist() for p, v in out["ranks"].items()},
        "final_loss": out["losses"][:, -1].tolist(),
    }
    if keep_losses:
        res["losses_median"] = np.median(out["losses"], axis=0).tolist()
        res["losses_q25"] = np.quantile(out["losses"], 0.25, axis=0).tolist()
        res["losses_q75"] = np.quantile(out["losses"], 0.75, axis=0).tolist()
    return res


def _sweep(cfg: Config, sweep: Sweep, keys: list[str], point, desc: str, keep_losses=False):
    """One few-shot run per key ``"<task>/<sweep>/<method>[/<value>]"``, summarised;
    ``point(method, value)`` gives its ``(n, r, lr, seeds, steps)`` (value None if absent)."""

    def one(key: str) -> dict:
        task, _, method, *value = key.split("/")
        n, r, lr, seeds, steps = point(method, value[0] if value else None)
        return _summary(_run(cfg, task, method, n, r, lr, seeds, steps), keep_losses)

    return sweep.run(keys, one, desc=desc)


def _one_task(cfg: Config, sweep: Sweep, name: str) -> dict:
    task = models.get_task(name)
    methods = ("lora", "deep")
    tune_seeds = _seeds(cfg, 90_000, cfg.tune_seeds)
    tune = _sweep(
        cfg,
        sweep,
        [f"{name}/tune/{m}/{lr}" for m in methods for lr in cfg.lr_grid],
        lambda m, lr: (max(cfg.ns), cfg.r, float(lr), tune_seeds, cfg.steps),
        f"{name}: learning-rate selection",
    )
    lr = {}
    for m in methods:
        scores = {g: np.mean(tune[f"{name}/tune/{m}/{g}"]["metric"]) for g in cfg.lr_grid}
        lr[m] = max(scores, key=scores.get)
    seeds = _seeds(cfg, 0, cfg.seeds)
    by_n = _sweep(
        cfg,
        sweep,
        [f"{name}/n/{m}/{n}" for n in cfg.ns for m in methods],
        lambda m, n: (int(n), cfg.r, lr[m], seeds, cfg.steps),
        f"{name}: metric vs n",
    )
    by_r = _sweep(
        cfg,
        sweep,
        [f"{name}/r/{m}/{r}" for r in cfg.ranks for m in methods],
        lambda m, r: (cfg.ablation_n, int(r), lr[m], seeds, cfg.steps),
        f"{name}: metric vs r",
    )
    abl = _sweep(
        cfg,
        sweep,
        [f"{name}/ablation/{m}" for m in ("full", "deep", "narrow")],
        lambda m, _: (cfg.ablation_n, cfg.r, lr["deep"], seeds, cfg.ablation_steps),
        f"{name}: D.2 ablation",
        keep_losses=True,
    )
    return {
        "task": name,
        "metric_name": task.metric_name,
        "pretrained_metric": task.pretrained_metric,
        "lr": lr,
        "tune": tune,
        "by_n": by_n,
        "by_r": by_r,
        "ablation": abl,
    }


def main(cfg: Config, sweep: Sweep) -> dict:
    return {"tasks": [_one_task(cfg, sweep, t) for t in cfg.tasks]}


def _log_ticks(ax, xs):
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(list(xs), [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _band(ax, xs, runs, color, label):
    stats = np.array([ci95(np.asarray(v)) for v in runs])
    ax.plot(xs, stats[:, 0], "o-", color=color, label=label)
    ax.fill_between(xs, stats[:, 1], stats[:, 2], color=color, alpha=0.2, lw=0)


def _method_bands(ax, runs: dict, prefix: str, xs, names: dict, lrs: dict | None = None):
    """The metric's mean and 95 % CI band over seeds against ``xs``, one band per method, from
    the runs ``f"{prefix}/{method}/{x}"``; the learning rate in the label when ``lrs`` is given."""
    for m in ("lora", "deep"):
        label = names[m] if lrs is None else f"{names[m]} (lr {lrs[m]:g})"
        color = COLORS["deep_lora" if m == "deep" else "lora"]
        _band(ax, list(xs), [runs[f"{prefix}/{m}/{x}"]["metric"] for x in xs], color, label)


def plot(result: dict, cfg: Config):
    tasks = result["tasks"]
    fig, axes = subplots(len(tasks), 4, width=3.6, height=3.0)
    names = {"lora": "LoRA", "deep": "Deep LoRA"}
    for row, t in zip(axes, tasks, strict=True):
        name = t["task"]
        ax = row[0]
        _method_bands(ax, t["by_n"], f"{name}/n", cfg.ns, names, t["lr"])
        ax.axhline(t["pretrained_metric"], color=COLORS["pretrained"], ls=":", label="pre-trained")
        _log_ticks(ax, cfg.ns)
        ax.set(
            xlabel="training samples n",
            ylabel=t["metric_name"],
            title=f"(a) {name}: metric vs n (r={cfg.r})",
        )
        legend_outside(ax, "below", fontsize=7)
        ax = row[1]
        nmax = max(cfg.ns)
        bins = np.arange(cfg.r + 2)
        for j, m in enumerate(("lora", "deep")):
            ranks = np.concatenate(
                [np.asarray(v) for v in t["by_n"][f"{name}/n/{m}/{nmax}"]["ranks"].values()]
            )
            counts = np.bincount(ranks, minlength=cfg.r + 1)[: cfg.r + 1]
            ax.bar(
                bins[:-1] + (j - 0.5) * 0.4,
                counts,
                width=0.4,
                color=COLORS["deep_lora" if m == "deep" else "lora"],
                label=names[m],
            )
        ax.set(
            xlabel=r"numerical rank of $\Delta W$",
            ylabel="count (layers x seeds)",
            title=f"(b) ranks at the end, n={nmax}",
            xticks=bins[:-1],
        )
        legend_outside(ax, "below", fontsize=7)
        ax = row[2]
        _method_bands(ax, t["by_r"], f"{name}/r", cfg.ranks, names)
        _log_ticks(ax, cfg.ranks)
        ax.set(
            xlabel="rank r",
            ylabel=t["metric_name"],
            title=f"(c) metric vs r, n={cfg.ablation_n}",
        )
        legend_outside(ax, "below", fontsize=7)
        ax = row[3]
        labels = {
            "full": "original (full width)",
            "deep": "compressed (Deep LoRA)",
            "narrow": "random narrow",
        }
        colors = {"full": COLORS["full"], "deep": COLORS["compressed"], "narrow": COLORS["narrow"]}
        for m in ("full", "deep", "narrow"):
            a = t["ablation"][f"{name}/ablation/{m}"]
            it = np.arange(len(a["losses_median"]))
            ax.plot(it, a["losses_median"], color=colors[m], label=labels[m])
            ax.fill_between(it, a["losses_q25"], a["losses_q75"], color=colors[m], alpha=0.2, lw=0)
        ax.set(
            yscale="log",
            xlabel="iteration",
            ylabel="training loss",
            title=f"(d) D.2 ablation, n={cfg.ablation_n}",
        )
        legend_outside(ax, "below", fontsize=7)
    fig.suptitle(f"Deep LoRA vs LoRA, {cfg.seeds} seeds, 95% CI bands", fontsize=10)
    return fig


if __name__ == "__main__":
    run_experiment("deep-lora", Config, main, plot, script=__file__)
