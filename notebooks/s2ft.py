# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # S²FT vs LoRA in deep linear networks (seed 002): a worked tour
#
# Yang et al. (NeurIPS 2024), Section 4 and Appendix F: a pre-trained deep linear network
# $W_L\cdots W_1$ whose layer $\ell$ is fine-tuned either by **LoRA** ($W_\ell+UV^\top$, rank
# $r$) or by **S²FT** (only $V$, with $U=U_S$ selecting $s=\lfloor r(d_\ell+d_{\ell-1})/d_{\ell-1}
# \rfloor$ channels: the same parameter count). **Theorem 4.2**: S²FT keeps the
# out-of-distribution excess risk within $(1+3\varepsilon^2)$ of the pre-trained model's.
#
# This notebook builds an instance, computes the minimum-norm LoRA and S²FT solutions and their
# excess risks rank by rank, checks Theorem 4.2 through the claim registry and by hand, and draws
# the risks. Page: `docs/s2ft.md`. `NOTEBOOK_QUICK=0` selects a larger network.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import lowrank_theory as lt  # first: turns on float64 before any array exists
from lowrank_theory.claims import get
from lowrank_theory.s2ft import theorem_42

QUICK = os.environ.get("NOTEBOOK_QUICK", "1") == "1"
OUT = Path(os.environ.get("NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="notebook-s2ft-"))
OUT.mkdir(parents=True, exist_ok=True)
DIMS, ELL, RESIDUAL_RANK = ((6, 5, 4, 6), 2, 3) if QUICK else ((12, 10, 8, 12), 2, 5)
SEED = 0

# %% [markdown]
# ## 1. An instance
#
# `build_instance(seed, dims, ell, ...)` draws every random object from `jax.random.key(seed)`
# and realises the assumptions on purpose: a realisable in-distribution task whose residual has
# rank `residual_rank` (singular values decaying by `residual_decay`) on the channels
# `channels`, and an out-of-distribution task shifted by a label shift of size `label_shift`.

# %%
inst = lt.build_instance(
    SEED,
    dims=DIMS,
    ell=ELL,
    residual_rank=RESIDUAL_RANK,
    residual_decay=0.5,
    channels=tuple(range(RESIDUAL_RANK)),
    label_shift=1.0,
    shift_inside=0.2,
)
d_ell, d_prev = inst.dims[ELL], inst.dims[ELL - 1]
pre = lt.s2ft.pretrained(inst, ELL)
e_pre = {k: lt.excess_risk(inst, pre, k) for k in ("in", "out")}
print(f"dims {inst.dims}, layer {ELL} is {d_ell} x {d_prev}; pre-trained excess risks {e_pre}")

# %% [markdown]
# ## 2. The minimum-norm solutions, rank by rank
#
# For each LoRA rank $r$, S²FT gets $s$ = `sparsity_level(r, d_ell, d_prev)` channels chosen
# by `channel_selector` (here by gradient magnitude); `min_norm_lora` (Lemma F.9) and
# `min_norm_s2ft` (Lemma F.12) are the population ($n\to\infty$) closed forms.

# %%
ranks = list(range(1, d_ell))
risks = {(m, k): [] for m in ("LoRA", "S²FT") for k in ("in", "out")}
for r in ranks:
    s = min(lt.sparsity_level(r, d_ell, d_prev), d_ell)
    S = lt.channel_selector(inst, ELL, s, "gradient")
    fits = {"LoRA": lt.min_norm_lora(inst, ELL, r), "S²FT": lt.min_norm_s2ft(inst, ELL, S)}
    for (m, k), values in risks.items():
        values.append(lt.excess_risk(inst, fits[m], k))
    print(
        f"r = {r}, s = {s}, S = {S}: in-dist LoRA {risks['LoRA', 'in'][-1]:.4f} "
        f"S²FT {risks['S²FT', 'in'][-1]:.4f} | out-of-dist LoRA {risks['LoRA', 'out'][-1]:.4f} "
        f"S²FT {risks['S²FT', 'out'][-1]:.4f}"
    )

# %% [markdown]
# Gradient descent on $V$ from zero (`gd_s2ft`) converges to the minimum-norm S²FT solution
# (the implicit bias of Section 4):

# %%
S = tuple(range(RESIDUAL_RANK))
gd = lt.gd_s2ft(inst, ELL, S)
print(f"distance to the min-norm S²FT solution after GD: {float(gd.distance[-1]):.1e}")

# %% [markdown]
# ## 3. Check Theorem 4.2 (S²FT part)
#
# Through the registry: `s2ft.theorem42.s2ft` builds its instance from a structure dict (the keys
# of its hypothesis strategy: shape, ranks, spectra, shifts, seed, and here an exact
# $\varepsilon$ of Assumption 4.1).

# %%
claim = get("s2ft.theorem42.s2ft")
print(claim.statement)
params = {
    "shape": "funnel",
    "r": 2,
    "s": 3,
    "residual_rank": 3,
    "decay": 0.5,
    "weight_cond": 1.0,
    "x_cond": 1.0,
    "delta": 0.0,
    "label_shift": 1.0,
    "covariate": 1.0,
    "n": None,
    "seed": 1,
    "epsilon": 0.2,  # the strategy sets epsilon = [None, 0.2, 0.6][seed % 3]
}
result = claim.run(params)
print(f"lhs = {result.lhs:.4f} <= rhs = {result.rhs:.4f} (tol {result.tol:.1e}): {result.holds}")
assert result.holds

# %% [markdown]
# And by hand on our instance: `theorem_42` returns both sides and the terms ($\varepsilon$,
# $\mathcal E^{(o)}(f^{pre})$). The instance has unit weight and input spectra, so the rounding
# scale is the size of the risks; `lt.tolerance(scale, n)` is $100\,n\,\varepsilon\cdot$scale.

# %%
# the smallest rank whose S²FT budget s covers the residual's channels S_0 = {0, ..., rank - 1}
r = next(r for r in ranks if lt.sparsity_level(r, d_ell, d_prev) >= RESIDUAL_RANK)
S = tuple(range(min(lt.sparsity_level(r, d_ell, d_prev), d_ell)))
t = theorem_42(inst, ELL, r, S, which="s2ft")
tol = lt.tolerance(max(t.lhs, t.rhs), n=sum(inst.dims))
print(
    f"E_out(S²FT) = {t.lhs:.4f} <= (1 + 3 eps^2) E_out(pre) = {t.rhs:.4f}, eps = {t.terms['epsilon']:.4f}"
)
assert t.lhs <= t.rhs + tol

# %% [markdown]
# ## 4. Figure: excess risks against the rank

# %%
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0), layout="constrained", sharex=True)
for ax, k, title in zip(
    axes, ("in", "out"), ("in-distribution", "out-of-distribution"), strict=True
):
    ax.plot(ranks, risks["LoRA", k], "o-", label="LoRA (rank $r$)")
    ax.plot(ranks, risks["S²FT", k], "s--", label="S²FT ($s$ channels)")
    ax.axhline(e_pre[k], color="grey", ls=":", label="pre-trained")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(ranks)
    ax.set_xlabel("LoRA rank $r$")
    ax.set_ylabel("excess risk")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
fig.savefig(OUT / "s2ft.png", dpi=80)
print(f"figure: {OUT / 's2ft.png'}")
