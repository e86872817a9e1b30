r"""Figure ``s2ft-id``: in-distribution excess risk vs n, LoRA vs S²FT at matched parameter counts.

Reproduces: Yang et al., *S²FT* (NeurIPS 2024), Theorem F.7 (with F.10, F.13): the in-distribution
excess risk of the minimum-norm solutions is a bias floor ((11) for LoRA, (21) for S²FT) plus a
variance term decaying like $\mathrm{dof}\cdot\log^2(n+p+q)/n$, dof $=r(d_\ell+d_{\ell-1})$ for
LoRA and $s\,d_{\ell-1}$ for S²FT. The paper has no figure for this; the plot shows the exact
excess risks, the exact bias floors $T_{\mathrm{bias}}^2$, the bounds (11)/(21) on them, and the
fitted decay slopes of the variance part.

Command: ``make fig-s2ft-id`` (``--quick`` for a smoke run, ``FULL=1`` for more replicates).
Expected runtime on 2 CPU cores: quick ~5 s, default ~30 s, full ~3 min.

Setup: dims (16, 12, 10, 16), $\ell=2$, realisable $B^{(\mathrm i)}$ with a residual of rank 3
(geometric spectrum 0.7) on channels $S_0=\{0,1,2\}$ plus an off-channel part with
$\delta=0.3$ (Assumption F.4), $\Sigma_x$ with condition number 4, noise $\sigma=0.5$; LoRA
ranks $r\in\{1,2\}$, S²FT with $s=\lfloor r(d_\ell+d_{\ell-1})/d_{\ell-1}\rfloor$ channels
($S\supseteq S_0$ padded at random, and random S²FT-R), $n$ from 50 to 12800, Gaussian data.

Expected result: every curve decays to its bias floor; the variance part
$\mathcal E - T_{\mathrm{bias}}^2$ has fitted log-log slope close to $-1$ (CIs in the legend);
LoRA's floor is $\|\mathrm{SVD}_r(M)-M\|_F^2+\mathcal E_{\mathrm{full}}$ and is *above* S²FT's
when $S\supseteq S_0$ and $r<\operatorname{rank}\Sigma_f$ (the counterexample to the order
claimed in Lemma F.14); random channels give S²FT a high floor.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

import lowrank_theory as lt
from lowrank_theory.pipeline.plotting import COLORS, legend_outside, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment
from lowrank_theory.s2ft import (
    bias_lora,
    bias_s2ft,
    theorem_f10_bias,
    theorem_f13_bias,
)


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    dims: tuple[int, ...] = (16, 12, 10, 16)
    ell: int = 2
    ranks: tuple[int, ...] = (1, 2)
    ns: tuple[int, ...] = (50, 100, 200, 400, 800, 1600, 3200, 6400, 12800)
    reps: int = 30
    noise: float = 0.5

    @classmethod
    def quick(cls) -> Config:
        return cls(dims=(8, 6, 5, 8), ranks=(1,), ns=(50, 200, 800), reps=3)

    @classmethod
    def full(cls) -> Config:
        return cls(reps=100, ns=(50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600))


def _instance(cfg: Config):
    return lt.build_instance(
        cfg.seed,
        cfg.dims,
        cfg.ell,
        residual_rank=3,
        residual_decay=0.7,
        channels=(0, 1, 2),
        delta=0.3,
        x_cond=4.0,
        noise=cfg.noise,
    )


def _methods(cfg: Config, inst) -> dict[str, tuple[str, object]]:
    d, dp = cfg.dims[cfg.ell], cfg.dims[cfg.ell - 1]
    out: dict[str, tuple[str, object]] = {}
    rng = np.random.default_rng(cfg.seed)
    for r in cfg.ranks:
        s = min(lt.sparsity_level(r, d, dp), d)
        extra = [a for a in rng.permutation(d).tolist() if a not in (0, 1, 2)]
        s_cover = tuple(sorted((0, 1, 2, *extra)[:s]))
        out[f"LoRA r={r}"] = ("lora", r)
        out[f"S2FT s={s} (S⊇S0)" if s >= 3 else f"S2FT s={s} (S⊂S0)"] = ("s2ft", s_cover)
        out[f"S2FT-R s={s}"] = (
            "s2ft",
            lt.channel_selector(inst, cfg.ell, s, "random", key=jax.random.key(cfg.seed + r)),
        )
    return out


def main(cfg: Config, sweep: Sweep) -> dict:
    inst = _instance(cfg)
    methods = _methods(cfg, inst)
    floors, bounds = {}, {}
    for name, (kind, arg) in methods.items():
        if kind == "lora":
            floors[name] = bias_lora(inst, cfg.ell, arg)
            bounds[name] = theorem_f10_bias(inst, cfg.ell, arg).rhs
        else:
            floors[name] = bias_s2ft(inst, cfg.ell, arg)
            bounds[name] = theorem_f13_bias(inst, cfg.ell, arg).rhs

    def point(key: str) -> dict:
        n = int(key)
        risks = {name: [] for name in methods}
        for rep in range(cfg.reps):
            data = lt.sample(
                inst, n, jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), n), rep)
            )
            for name, (kind, arg) in methods.items():
                fit = (
                    lt.min_norm_lora(inst, cfg.ell, arg, data=data)
                    if kind == "lora"
                    else lt.min_norm_s2ft(inst, cfg.ell, arg, data=data)
                )
                risks[name].append(lt.excess_risk(inst, fit, "in"))
        return {"n": n, "risks": risks}

    res = sweep.run([str(n) for n in cfg.ns], point, desc="sample sizes")
    pts = list(res.values())
    fits = {}
    for name in methods:
        ns = np.concatenate([[p["n"]] * len(p["risks"][name]) for p in pts]).astype(float)
        var = np.concatenate([p["risks"][name] for p in pts]) - floors[name]
        ok = var > 0
        x, y = np.log(ns[ok]), np.log(var[ok])
        xm = x - x.mean()
        slope = float(np.sum(xm * (y - y.mean())) / np.sum(xm**2))
        resid = y - y.mean() - slope * xm
        se = float(np.sqrt(np.sum(resid**2) / (len(x) - 2) / np.sum(xm**2)))
        fits[name] = {
            "slope": slope,
            "ci": [slope - 1.96 * se, slope + 1.96 * se],
            "n_used": int(ok.sum()),
        }
    d, dp = cfg.dims[cfg.ell], cfg.dims[cfg.ell - 1]
    dof = {
        name: (arg * (d + dp) if kind == "lora" else len(arg) * dp)
        for name, (kind, arg) in methods.items()
    }
    return {
        "points": pts,
        "floors": floors,
        "bounds": bounds,
        "fits": fits,
        "dof": dof,
        "channels": {k: (list(a) if k.startswith("S2FT") else a) for k, (_, a) in methods.items()},
    }


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, 2, width=5.0, height=3.8)
    pts = result["points"]
    ns = np.array([p["n"] for p in pts])
    palette = [COLORS["lora"], COLORS["s2ft"], "#17becf", "#8c564b", "#e377c2", "#bcbd22"]
    for i, name in enumerate(result["floors"]):
        c = palette[i % len(palette)]
        mean = np.array([np.mean(p["risks"][name]) for p in pts])
        fl = result["floors"][name]
        f = result["fits"][name]
        bd = result["bounds"][name]
        lab = f"{name} (dof {result['dof'][name]}; bound {bd:.3g})"
        axes[0, 0].loglog(ns, mean, "o-", color=c, ms=3, label=lab)
        axes[0, 0].axhline(fl, color=c, ls="--", lw=1)
        axes[0, 0].axhline(bd, color=c, ls=":", lw=1)
        var = np.maximum(mean - fl, 1e-300)
        axes[0, 1].loglog(
            ns,
            var,
            "o-",
            color=c,
            ms=3,
            label=f"{name}: slope {f['slope']:.2f} [{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]",
        )
    ref = ns.astype(float)
    axes[0, 1].loglog(
        ref,
        0.5 * ref[0] / ref * np.max([np.mean(pts[0]["risks"][k]) for k in result["floors"]]),
        "k:",
        lw=1,
        label="slope −1",
    )
    axes[0, 0].set(
        xlabel="n",
        ylabel=r"$\mathcal{E}^{(i)}$ (mean over reps)",
        title="excess risk; dashed: bias floor $T_{bias}^2$, dotted: (11)/(21)",
    )
    axes[0, 1].set(
        xlabel="n",
        ylabel=r"$\mathcal{E}^{(i)} - T_{bias}^2$",
        title="variance part; fitted log-log slopes (95% CI)",
    )
    top = max(max(np.mean(p["risks"][k]) for p in pts) for k in result["floors"])
    bot = min(result["floors"].values())
    axes[0, 0].set_ylim(max(bot, 1e-4) / 2, 4 * top)
    legend_outside(axes[0, 0], "below", fontsize=6)
    legend_outside(axes[0, 1], "below", fontsize=6)
    fig.suptitle(
        f"Theorem F.7: dims {cfg.dims}, ℓ = {cfg.ell}, {cfg.reps} replicates per n", fontsize=9
    )
    return fig


if __name__ == "__main__":
    run_experiment("s2ft-id", Config, main, plot, script=__file__)
