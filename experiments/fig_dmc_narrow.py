r"""Figure ``dmc-narrow``: compressed vs randomly initialised narrow factorizations (Fig. 10).

Reproduces Fig. 10 of seed 004 (Appendix D.1): deep matrix completion with $L=3$,
$\epsilon_l=10^{-3}$, an overestimated rank $\hat r$; the compressed factorization of width
$2\hat r$ (built from the full-width initialisation, (11), outer factors at rate $\gamma\eta$)
against a narrow factorization of the same width with random scaled-orthogonal initialisation
($d\to2\hat r\to2\hat r\to d$), both trained by GD with the same $\eta$. Left: iterations to
reach relative recovery error $10^{-6}$ (= mean squared error $10^{-12}$ for a $\Phi$ with
unit-variance entries); right: the same in wall time (iterations times the measured time per step
of that method at that width, compile excluded). The narrow runs of all widths and trials run
as one ``jax.vmap`` batch (zero-padded to the largest width, which GD preserves exactly) sharded
across devices when there are several; like the compressed runs it runs in chunks and resumes
mid-run after an interruption (``docs/figures.md``).

$\gamma$: the seed tunes it per problem (Section 3); with our $\Phi$ (unit singular values) and
$\eta = 0.4/p$ (½·sum loss) $\gamma=0.1$ converges in a comparable number of iterations to full
width while $\gamma=0.01$ is ~5x slower (see ``dmc-compression``), so we use $\gamma=0.1$.

Command: ``make fig-dmc-narrow`` (``--quick``: $d=24$, 1000 steps (smoke run); default $d=150$, $r^\star=3$,
$\hat r\in\{3,5,7,9\}$, 30% observed; ``FULL=1``: the paper's $d=1000$, $r^\star=5$, 20% observed,
$\hat r\in\{5,8,11,14,17,20\}$). Runtime on 2 cores: quick ~8 s, default ~2 min, full about 25 min
quiet (six compressed points of ~86 s, then the narrow batch at 0.04 s per step at load 1-2);
measured: the narrow batch took 2 h at load 5-8, sharing the machine with audits and tests.

Expected result: the compressed factorization needs fewer iterations than the narrow one at
every $\hat r$, and its count barely depends on $\hat r$; in wall time both are cheap
($O(d^2\hat r)$ per step) and compressed is faster as long as $\hat r$ is not much larger than
$r^\star$. At paper scale (``figures/full/dmc-narrow.png``): compressed 3500 iterations at every
$\hat r$, narrow 7250-10000 (2.1-2.8x), wall time 2.1-3.4x (the paper: about 3x).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import lowrank_theory as lt
from lowrank_theory.core.stats import finite_mean_std
from lowrank_theory.dmf.completion import first_below, padded_narrow_init, run_gd_from_inits
from lowrank_theory.pipeline.plotting import COLORS, shared_legend, subplots
from lowrank_theory.pipeline.records import Sweep, run_experiment, seconds_per_step


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 150
    rstar: int = 3
    frac: float = 0.3
    depth: int = 3
    eps: float = 1e-3
    rhats: tuple[int, ...] = (3, 5, 7, 9)
    trials: int = 2
    gamma: float = 0.1
    lr_times_p: float = 0.4
    steps: int = 20000
    record_every: int = 250
    tol: float = 1e-6

    @classmethod
    def quick(cls) -> Config:
        return cls(d=24, rstar=2, frac=0.5, rhats=(2, 4), trials=1, steps=1000, record_every=100,
                   tol=1e-4)  # fmt: skip

    @classmethod
    def full(cls) -> Config:
        return cls(d=1000, rstar=5, frac=0.2, rhats=(5, 8, 11, 14, 17, 20), trials=3)


def _setup(cfg: Config):
    k = jax.random.split(jax.random.key(cfg.seed), 3)
    phi, mask = lt.completion_instance(k[0], cfg.d, cfg.rstar, cfg.frac)
    target = jnp.where(mask, phi, 0.0)
    return k, phi, mask, target, cfg.lr_times_p / cfg.frac


def _compressed(cfg: Config, rh: int, sweep: Sweep) -> dict:
    """Compressed runs at one rhat (trials differ only in the full-width initialisation)."""
    k, phi, mask, target, lr = _setup(cfg)
    its = []
    for tr in range(cfg.trials):
        ws = lt.orthogonal_init(jax.random.fold_in(k[1], tr), cfg.d, cfg.depth, cfg.eps)
        comp = lt.compress(ws, target, rh, mask=mask)
        res = lt.run_compressed(comp, lr=lr, steps=cfg.steps, gamma=cfg.gamma, mask=mask,
                                truth=phi, record_every=cfg.record_every, record=("recovery",),
                                chunking=sweep.chunks(f"trial={tr}"))  # fmt: skip
        its.append(first_below(np.asarray(res.records["recovery"]), res.steps, cfg.tol))
    sec = seconds_per_step(lambda n: lt.run_compressed(
        comp, lr=lr, steps=n, gamma=cfg.gamma, mask=mask).weights, 200)  # fmt: skip
    return {"iters": its, "sec_per_step": sec}


def _narrow(cfg: Config, sweep: Sweep) -> dict:
    """Narrow runs: all widths x trials in one vmapped batch (as one batch, so bitwise as before),
    chunked: progress, Ctrl-C and a mid-run checkpoint the rerun resumes from."""
    k, phi, mask, target, lr = _setup(cfg)
    wmax = 2 * max(cfg.rhats)
    inits = [padded_narrow_init(jax.random.fold_in(k[2], 100 * rh + tr), cfg.d, 2 * rh, cfg.depth,
                                cfg.eps, pad_to=wmax)
             for rh in cfg.rhats for tr in range(cfg.trials)]  # fmt: skip
    b = len(inits)
    rec = run_gd_from_inits(inits, target, mask, phi, lr=lr, steps=cfg.steps,
                            record_every=cfg.record_every, chunking=sweep.chunks("batch"))  # fmt: skip
    steps = np.arange(0, cfg.steps + 1, cfg.record_every)
    nar = [first_below(rec["recovery"][i], steps, cfg.tol) for i in range(b)]
    return {"iters": np.array(nar).reshape(len(cfg.rhats), cfg.trials),
            "final_recovery": rec["recovery"][:, -1]}  # fmt: skip


def _narrow_timing(cfg: Config, rh: int) -> float:
    k, _phi, mask, target, lr = _setup(cfg)
    wn = lt.orthogonal_init(k[2], [cfg.d] + [2 * rh] * (cfg.depth - 1) + [cfg.d], cfg.depth,
                            cfg.eps)  # fmt: skip
    return seconds_per_step(lambda n: lt.run_gd(wn, target, lr=lr, steps=n, mask=mask).weights, 200)


def main(cfg: Config, sweep: Sweep) -> dict:
    # one cached point per compressed rhat, one for the narrow batch, one per narrow timing
    comp = sweep.run([f"compressed rhat={rh}" for rh in cfg.rhats],
                     lambda key: _compressed(cfg, int(key.split("=")[1]), sweep),
                     desc="compressed")  # fmt: skip
    nar = sweep.run(["narrow"], lambda _: _narrow(cfg, sweep), desc="narrow batch")["narrow"]
    nsec = sweep.run([f"narrow timing rhat={rh}" for rh in cfg.rhats],
                     lambda key: _narrow_timing(cfg, int(key.split("=")[1])), desc="timing")  # fmt: skip
    return {
        "lr": cfg.lr_times_p / cfg.frac,
        "rhats": list(cfg.rhats),
        "compressed_iters": [c["iters"] for c in comp.values()],
        "compressed_sec_per_step": [c["sec_per_step"] for c in comp.values()],
        "narrow_iters": nar["iters"],
        "narrow_sec_per_step": list(nsec.values()),
        "final_recovery_narrow": nar["final_recovery"],
    }


def plot(result: dict, cfg: Config):
    fig, axes = subplots(1, 2, width=4.4)
    rh = np.array(result["rhats"])
    for name, c, lab in (("compressed", COLORS["compressed"], "compressed"),
                         ("narrow", COLORS["narrow"], "narrow (random init)")):  # fmt: skip
        it = np.array(result[name + "_iters"], dtype=float)
        sec = np.array(result[name + "_sec_per_step"])
        m, sd = finite_mean_std(it)  # runs that never converged (inf) are left out
        axes[0, 0].errorbar(rh, m, yerr=sd, fmt="o-", color=c, label=lab)
        m, sd = finite_mean_std(it * sec[:, None])
        axes[0, 1].errorbar(rh, m, yerr=sd, fmt="o-", color=c, label=lab)
    axes[0, 0].set(xlabel=r"$\hat r$ (width $2\hat r$)", ylabel="iterations to converge",
                   title=f"recovery error < {cfg.tol:g} (missing: not within {cfg.steps})")  # fmt: skip
    axes[0, 1].set(xlabel=r"$\hat r$", ylabel="iterations x measured s/step", title="wall time")
    axes[0, 0].axvline(cfg.rstar, color="k", ls=":", lw=1)
    shared_legend(axes[0], axes[0, 1])
    fig.suptitle(f"Fig. 10: L={cfg.depth}, d={cfg.d}, r*={cfg.rstar}, eps={cfg.eps}, "
                 f"{int(100 * cfg.frac)}% observed, gamma={cfg.gamma}", fontsize=9)  # fmt: skip
    return fig


if __name__ == "__main__":
    run_experiment("dmc-narrow", Config, main, plot, script=__file__)
