r"""Claim ``lin.lemma1.lipschitz_kernel`` (seed 003, Lemma 1): the NTK is Lipschitz in $\theta$.

Maths in :mod:`lowrank_theory.lin.lipschitz` (the certified constants $\mathrm{Lip}(f)$,
$\mathrm{Lip}(\nabla f)$ on $B(\theta_0, r)$); instances in :mod:`.instances` (the linear model
and the two-layer tanh MLP, whose constants are certified).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ...core.precision import tolerance
from ..base import Claim, combine, compare, register
from .instances import SRC, N, build_model, flow_params


def check_lemma1(inst):
    r"""$\|k_\theta-k_{\theta'}\|$ against the product rule and $2\mathrm{Lip}(f)\mathrm{Lip}(\nabla f)
    \|\theta-\theta'\|$ for two random points of the ball (radius $0.999\,r$)."""
    f, x, r = inst["f"], inst["x"], inst["p"]["radius"]
    theta0, unravel = ravel_pytree(inst["theta0"])
    key = jax.random.fold_in(jax.random.key(inst["p"]["seed"]), 11)
    ka, kb = jax.random.split(key)

    def jac(t):
        return jax.vmap(lambda xi: ravel_pytree(jax.grad(f)(unravel(t), xi))[0])(x)

    def pt(k):
        v = jax.random.normal(k, theta0.shape)
        return theta0 + r * 0.999 * v / jnp.linalg.norm(v)

    ta, tb = pt(ka), pt(kb)
    ja, jb = jac(ta), jac(tb)
    dk = float(jnp.linalg.norm(ja @ ja.T - jb @ jb.T, 2))
    dt = float(jnp.linalg.norm(ta - tb))
    step = (float(jnp.linalg.norm(ja, 2)) + float(jnp.linalg.norm(jb, 2))) * float(
        jnp.linalg.norm(ja - jb, 2)
    )
    lip = inst["lip"]
    bound = 2 * lip.lip_f * lip.lip_grad * dt
    tol = tolerance(step + dk, n=N * ja.shape[1])
    return combine(
        [
            compare(dk, step, "<=", tol, step="product rule"),
            compare(dk, bound, "<=", tol, step="certified 2 Lip(f) Lip(grad f)", bound=bound),
        ],
        primary=1,
    )


register(
    Claim(
        id="lin.lemma1.lipschitz_kernel",
        source=SRC + ", Lemma 1 (norm bounds and Lipschitzness)",
        statement=r"\mathrm{Lip}(k)\le2\,\mathrm{Lip}(f)\,\mathrm{Lip}(\nabla f)",
        convention=r"Spectral norms; $k_\theta = J_\theta J_\theta^\top$. Checked on random pairs "
        r"in $B(\theta_0, r)$ in two steps: $\|k_\theta-k_{\theta'}\|\le(\|J_\theta\|+"
        r"\|J_{\theta'}\|)\|J_\theta-J_{\theta'}\|$ (the proof's product rule, can be tight) "
        r"$\le 2\mathrm{Lip}(f)\mathrm{Lip}(\nabla f)\|\theta-\theta'\|$ with certified constants. "
        r"Reported (primary): the second step, the lemma's bound. The linear model's kernel is "
        r"constant (both sides 0: degenerate).",
        params=flow_params,
        build=build_model,
        check=check_lemma1,
        test_examples=3,
    )
)
