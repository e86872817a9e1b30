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
# # Linearization of fine-tuning and NTK regression (seed 003): a worked tour
#
# *Linearization Explains Fine-Tuning in Large Language Models* (NeurIPS 2025, reading notes):
# regularized fine-tuning stays close to the linearised model
# $\bar f(\theta)=f(\theta_0)+\nabla f(\theta_0)(\theta-\theta_0)$, and fine-tuning the linearised
# model with the sum loss is kernel ridge regression with the empirical NTK $K$ and ridge
# $\sigma=\lambda/2$. **Theorem 5** brackets the training risk $\mathcal R=\|y-K\alpha\|^2$:
# $$\Big(\frac{\sigma\|y\|}{\sigma+\lambda_{\max}(K)}\Big)^2\le\mathcal R\le
# \Big(\frac{\sigma\|y\|}{\sigma+\lambda_{\min}(K)}\Big)^2.$$
#
# This notebook builds a small tanh MLP, runs regularized fine-tuning next to its linearisation,
# computes the empirical NTK and the KRR risk, checks Theorem 5 through the claim registry and
# by hand, and draws the risk between its bounds. Page: `docs/lin.md`.

# %%
import os
import tempfile
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

import lowrank_theory as lt  # first: turns on float64 before any array exists
from lowrank_theory.claims import get
from lowrank_theory.lin import MLP, mlp_init

QUICK = os.environ.get("NOTEBOOK_QUICK", "1") == "1"
OUT = Path(os.environ.get("NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="notebook-lin-"))
OUT.mkdir(parents=True, exist_ok=True)
N, WIDTH, STEPS = (8, 16, 100) if QUICK else (32, 64, 1000)
SEED = 0

# %% [markdown]
# ## 1. An instance
#
# A tanh MLP $4\to$ `WIDTH` $\to1$ at its initialisation $\theta_0$ and a regression task of `N`
# points, every random object from one key.

# %%
k_model, k_x, k_y = jax.random.split(jax.random.key(SEED), 3)
theta0 = mlp_init(k_model, (4, WIDTH, 1))
x = jax.random.normal(k_x, (N, 4))
y = jax.random.normal(k_y, (N,))
model = MLP()
print(f"{N} points, MLP widths (4, {WIDTH}, 1)")

# %% [markdown]
# ## 2. Fine-tuning and its linearisation
#
# `regularized_finetune` runs the seed's split update with the penalty $\lambda$ and reports at
# every step the loss, $\|\theta_t-\theta_0\|$ and the gap $\|f_{\theta_t}(x)-\bar
# f_{\bar\theta_t}(x)\|$ to the linearised model trained the same way.

# %%
trace = lt.regularized_finetune(model, theta0, x, y, lam=1.0, lr=1e-2, steps=STEPS)
print(
    f"loss {float(trace.loss[0]):.4f} -> {float(trace.loss[-1]):.4f}, "
    f"largest gap to the linearised model {float(np.max(trace.gap)):.2e}"
)

# %% [markdown]
# The empirical NTK $K=\nabla f(\theta_0)\nabla f(\theta_0)^\top$ (`empirical_ntk` takes the
# exact structured path for this MLP) and the KRR training risk over a range of ridges:

# %%
K = np.asarray(lt.empirical_ntk(model, theta0, x))
f0 = np.asarray(jax.vmap(lambda xi: model(theta0, xi))(x)).reshape(-1)
target = np.asarray(y) - f0  # the linearised model fits the residual of f(theta_0)
sigmas = np.logspace(-3, 2, 11 if QUICK else 41)
bounds = [lt.risk_bounds(K, target, sigma=s) for s in sigmas]
ev = np.linalg.eigvalsh(K)
print(f"eigenvalues of K in [{ev[0]:.2e}, {ev[-1]:.2e}]")

# %% [markdown]
# ## 3. Check Theorem 5's upper bound
#
# Through the registry: `lin.theorem5.upper` builds a kernel with a prescribed spectrum from a
# structure dict (the keys of its hypothesis strategy). With $y$ along the bottom eigenvector
# the bound is attained (tightness 1).

# %%
claim = get("lin.theorem5.upper")
print(claim.statement)
params = {"n": 5, "log10_cond": 3.0, "log10_sigma": 0.0, "align": "bottom", "seed": SEED}
result = claim.run(params)
print(
    f"risk = {result.lhs:.6f} <= {result.rhs:.6f} (tol {result.tol:.1e}): {result.holds}, "
    f"tightness {result.tightness:.6f}"
)
assert result.holds

# %% [markdown]
# And by hand on our NTK, at every ridge: both sides of the sandwich, each up to
# `lt.tolerance(scale, n)` with the scale of the risk times $\kappa(K+\sigma I)$, the condition
# number the Cholesky solve amplifies rounding by.

# %%
for s, b in zip(sigmas, bounds, strict=True):
    tol = lt.tolerance(max(b["risk"], b["upper"]) * b["kappa"], n=N)
    assert b["lower"] - tol <= b["risk"] <= b["upper"] + tol, (s, b)
print(f"Theorem 5 holds at all {len(sigmas)} ridges")

# %% [markdown]
# ## 4. Figure: the KRR risk between its bounds

# %%
fig, ax = plt.subplots(figsize=(4.8, 3.2), layout="constrained")
ax.loglog(sigmas, [b["risk"] for b in bounds], "o-", label=r"risk $\|y-K\alpha\|^2$")
ax.loglog(sigmas, [b["upper"] for b in bounds], "--", label="upper bound")
ax.loglog(sigmas, [b["lower"] for b in bounds], ":", label="lower bound")
ax.set_xlabel(r"ridge $\sigma$")
ax.set_ylabel("KRR training risk")
ax.legend(loc="lower right", fontsize=8)
fig.savefig(OUT / "lin.png", dpi=80)
print(f"figure: {OUT / 'lin.png'}")
