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
# # Compressible dynamics in deep matrix factorization (seed 004): a worked tour
#
# Yaras, Wang, Balzano, Qu: gradient descent on a deep factorization $W_L\cdots W_1$ of a
# rank-$r$ target $\Phi\in\mathbb R^{d\times d}$ from a scaled orthogonal initialisation
# $W_l(0)=\epsilon_l O_l$ only ever changes a $2r$-dimensional subspace of each factor
# (**Theorem 2.1**): the other $m=d-2r$ singular values all equal $\rho_l(t)$, given by the
# recursion (6). So a width-$2r$ factorization (9) follows the same path, and **Proposition 2.2**
# bounds the difference: $\|f(\Theta(t))-f_C(\widetilde\Theta(t))\|_F^2\le m\prod_l\epsilon_l^2$.
#
# This notebook builds an instance, runs the full and the compressed factorization, checks
# Proposition 2.2 through the claim registry and by hand, and draws the loss curves and the
# singular values of a trained factor. Page: `docs/dmf.md` (Deep LoRA: `docs/deep-lora.md`).

# %%
import os
import tempfile
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

import lowrank_theory as lt  # first: turns on float64 before any array exists
from lowrank_theory.claims import get

QUICK = os.environ.get("NOTEBOOK_QUICK", "1") == "1"
OUT = Path(os.environ.get("NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="notebook-dmf-"))
OUT.mkdir(parents=True, exist_ok=True)
D, DEPTH, RANK, STEPS = (20, 3, 2, 1000) if QUICK else (100, 3, 5, 4000)
EPS_INIT, LR = 1e-2, 0.3
SEED = 0

# %% [markdown]
# ## 1. An instance
#
# Orthogonal factors scaled by $\epsilon_l$ = `EPS_INIT` and a target with $r$ = `RANK` unit
# singular values and Haar singular vectors, both from one key.

# %%
k_init, k_target = jax.random.split(jax.random.key(SEED))
ws0 = lt.orthogonal_init(k_init, D, DEPTH, EPS_INIT)  # [W_1, ..., W_L]
phi = lt.linalg.random_with_spectrum(k_target, D, D, np.ones(RANK))
sub = lt.invariant_subspaces(ws0, phi)  # Theorem 2.1's subspaces, width from the spectral gap
m = sub.m
print(f"d = {D}, L = {DEPTH}, r = {RANK}: width 2r = {sub.width}, m = {m}, gap {sub.gap:.1e}")

# %% [markdown]
# ## 2. Full and compressed gradient descent
#
# `compress(ws0, phi, rank)` is the width-$2r$ factorization (9) in the coordinates of the
# invariant subspaces; `run_factorization` and `run_compressed` run the same GD (15) on both
# (one jitted `lax.scan` each), recording the loss every `STEPS // 50` steps.

# %%
comp = lt.compress(ws0, phi, rank=RANK)
every = STEPS // 50
full = lt.run_factorization(ws0, phi, lr=LR, steps=STEPS, record_every=every, record=("loss",))
small = lt.run_compressed(comp, lr=LR, steps=STEPS, record_every=every, record=("loss",))
print(
    f"final loss: full {float(full.records['loss'][-1]):.2e}, "
    f"compressed {float(small.records['loss'][-1]):.2e}"
)
print(f"parameters: full {DEPTH * D * D}, compressed {sum(int(np.size(w)) for w in small.weights)}")

# %% [markdown]
# ## 3. Check Proposition 2.2
#
# Through the registry: `dmf.prop22.compression_error` builds Theorem 2.1's instance from a
# structure dict (the keys of its hypothesis strategy) and compares the two trajectories at every
# step.

# %%
claim = get("dmf.prop22.compression_error")
print(claim.statement)
params = {
    "d": 8,
    "r": 1,
    "rstar": 1,
    "L": 3,
    "eps": [1e-2, 0.1, 0.5],
    "lam": 0.0,
    "lr_frac": 0.6,
    "rank_given": True,
    "T": 40,
    "seed": SEED,
}
result = claim.run(params)
print(
    f"max_t ||f - f_C||_F = {result.lhs:.3e} <= {result.rhs:.3e} (tol {result.tol:.1e}): "
    f"{result.holds}"
)
assert result.holds

# %% [markdown]
# And by hand on our run, at the last step: the bound $\sqrt{m\prod_l\epsilon_l^2}$, and the
# identity from the proof $\|f-f_C\|_F=\sqrt m\prod_l\rho_l(T)$ with `rho_sequence`, each up to
# `lt.tolerance(scale, n)` with the claim's rounding budget (scale: the factors' norm to the
# power $L$; $n=dL(T+1)$).

# %%
gap = float(np.linalg.norm(lt.end_to_end(full.weights) - comp.end_to_end(small.weights)))
rho = lt.rho_sequence(EPS_INIT, LR, 0.0, STEPS, depth=DEPTH)  # rho_l(t), t = 0..T
bound = float(np.sqrt(m * EPS_INIT ** (2 * DEPTH)))
scale = max(1.0, max(float(np.linalg.norm(w, 2)) for w in full.weights))
tol = lt.tolerance(scale**DEPTH, n=D * DEPTH * (STEPS + 1))
assert gap <= bound + tol
assert abs(gap - np.sqrt(m) * np.prod(rho[-1])) <= tol
print(
    f"||f - f_C||_F = {gap:.3e} <= {bound:.3e}; sqrt(m) prod rho = {np.sqrt(m) * np.prod(rho[-1]):.3e}"
)

# %% [markdown]
# ## 4. Figure: loss curves and the spectrum of a trained factor
#
# Left: both runs follow the same path; the full one stalls at $\frac12 m\prod_l\rho_l(T)^2$, the
# part of $f$ outside the invariant subspaces that the compressed one leaves out. Right: $W_1(T)$
# has $2r$ singular values that moved and $m$ equal to $\rho_1(T)$ (Theorem 2.1).

# %%
steps = np.arange(len(full.records["loss"])) * every
s1 = np.linalg.svd(np.asarray(full.weights[0]), compute_uv=False)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.0, 3.2), layout="constrained")
ax0.semilogy(steps, full.records["loss"], "-", label=f"full width ({D})")
ax0.semilogy(steps, small.records["loss"], "--", label=f"compressed (width {sub.width})")
ax0.set_xlabel("GD step $t$")
ax0.set_ylabel(r"loss $\frac{1}{2}\|f-\Phi\|_F^2$")
ax0.legend(loc="upper right", fontsize=8)
ax1.semilogy(np.arange(1, D + 1), s1, "o", label=r"$\sigma_i(W_1(T))$")
ax1.axhline(rho[-1, 0], color="grey", ls=":", label=r"$\rho_1(T)$")
ax1.set_xlabel("index $i$")
ax1.set_ylabel("singular value")
ax1.legend(loc="center right", fontsize=8)
fig.savefig(OUT / "dmf.png", dpi=80)
print(f"figure: {OUT / 'dmf.png'}")
