r"""Singular values in deep matrix factorization (seed 004): the invariant ones, $\rho_l(t)$ of
Theorem 2.1, and the numerical rank of Fig. 7.

* :func:`rho_sequence`: recursion (6) for $\rho_l(t)$, the singular value that every
  $W_l(t)$ keeps on its $m$-dimensional invariant subspace (Theorem 2.1; the sandwich of
  Lemma E.2 bounds it); :func:`rho_divergence` says when (6) blows up (GD on (2) and the
  compressed GD (9) warn through it).
* :func:`numerical_rank_fig7` / :func:`rank_fig7_from_singular_values`: the paper's
  numerical rank (Fig. 7 caption), the one implementation of that definition, expressed
  through the package's rank rule :func:`lowrank_theory.core.linalg.rank_from_singular_values`;
  :func:`lowrank_theory.dmf.deep_lora.numerical_rank` is the same rule at float32's epsilon.

References: seed 004, Theorem 2.1, eq. (6), Lemma E.2, Fig. 7 caption.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from ..core.linalg import rank_from_singular_values
from ..core.precision import DTYPE, EPS
from ..core.validation import as_matrix, check_int

__all__ = [
    "RANK_FLOOR",
    "check_scales",
    "numerical_rank_fig7",
    "rank_fig7_from_singular_values",
    "rho_divergence",
    "rho_sequence",
]


def check_scales(eps, depth: int) -> tuple[float, ...]:
    r"""The per-layer initialisation scales $(\epsilon_1,\dots,\epsilon_L)$ from a scalar or a
    sequence of ``depth``; ValueError unless all are finite and $>0$."""
    e = np.atleast_1d(np.asarray(eps, dtype=DTYPE))
    if e.ndim != 1 or e.shape[0] not in (1, depth):
        raise ValueError(f"eps must be a scalar or a sequence of {depth} per-layer scales")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"initialisation scales eps_l must be finite and > 0, got {e.tolist()}")
    return tuple(float(x) for x in np.broadcast_to(e, (depth,)))


def rho_divergence(eps, lr, weight_decay, warn=False) -> float:
    r"""$\max_l \eta(\lambda+\prod_{k\ne l}\epsilon_k^2)$; $>2$ means the recursion (6) diverges.

    ``warn``: also emit a RuntimeWarning when it does (GD on (2) or (9) then blows up, though
    Theorem 2.1 still holds algebraically).
    """
    eps = np.asarray(eps, dtype=DTYPE)
    prods = np.array([np.prod(np.delete(eps, l) ** 2) for l in range(eps.shape[0])])
    worst = float(lr * (weight_decay + prods.max()))
    if warn and worst > 2.0:
        warnings.warn(
            f"eta*(lambda + prod_(k!=l) eps_k^2) = {worst:.3g} > 2: the rho recursion (6) "
            "diverges, so the invariant directions blow up (Theorem 2.1 still holds algebraically)",
            RuntimeWarning,
            stacklevel=3,
        )
    return worst


def rho_sequence(
    eps: float | Sequence[float],
    lr: float,
    weight_decay: float,
    steps: int,
    depth: int | None = None,
) -> Float[np.ndarray, "T1 L"]:
    r"""The invariant singular values $\rho_l(t)$ of Theorem 2.1, recursion (6).

    $$\rho_l(t) = \rho_l(t-1)\Big(1-\eta\lambda-\eta\prod_{k\ne l}\rho_k^2(t-1)\Big),\qquad
    \rho_l(0)=\epsilon_l.$$

    For $L=1$ the empty product is 1. The recursion is bounded iff
    $\eta(\lambda+\prod_{k\ne l}\epsilon_k^2)\le 2$ for every $l$ (then each factor lies in
    $[-1,1]$ and stays there as the $|\rho_k|$ decrease); beyond that the $\rho_l$ oscillate
    with growing amplitude, and this function raises.

    Args:
        eps: $\epsilon_l>0$, a scalar (needs ``depth``) or one per layer.
        lr: $\eta>0$.
        weight_decay: $\lambda\ge 0$.
        steps: $T$; rows $t=0..T$ are returned.
        depth: $L$ when ``eps`` is a scalar.

    Returns:
        array of shape $(T+1, L)$.

    Examples:
        >>> from lowrank_theory.dmf.spectra import rho_sequence
        >>> rho_sequence(0.5, 0.1, 0.0, 2, depth=2).round(6).tolist()
        [[0.5, 0.5], [0.4875, 0.4875], [0.475914, 0.475914]]
    """
    if depth is None:
        depth = int(np.size(eps))
    depth = check_int(depth, "depth", lo=1)
    e = np.array(check_scales(eps, depth))
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be finite and > 0, got {lr}")
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight decay must be finite and >= 0, got {weight_decay}")
    steps = check_int(steps, "steps", lo=0)
    worst = rho_divergence(e, lr, weight_decay)
    if worst > 2.0:
        raise ValueError(
            f"the rho recursion (6) diverges: eta*(lambda + prod_(k!=l) eps_k^2) = {worst:.4g} "
            "> 2; lower the learning rate eta"
        )
    out = np.empty((steps + 1, depth))
    out[0] = e
    for t in range(1, steps + 1):
        r = out[t - 1]
        p = np.array([np.prod(np.delete(r, l) ** 2) for l in range(depth)])
        out[t] = r * (1.0 - lr * weight_decay - lr * p)
    return out


#: Fig. 7's absolute floor on the singular values counted as rank.
RANK_FLOOR = 1e-8


def rank_fig7_from_singular_values(
    s: ArrayLike, shape: tuple[int, int], machine_eps: float = EPS, floor: float = RANK_FLOOR
) -> int:
    r"""Fig. 7's numerical rank from singular values ``s`` (decreasing) of an ``shape`` matrix.

    $\#\{i: \sigma_i > \max(\text{floor},\ d\,\sigma_1\,\epsilon)\}$ with $d=\max(m,n)$,
    ``floor`` $=10^{-8}$ and $\epsilon$ = ``machine_eps`` (the caption's machine epsilon). The
    caption's cut-off is absolute, so it is the package's rank rule
    (:func:`~lowrank_theory.core.linalg.rank_from_singular_values`) with that cut-off as
    ``rtol`` on ``scale=1``. A spectrum whose top value is at most ``floor`` has rank 0. The one
    implementation of the Fig. 7 definition (:func:`numerical_rank_fig7`,
    :func:`lowrank_theory.dmf.deep_lora.numerical_rank`).

    Examples:
        >>> from lowrank_theory.dmf.spectra import rank_fig7_from_singular_values
        >>> rank_fig7_from_singular_values([1.0, 1e-7, 1e-9], (3, 3))
        2
    """
    s = np.asarray(s)
    if s.size == 0:
        return 0
    cutoff = max(floor, max(shape) * s[0] * machine_eps)
    return rank_from_singular_values(s, shape, rtol=cutoff, scale=1.0)


def numerical_rank_fig7(
    a: Float[ArrayLike, "m n"], machine_eps: float = EPS, floor: float = RANK_FLOOR
) -> int:
    r"""Numerical rank as in Fig. 7's caption: $\#\{i: \sigma_i>\max(10^{-8}, d\,\sigma_1\varepsilon)\}$.

    $d=\max(m,n)$ and $\varepsilon$ = ``machine_eps``, by default the float64 machine epsilon
    (:func:`lowrank_theory.dmf.deep_lora.numerical_rank` defaults to float32's, the paper's
    training precision); see :func:`rank_fig7_from_singular_values`.
    """
    a = as_matrix(a, "a")
    if not (machine_eps >= 0 and floor >= 0):
        raise ValueError(f"machine_eps and floor must be >= 0, got {machine_eps}, {floor}")
    s = np.asarray(jnp.linalg.svd(a, compute_uv=False))
    return rank_fig7_from_singular_values(s, a.shape, machine_eps, floor)
