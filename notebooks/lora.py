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
# # The expressive power of LoRA (seed 000): a worked tour
#
# Zeng & Lee (ICLR 2024), **Lemma 1**: a frozen linear model $W_L\cdots W_1$ adapted by
# rank-$R$ updates $\Delta W_l$ can reach the target $\overline W$ up to
# $\min\|\prod_l(W_l+\Delta W_l)-\overline W\|_2=\sigma_{RL+1}(E)$, $E=\overline W-\prod_l W_l$,
# and reproduces it exactly from $R\ge\lceil R_E/L\rceil$ on.
#
# This notebook builds an instance from a `jax.random.key`, runs the constructive proof
# (`lowrank_theory.lora.linear_adapters`), checks the lemma through the claim registry and by
# hand, and draws the error against the rank. Page: `docs/lora.md`.
#
# `QUICK` (environment `NOTEBOOK_QUICK`, default `1`) keeps the sizes small enough for the test
# suite; set `NOTEBOOK_QUICK=0` for a larger instance.

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
OUT = Path(os.environ.get("NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="notebook-lora-"))
OUT.mkdir(parents=True, exist_ok=True)
D, L = (8, 2) if QUICK else (32, 3)
SEED = 0

# %% [markdown]
# ## 1. An instance
#
# Frozen layers $W_l=I+G_l/\sqrt D$ (non-singular with high probability) in the seed's order
# `[W_1, ..., W_L]`, and a random target $\overline W$. Every random object comes from one key.

# %%
k_frozen, k_target = jax.random.split(jax.random.key(SEED))
frozen = [
    np.eye(D) + np.asarray(jax.random.normal(k, (D, D))) / np.sqrt(D)
    for k in jax.random.split(k_frozen, L)
]
target = np.asarray(jax.random.normal(k_target, (D, D))) / np.sqrt(D)
E = target - lt.linalg.chain_product(frozen)  # the error the adapters must absorb
r_exact = lt.min_lora_rank(frozen, target)  # ceil(R_E / L)
print(f"D = {D}, L = {L}, rank(E) = {lt.linalg.numerical_rank(E)}, exact from R = {r_exact}")

# %% [markdown]
# ## 2. The construction of the proof, rank by rank
#
# `lemma1_construction(frozen, target, rank)` holds every object of the proof: the adapters
# $[\Delta W_1,\dots,\Delta W_L]$ (each of rank at most $R$; `linear_adapters` returns only
# these), $E'$, the projections $Q_l$ and the condition numbers of the matrices it inverts.
# `lora_product` is the adapted end-to-end matrix.

# %%
ranks = list(range(1, r_exact + 1))
achieved, optimum, tols = [], [], []
for r in ranks:
    c = lt.lora.lemma1_construction(frozen, target, rank=r)  # adapters and the proof's objects
    assert max(lt.linalg.numerical_rank(a) for a in c.adapters) <= r
    achieved.append(float(np.linalg.norm(lt.lora_product(frozen, c.adapters) - target, 2)))
    optimum.append(float(lt.linear_min_error(frozen, target, rank=r)))  # sigma_{RL+1}(E)
    # rounding budget: size of the matrices times the worst condition number inverted
    scale = (np.linalg.norm(target, 2) + np.linalg.norm(target - E, 2)) * max(c.cond.values())
    tols.append(lt.tolerance(scale, n=D * L))
for r, a, o in zip(ranks, achieved, optimum, strict=True):
    print(f"R = {r}: ||prod(W + dW) - target||_2 = {a:.3e}   sigma_(RL+1)(E) = {o:.3e}")

# %% [markdown]
# ## 3. Check Lemma 1's exactness claim
#
# Through the registry: `lora.lemma1.exact` draws its own instance from a structure dict (the
# keys of its hypothesis strategy) and returns a `CheckResult` with both sides, the tolerance
# and the verdict.

# %%
claim = get("lora.lemma1.exact")
print(claim.statement)
params = {
    "D": D,
    "L": L,
    "R": 3,
    "rank_e": 5,
    "spectrum": "decaying",
    "log10_cond": 0.5,
    "e_scale": 2.0,
    "seed": SEED,
}
result = claim.run(params)
print(f"lhs = {result.lhs:.2e}, rhs = {result.rhs}, tol = {result.tol:.2e}, holds = {result.holds}")
assert result.holds

# %% [markdown]
# And by hand on our own instance: at $R=\lceil R_E/L\rceil$ the residual is zero, and below it
# the construction attains $\sigma_{RL+1}(E)$, each up to the package's rounding tolerance
# `lt.tolerance(scale, n)` ($100\,n\,\varepsilon\cdot$scale; the scale here is the size of the
# matrices times the largest condition number the construction inverts, as in the claim).

# %%
for a, o, tol in zip(achieved, optimum, tols, strict=True):
    assert abs(a - o) <= tol, (a, o, tol)
assert achieved[-1] <= tols[-1]  # exact at R = ceil(R_E / L)
print(f"all {len(ranks)} ranks within tol <= {max(tols):.1e}; exact at R = {r_exact}")

# %% [markdown]
# ## 4. Figure: error against the LoRA rank
#
# Both curves coincide; at $R=\lceil R_E/L\rceil$ the optimum is 0 and the construction's error
# is rounding.

# %%
fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
floor = 1e-16  # zeros drawn at the floor of the log axis
ax.semilogy(ranks, np.maximum(optimum, floor), "o-", label=r"$\sigma_{RL+1}(E)$ (Lemma 1)")
ax.semilogy(ranks, np.maximum(achieved, floor), "x--", label="construction")
ax.axvline(r_exact, color="grey", ls=":", label=r"$\lceil R_E/L\rceil$")
ax.set_xticks(ranks)
ax.set_xlabel("LoRA rank $R$")
ax.set_ylabel("spectral error")
ax.legend(loc="lower left", fontsize=8)
fig.savefig(OUT / "lora.png", dpi=80)
print(f"figure: {OUT / 'lora.png'}")
