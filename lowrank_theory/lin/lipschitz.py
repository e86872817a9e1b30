r"""Lipschitz constants of $\theta\mapsto f_\theta(x^*)\in\mathbb R^n$ and of its Jacobian.

Theorems 1-4 of seed 003 assume $f_\theta(x^*)$ is $\mathrm{Lip}(f)$-Lipschitz and
$\nabla f_\theta(x^*)$ is $\mathrm{Lip}(\nabla f)$-Lipschitz (spectral norm) in the $\ell_2$ ball
$B(\theta_0, r)$. Two kinds of numbers come out of this module, and they are labelled:

* **certified upper bounds** (``certified=True``) for two model classes:
  - the linear model $f_\theta(x) = \langle\theta, x\rangle$: $\mathrm{Lip}(f) = \|X\|_2$ (exact),
    $\mathrm{Lip}(\nabla f) = 0$;
  - the two-layer tanh network of :class:`lowrank_theory.lin.models.MLP` with sizes
    ``(d, m, 1)``, $f(x) = \tanh(x W_1 + b_1) W_2 + b_2$: with $\tilde x = (x, 1)$,
    $a = W_2$, $c_2 = \max|\tanh''| = 4/(3\sqrt3)$, $A_\infty = \|a_0\|_\infty + r$,
    $$\mathrm{Lip}(f)^2 \le \sum_i \big[\|\tilde x_i\|^2(\|a_0\|+r)^2 +
    \min(m, (\|z_{0,i}\|+r\|\tilde x_i\|)^2) + 1\big],$$
    $$\mathrm{Lip}(\nabla f)^2 \le \sum_i \|\tilde x_i\|^2\big[(1 + c_2A_\infty\|\tilde x_i\|)^2+1\big],$$
    from $\|J\|_2\le\|J\|_F$, $|\tanh|\le\min(1,|z|)$, $|\tanh'|\le1$, $|\tanh''|\le c_2$.
    Derivation: row $i$ of $J$ is $(\tilde x_i\otimes(a\odot\tanh'(z_i)),\ \tanh(z_i),\ 1)$ with
    $z_i=\tilde x_iW$, so $\|J\|_F^2\le\sum_i\|\tilde x_i\|^2\|a\|^2+\|\tanh z_i\|^2+1$ and on the
    ball $\|a\|\le\|a_0\|+r$, $\|z_i\|\le\|z_{0,i}\|+r\|\tilde x_i\|$ ($\mathrm{Lip}(f)=\sup\|J\|_2$
    on the convex ball). For two points of the ball the row difference is at most
    $\|\tilde x_i\|(\|\Delta a\|+A_\infty c_2\|\tilde x_i\|\|\Delta W\|)+\|\tilde x_i\|\|\Delta W\|$
    $\le\|\tilde x_i\|\sqrt{(1+c_2A_\infty\|\tilde x_i\|)^2+1}\,\|\Delta\theta\|$ (Cauchy-Schwarz);
* **sampled lower estimates** (``certified=False``) for any model: the largest ratio
  $\|F(\theta)-F(\theta')\|/\|\theta-\theta'\|$ and $\|J(\theta)\|_2$ over random points of the
  ball. They are *not* upper bounds; a bound of Theorems 2-4 evaluated with them is an estimate,
  never "verified".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..core.validation import as_array, check_float, check_int

__all__ = [
    "C2_TANH",
    "LipschitzConstants",
    "linear_model_lipschitz",
    "sampled_lipschitz",
    "two_layer_lipschitz",
]

#: $\max_z|\tanh''(z)| = 4/(3\sqrt3)$.
C2_TANH = 4 / (3 * math.sqrt(3))


class LipschitzConstants(NamedTuple):
    r"""$\mathrm{Lip}(f)$, $\mathrm{Lip}(\nabla f)$ on $B(\theta_0, r)$, and how they were obtained.

    ``certified`` is ``True`` for upper bounds, ``False`` for sampled lower estimates;
    ``method`` says which (module docstring).
    """

    lip_f: float
    lip_grad: float
    radius: float
    certified: bool
    method: str


def linear_model_lipschitz(x, radius: float) -> LipschitzConstants:
    r"""$f_\theta(x) = \langle\theta,x\rangle$: $\mathrm{Lip}(f) = \|X\|_2$, $\mathrm{Lip}(\nabla f)=0$."""
    check_float(radius, "radius", lo=0.0)
    xx = np.asarray(as_array(x, "x", ndim=2))
    return LipschitzConstants(
        float(np.linalg.norm(xx, 2)), 0.0, float(radius), True, "linear model (exact)"
    )


def two_layer_lipschitz(params0, x, radius: float) -> LipschitzConstants:
    r"""Certified $\mathrm{Lip}(f)$, $\mathrm{Lip}(\nabla f)$ of a ``(d, m, 1)`` tanh MLP on $B(\theta_0, r)$."""
    if len(params0) != 2 or params0[1]["W"].shape[1] != 1:
        raise ValueError("two_layer_lipschitz needs an MLP with sizes (d, m, 1)")
    if not (radius >= 0):
        raise ValueError(f"radius must be non-negative, got {radius}")
    xx = np.asarray(as_array(x, "x", ndim=2))
    w1, b1 = np.asarray(params0[0]["W"]), np.asarray(params0[0]["b"])
    a0 = np.asarray(params0[1]["W"])[:, 0]
    m = w1.shape[1]
    xt = np.concatenate([xx, np.ones((xx.shape[0], 1))], axis=1)
    nx = np.linalg.norm(xt, axis=1)
    z0 = np.linalg.norm(xx @ w1 + b1[None, :], axis=1)
    a_norm = np.linalg.norm(a0) + radius
    lf2 = np.sum(nx**2 * a_norm**2 + np.minimum(m, (z0 + radius * nx) ** 2) + 1.0)
    a_inf = np.max(np.abs(a0)) + radius
    lg2 = np.sum(nx**2 * ((1 + C2_TANH * a_inf * nx) ** 2 + 1.0))
    return LipschitzConstants(
        float(math.sqrt(lf2)), float(math.sqrt(lg2)), float(radius), True, "two-layer tanh bound"
    )


def sampled_lipschitz(f, params0: Any, x, radius: float, key, n_samples: int = 64):
    r"""Sampled **lower estimates** of $\mathrm{Lip}(f)$ and $\mathrm{Lip}(\nabla f)$ on $B(\theta_0,r)$.

    Draws ``n_samples`` pairs $(\theta,\theta')$ (uniform directions, radii up to $r$) and returns
    $\max\|J(\theta)\|_2$ and $\max\|J(\theta)-J(\theta')\|_2/\|\theta-\theta'\|$. Labelled
    ``certified=False``.
    """
    xx = as_array(x, "x", ndim=2)
    check_float(radius, "radius", lo=0.0)
    check_int(n_samples, "n_samples", lo=1)
    theta0, unravel = ravel_pytree(params0)
    p = theta0.size

    def jac(t):
        return jax.vmap(lambda xi: ravel_pytree(jax.grad(f)(unravel(t), xi))[0])(xx)

    def point(k):
        k1, k2 = jax.random.split(k)
        v = jax.random.normal(k1, (p,))
        rad = radius * jax.random.uniform(k2) ** (1.0 / p)
        return theta0 + rad * v / jnp.linalg.norm(v)

    @jax.jit
    def one(k):
        ka, kb = jax.random.split(k)
        ta, tb = point(ka), point(kb)
        ja, jb = jac(ta), jac(tb)
        lf = jnp.linalg.norm(ja, 2)
        lg = jnp.linalg.norm(ja - jb, 2) / jnp.linalg.norm(ta - tb)
        return lf, lg

    vals = jax.lax.map(one, jax.random.split(key, n_samples))
    return LipschitzConstants(
        float(jnp.max(vals[0])),
        float(jnp.max(vals[1])),
        float(radius),
        False,
        f"sampled lower estimate ({n_samples} pairs)",
    )
