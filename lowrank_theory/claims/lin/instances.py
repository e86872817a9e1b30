r"""Instances shared by the ``lin.*`` claims (seed 003): models with certified constants, kernels.

Models with **certified** Lipschitz constants (see :mod:`lowrank_theory.lin.lipschitz`): the
linear model $f_\theta(x) = \langle\theta, x\rangle$ (``d = 6``, ``n = 4``) and the two-layer tanh
MLP ``(3, 5, 1)`` on ``n = 4`` inputs (:func:`model_params`, :func:`build_model`; used by
:mod:`.linearization`, :mod:`.lipschitz` and :mod:`.experiments`).

Kernel claims (Theorems 5-7, :mod:`.ntk` and :mod:`.experiments`) draw
$K = U\operatorname{diag}(\lambda)U^\top$ with a log-spaced spectrum of condition number $10^c$
and targets either random or aligned with an extreme eigenvector (the tight regimes of the
proofs; :func:`kernel_params`, :func:`build_kernel`).

This module registers no claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

from ...core.linalg import random_orthogonal
from ...lin.lipschitz import linear_model_lipschitz, two_layer_lipschitz
from ...lin.models import MLP, mlp_init

__all__ = [
    "D_LIN",
    "D_MLP",
    "LINEAR",
    "MLP2",
    "M_MLP",
    "SRC",
    "Linear",
    "N",
    "build_kernel",
    "build_model",
    "flow_params",
    "kernel_params",
    "mlp_params",
    "model_params",
]

#: The seed file's number (``source`` of every ``lin.*`` claim).
SRC = "003"
#: Training points; input dimension of the linear model; sizes of the two-layer MLP ``(d, m, 1)``.
N, D_LIN, D_MLP, M_MLP = 4, 6, 3, 5


@dataclass(frozen=True)
class Linear:
    r"""$f_\theta(x) = \langle\theta, x\rangle$."""

    def __call__(self, theta, x):
        return jnp.dot(theta, x)


LINEAR, MLP2 = Linear(), MLP()


# ------------------------------------------------------------------------------------------
# model instances (Lemma 1, Lemma 3, Theorems 1-4, the lambda sweep)
# ------------------------------------------------------------------------------------------
def model_params(tight: bool = True, target_scales=(0.3, 1.0, 3.0)):
    r"""Structure of a model instance: linear or MLP, $\lambda$, target scale (drawn from
    ``target_scales``), radius $r$, seed.

    ``tight`` (drawn when ``tight=True``): for the linear model, the initial residual lies along
    the top left singular vector of $X$ (Theorem 2's proof is tight as $t\to0$).
    """
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(["linear", "mlp"]),
            "lam": st.sampled_from([0.25, 1.0, 4.0]),
            "target_scale": st.sampled_from(list(target_scales)),
            "radius": st.sampled_from([0.5, 2.0]),
            "tight": st.booleans() if tight else st.just(False),
            "seed": st.integers(0, 2**16),
        }
    )


def flow_params():
    """:func:`model_params` without the tight regime (``tight`` always ``False``)."""
    return model_params(tight=False)


def mlp_params():
    """:func:`flow_params` restricted to the two-layer MLP."""
    return model_params(tight=False).map(lambda d: {**d, "model": "mlp"})


def build_model(p: dict[str, Any]) -> dict[str, Any]:
    r"""Model ``f``, inputs ``x``, targets ``y``, $\theta_0$ and certified constants ``lip`` on
    $B(\theta_0, r)$ for the structure ``p`` of :func:`model_params`."""
    k1, k2, k3 = jax.random.split(jax.random.key(p["seed"]), 3)
    if p["model"] == "linear":
        x = jax.random.normal(k1, (N, D_LIN))
        theta0 = jax.random.normal(k2, (D_LIN,)) / math.sqrt(D_LIN)
        f = LINEAR
        lip = linear_model_lipschitz(x, p["radius"])
    else:
        x = jax.random.normal(k1, (N, D_MLP))
        theta0 = mlp_init(k2, (D_MLP, M_MLP, 1))
        f = MLP2
        lip = two_layer_lipschitz(theta0, x, p["radius"])
    f0 = jax.vmap(lambda xi: f(theta0, xi))(x)
    if p.get("tight") and p["model"] == "linear":
        # residual along the top left singular vector of X: Theorem 2's proof is tight at t -> 0
        u, _, _ = jnp.linalg.svd(x, full_matrices=False)
        y = f0 + p["target_scale"] * u[:, 0]
    else:
        y = f0 + p["target_scale"] * jax.random.normal(k3, (N,))
    assert lip.certified
    return {"p": p, "f": f, "x": x, "y": y, "theta0": theta0, "lip": lip}


# ------------------------------------------------------------------------------------------
# kernel instances (Theorems 5-7, the condition-number experiment)
# ------------------------------------------------------------------------------------------
def kernel_params():
    r"""Structure of a kernel instance: $n$, $\log_{10}\kappa(K)$, $\log_{10}\sigma$, the
    alignment of $y$ (random, top or bottom eigenvector), seed."""
    return st.fixed_dictionaries(
        {
            "n": st.sampled_from([2, 3, 5, 8]),
            "log10_cond": st.sampled_from([0.0, 1.0, 3.0, 6.0]),
            "log10_sigma": st.sampled_from([-3.0, -1.0, 0.0, 1.0]),
            "align": st.sampled_from(["random", "top", "bottom"]),
            "seed": st.integers(0, 2**16),
        }
    )


def build_kernel(p: dict[str, Any]) -> dict[str, Any]:
    r"""$K = U\operatorname{diag}(\lambda)U^\top$ (Haar $U$, $\lambda$ log-spaced from 1 to
    $10^{-c}$), targets ``y`` and ridge ``sigma`` for the structure ``p`` of
    :func:`kernel_params`."""
    k1, k2 = jax.random.split(jax.random.key(p["seed"]))
    n = p["n"]
    u = np.asarray(random_orthogonal(k1, n))
    lam = np.logspace(0.0, -p["log10_cond"], n)
    k = (u * lam[None, :]) @ u.T
    k = (k + k.T) / 2
    if p["align"] == "top":
        y = u[:, 0].copy()
    elif p["align"] == "bottom":
        y = u[:, -1].copy()
    else:
        y = np.asarray(jax.random.normal(k2, (n,)))
    assert np.linalg.eigvalsh(k)[0] > 0
    return {"p": p, "K": k, "y": y, "sigma": 10.0 ** p["log10_sigma"], "eig": lam}
