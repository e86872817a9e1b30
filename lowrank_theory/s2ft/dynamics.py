r"""Training dynamics and structure of S²FT in deep linear networks (seed 002).

* Gradient descent on $(U,V)$ for LoRA (both factors, small random initialisation) and on $V$
  for S²FT (zero initialisation, $U=U_S$ fixed), jitted with ``lax.scan``, to measure how close
  gradient descent comes to the minimum-norm solutions of Lemmas F.9/F.12 that Section 4.1
  assumes ("motivated by the implicit regularisation in gradient descent").
* The Section 4.2 gradient identities: $\partial\mathcal L/\partial V = G^\top U_S$, the
  equivalent gradient $U_SG_V^\top = U_SU_S^\top G$ is the projection of the full gradient $G$
  and solves $\min_{G_V}\|U_SG_V^\top-G\|_F$.
* Coupled structures (Section 3.1): co-permuting the rows of $W_\ell$ and the columns of
  $W_{\ell+1}$ leaves $f$ unchanged, and after permuting the selected channels to the front the
  sparse update $W_\ell+U_SV^\top$ is a dense update of the leading $s$ rows.

The empirical risk is handled through its sufficient statistics
$\hat{\mathcal R}_n(\Delta) = \mathrm{const} - 2\operatorname{tr}(\overline W_{\ell+1}\Delta\underline W_{\ell-1}\hat C^\top)
+ \|\overline W_{\ell+1}\Delta\hat A\|_F^2$ with $\hat C = \frac1n(Y-W^{\mathrm{pre}}X)X^\top$,
whose gradient is $\nabla_\Delta = 2(\overline W_{\ell+1}^\top\overline W_{\ell+1}\Delta\hat A^2
- \overline W_{\ell+1}^\top\hat C\underline W_{\ell-1}^\top)$.

References:
    Yang et al., *S²FT*, NeurIPS 2024 (seed 002), Sections 3.1, 4.1 (eq. (3)-(6)), 4.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.validation import as_matrix, check_float, check_int
from .instance import (
    PSD_RTOL,
    DeepLinearInstance,
    Sample,
    check_channels,
    moments,
    selection_matrix,
)
from .solutions import min_norm_lora, min_norm_s2ft

__all__ = [
    "GDResult",
    "channel_permutation",
    "gd_lora",
    "gd_s2ft",
    "permute_coupled",
    "s2ft_dense_update",
    "s2ft_sparse_update",
    "sec42_gradients",
]


@dataclass(frozen=True, eq=False)
class GDResult:
    r"""Result of a gradient-descent run.

    Attributes:
        delta: final $UV^\top$.
        target: the minimum-norm closed form it is compared with.
        distance: $\|U_tV_t^\top-\Delta^\star\|_F/\|\Delta^\star\|_F$ after every step.
        steps, lr: iterations and step size.
        rate_bound: for S²FT, the guaranteed $\|V_t-V^\star\|_F/\|V^\star\|_F\le(1-\mu/L)^t$
            at the last step ($\mu$, $L$: smallest non-zero and largest Hessian eigenvalue);
            ``None`` for LoRA (no such guarantee).
    """

    delta: np.ndarray
    target: np.ndarray
    distance: np.ndarray
    steps: int
    lr: float
    rate_bound: float | None = None


def _stats(instance, ell, n, key, data):
    mom = moments(instance, n, key=key, data=data)
    wbar, wlow = instance.above(ell), instance.below(ell)
    h = wbar.T @ wbar
    s2 = wlow @ mom.sxx @ wlow.T
    cq = wbar.T @ mom.cross @ wlow.T
    return h, s2, cq


@partial(jax.jit, static_argnames=("steps",))
def _run_lora(h, s2, cq, u0, v0, target, lr, steps):
    tn = jnp.linalg.norm(target)

    def step(carry, _):
        u, v = carry
        g = 2.0 * (h @ (u @ v.T) @ s2 - cq)
        u, v = u - lr * g @ v, v - lr * g.T @ u
        return (u, v), jnp.linalg.norm(u @ v.T - target) / tn

    (u, v), dist = jax.lax.scan(step, (u0, v0), None, length=steps)
    return u @ v.T, dist


@partial(jax.jit, static_argnames=("steps",))
def _run_s2ft(h_s, s2, cq_s, v0, target_v, lr, steps):
    tn = jnp.linalg.norm(target_v)

    def step(v, _):
        g = 2.0 * (s2 @ v @ h_s - cq_s.T)  # gradient wrt V (d_{l-1} x s)
        v = v - lr * g
        return v, jnp.linalg.norm(v - target_v) / tn

    v, dist = jax.lax.scan(step, v0, None, length=steps)
    return v, dist


def gd_lora(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    n: int | None = None,
    *,
    init_scale: float = 1e-3,
    steps: int = 20000,
    lr: float | None = None,
    key: Array | None = None,
    data: Sample | None = None,
    init_key: Array | None = None,
) -> GDResult:
    r"""Gradient descent on both LoRA factors from a small random initialisation.

    $U_0, V_0$ have i.i.d. $\mathcal N(0,\text{init\_scale}^2)$ entries; the step size defaults
    to $0.25/(\|\overline W_{\ell+1}^\top\overline W_{\ell+1}\|\,\|\hat A^2\|\,(\|\Delta^\star\|_2
    + \text{init\_scale}))$, a safe fraction of the local smoothness near the minimum-norm
    solution $\Delta^\star$ (:func:`~lowrank_theory.s2ft.solutions.min_norm_lora`).
    """
    ell = instance.check_layer(ell)
    init_scale = check_float(init_scale, "init_scale", lo=0.0, lo_open=True)
    if lr is not None:
        check_float(lr, "lr", lo=0.0, lo_open=True)
    target = min_norm_lora(instance, ell, r, n, key=key, data=data).delta
    h, s2, cq = _stats(instance, ell, n, key, data)
    if lr is None:
        lr = 0.25 / (
            np.linalg.norm(h, 2) * np.linalg.norm(s2, 2) * (np.linalg.norm(target, 2) + init_scale)
        )
    ik = jax.random.key(instance.seed + 104729) if init_key is None else init_key
    ku, kv = jax.random.split(ik)
    d, dp = instance.dims[ell], instance.dims[ell - 1]
    u0 = init_scale * jax.random.normal(ku, (d, r), dtype=jnp.float64)
    v0 = init_scale * jax.random.normal(kv, (dp, r), dtype=jnp.float64)
    steps = check_int(steps, "steps", lo=1)
    delta, dist = _run_lora(h, s2, cq, u0, v0, target, float(lr), steps)
    return GDResult(np.asarray(delta), target, np.asarray(dist), steps, float(lr))


def gd_s2ft(
    instance: DeepLinearInstance,
    ell: int,
    S: Sequence[int],
    n: int | None = None,
    *,
    steps: int = 5000,
    lr: float | None = None,
    key: Array | None = None,
    data: Sample | None = None,
) -> GDResult:
    r"""Gradient descent on $V$ only ($U=U_S$ fixed) from $V_0=0$, step $1/L$ by default.

    From zero the iterates stay in the row space of the least-squares operator, so they converge
    to the minimum-norm solution of (6), linearly with rate $1-\mu/L$ (reported as
    ``rate_bound``).
    """
    ell = instance.check_layer(ell)
    if lr is not None:
        check_float(lr, "lr", lo=0.0, lo_open=True)
    fit = min_norm_s2ft(instance, ell, S, n, key=key, data=data)
    us = selection_matrix(S, instance.dims[ell])
    h, s2, cq = _stats(instance, ell, n, key, data)
    h_s = us.T @ h @ us
    cq_s = us.T @ cq
    ev_h = np.linalg.eigvalsh(h_s)
    ev_s = np.linalg.eigvalsh(s2)
    lmax = 2 * ev_h[-1] * ev_s[-1]
    # smallest non-zero eigenvalues (relative threshold PSD_RTOL, the package's PSD rank rule)
    mu = 2 * ev_h[ev_h > PSD_RTOL * ev_h[-1]][0] * ev_s[ev_s > PSD_RTOL * ev_s[-1]][0]
    if lr is None:
        lr = 1.0 / lmax
    steps = check_int(steps, "steps", lo=1)
    v, dist = _run_s2ft(h_s, s2, cq_s, jnp.zeros_like(fit.v), fit.v, float(lr), steps)
    rate = max(abs(1 - lr * mu), abs(1 - lr * lmax)) ** steps
    return GDResult(
        us @ np.asarray(v).T, fit.delta, np.asarray(dist), steps, float(lr), float(rate)
    )


# --- Section 4.2 -----------------------------------------------------------------------------
def _risk_v_jax(wbar, w_l, wlow, x, y, rows, vv):
    r"""$\hat{\mathcal R}_n$ written directly in the sparse parameters $V$: $V^\top$ is scattered
    into the rows $S$ of $W_\ell$ (no $U_S$ product), the network applied factor by factor."""
    w = w_l.at[rows, :].add(vv.T)
    f = wbar @ (w @ (wlow @ x))
    return jnp.mean(jnp.sum((y - f) ** 2, axis=0))


@partial(jax.jit, static_argnums=0)
def _autodiff(risk, wbar, w_l, wlow, x, y, rows, v, w_at):
    r"""``jax.grad`` of ``risk`` in $V$ at ``v``, and in the dense $W_\ell$ at ``w_at`` (the
    same risk with an empty selection); ``risk`` is a static argument, so a replaced risk
    function is traced anew."""
    gv = jax.grad(lambda vv: risk(wbar, w_l, wlow, x, y, rows, vv))(v)
    no_rows, no_v = rows[:0], v[:, :0]
    gw = jax.grad(lambda w: risk(wbar, w, wlow, x, y, no_rows, no_v))(w_at)
    return gv, gw


def _risk_np(weights: Sequence[np.ndarray], ell: int, S: Sequence[int], v, x, y) -> float:
    r"""$\hat{\mathcal R}_n$ in numpy, layer by layer through $W_1,\dots,W_L$ with the rows $S$ of
    $W_\ell$ replaced by $W_\ell[S]+V^\top$ (the route of the finite differences)."""
    z = x
    for i, w in enumerate(weights, start=1):
        if i == ell:
            w = np.array(w, dtype=np.float64)
            w[list(S), :] += v.T
        z = w @ z
    return float(np.mean(np.sum((y - z) ** 2, axis=0)))


def _seed_gradient(wbar, w_l, wlow, S, v, x, y) -> np.ndarray:
    r"""Section 4.2's closed form, sample by sample: $\partial\hat{\mathcal R}_n/\partial V
    = \sum_i(\underline W_{\ell-1}x_i)\,\overline g_i^\top U_S$ with the back-propagated error
    $\overline g_i = -\frac2n\overline W_{\ell+1}^\top(y_i-f(x_i))$ at layer $\ell$'s output
    ($U_S$ applied as the column selection $\overline g_i[S]$)."""
    w = np.array(w_l, dtype=np.float64)
    w[list(S), :] += v.T
    z = wlow @ x  # (d_{l-1}, n): the inputs of layer l
    n = x.shape[1]
    out = np.zeros((z.shape[0], len(S)))
    for i in range(n):
        gbar = (-2.0 / n) * (wbar.T @ (y[:, i] - wbar @ (w @ z[:, i])))
        out += np.outer(z[:, i], gbar[list(S)])
    return out


def _central_differences(instance, ell, S, v, data, step):
    r"""Central differences of :func:`_risk_np` in every entry of $V$ and, per entry, the size
    $(|\hat{\mathcal R}_n(V+he_{jk})|+|\hat{\mathcal R}_n(V-he_{jk})|)/(2h)$ its rounding scales
    with (the risk is quadratic in $V$, so central differences have no truncation error)."""
    fd, rnd = np.zeros_like(v), np.zeros_like(v)
    for j, k in np.ndindex(*v.shape):
        e = np.zeros_like(v)
        e[j, k] = step
        lp = _risk_np(instance.weights, ell, S, v + e, data.x, data.y)
        lm = _risk_np(instance.weights, ell, S, v - e, data.x, data.y)
        fd[j, k] = (lp - lm) / (2 * step)
        rnd[j, k] = (abs(lp) + abs(lm)) / (2 * step)
    return fd, rnd


def sec42_gradients(
    instance: DeepLinearInstance,
    ell: int,
    S: Sequence[int],
    v: np.ndarray,
    data: Sample,
    *,
    fd_step: float = 0.1,
    rotation_seed: int = 0,
) -> dict[str, np.ndarray]:
    r"""The Section 4.2 gradient of $\hat{\mathcal R}_n$ at $W_\ell+U_SV^\top$ by independent routes.

    Returns

    * ``grad_v``: $\partial\hat{\mathcal R}_n/\partial V$ by ``jax.grad`` of the risk written
      directly in $V$ (:func:`_risk_v_jax`: $V^\top$ scattered into the rows $S$);
    * ``closed_form``: the seed's formula $\sum_i(\underline W_{\ell-1}x_i)\overline g_i^\top U_S$,
      $\overline g_i=-\frac2n\overline W_{\ell+1}^\top(y_i-f(x_i))$, sample by sample in numpy;
    * ``finite_diff``: central differences (step ``fd_step``) of the risk evaluated layer by
      layer in numpy, exact up to rounding since the risk is quadratic in $V$, and
      ``fd_rounding``, the entrywise size $(|\hat{\mathcal R}_n^+|+|\hat{\mathcal R}_n^-|)/(2h)$
      that their rounding error is proportional to;
    * ``grad_w``: $G=\partial\hat{\mathcal R}_n/\partial W_\ell$ by ``jax.grad`` in the dense
      $W_\ell$; ``projected`` $=(U_S^\top G)^\top$ (the seed's $G_V^O$);
    * ``lstsq``: $\arg\min_{G_V}\|U_SG_V^\top-G\|_F$ solved by ``numpy.linalg.lstsq`` in the
      mixed basis $U_SQ$ ($Q$ a random invertible $s\times s$ matrix, orthogonal times a diagonal
      in $[1,2]$, from ``rotation_seed``): $G_V = H^\top Q^\top$ with
      $H=\arg\min_H\|U_SQH-G\|_F$, a generic dense solve that does not use the 0/1 structure of
      $U_S$ (on $U_S$ itself ``lstsq`` is exact by construction).
    """
    ell = instance.check_layer(ell)
    d = instance.dims[ell]
    chans = check_channels(S, d)
    va = np.asarray(as_matrix(v, "v"))
    if va.shape != (instance.dims[ell - 1], len(chans)):
        raise ValueError(
            f"v must have shape (d_prev, |S|) = {(instance.dims[ell - 1], len(chans))}, "
            f"got {va.shape}"
        )
    fd_step = check_float(fd_step, "fd_step", lo=0.0, lo_open=True)
    wbar, wlow = instance.above(ell), instance.below(ell)
    w_l = np.asarray(instance.weights[ell - 1], dtype=np.float64)
    x, y = np.asarray(data.x, np.float64), np.asarray(data.y, np.float64)
    rows = jnp.asarray(chans, dtype=jnp.int32)
    w_at = w_l + selection_matrix(chans, d) @ va.T
    gv, gw = (np.asarray(g) for g in _autodiff(_risk_v_jax, wbar, w_l, wlow, x, y, rows, va, w_at))
    rot = np.random.default_rng(rotation_seed)
    q = np.linalg.qr(rot.standard_normal((len(chans),) * 2))[0]
    q = q * (1.0 + rot.uniform(size=len(chans)))  # columns scaled: not a selection even for s=1
    h = np.linalg.lstsq(selection_matrix(chans, d) @ q, gw, rcond=None)[0]
    fd, rnd = _central_differences(instance, ell, chans, va, data, fd_step)
    return {
        "grad_v": gv,
        "closed_form": _seed_gradient(wbar, w_l, wlow, chans, va, x, y),
        "finite_diff": fd,
        "fd_rounding": rnd,
        "grad_w": gw,
        "projected": gw[list(chans), :].T,
        "lstsq": h.T @ q.T,
    }


# --- Section 3.1: coupled structures ----------------------------------------------------------
def channel_permutation(d: int, S: Sequence[int]) -> np.ndarray:
    """The permutation putting channels ``S`` first (in the given order), the rest after, ascending."""
    d = check_int(d, "d", lo=1)
    chans = check_channels(S, d)
    rest = [a for a in range(d) if a not in set(chans)]
    return np.array([*chans, *rest], dtype=int)


def permute_coupled(
    weights: Sequence[np.ndarray], ell: int, perm: Sequence[int]
) -> tuple[np.ndarray, ...]:
    r"""Co-permutes the coupled pair $(W_\ell, W_{\ell+1})$: rows of $W_\ell$, columns of $W_{\ell+1}$.

    $W_{\ell+1}P^\top PW_\ell = W_{\ell+1}W_\ell$, so the network's output is unchanged
    (Section 3.1, "permutation invariance of coupled structures"). Needs $\ell<L$.
    """
    ws = [np.asarray(w, float) for w in weights]
    ell = check_int(ell, "ell", lo=1, hi=len(ws) - 1)
    d = ws[ell - 1].shape[0]
    perm = np.asarray(perm, dtype=int)
    if sorted(perm.tolist()) != list(range(d)):
        raise ValueError(f"perm must be a permutation of range({d}), got {perm.tolist()}")
    out = list(ws)
    out[ell - 1] = ws[ell - 1][perm, :]
    out[ell] = ws[ell][:, perm]
    return tuple(out)


def s2ft_sparse_update(
    w_ell: Float[ArrayLike, "d_ell d_prev"], S: Sequence[int], v: Float[ArrayLike, "d_prev s"]
) -> Float[np.ndarray, "d_ell d_prev"]:
    r"""$W_\ell + U_SV^\top$ (scatter of $V^\top$ into the rows $S$)."""
    w_ell = np.asarray(as_matrix(w_ell, "w_ell"))
    us = selection_matrix(S, w_ell.shape[0])
    va = np.asarray(as_matrix(v, "v"))
    if va.shape != (w_ell.shape[1], us.shape[1]):
        raise ValueError(
            f"v must have shape (d_prev, |S|) = {(w_ell.shape[1], us.shape[1])}, got {va.shape}"
        )
    return w_ell + us @ va.T


def s2ft_dense_update(
    weights: Sequence[np.ndarray], ell: int, S: Sequence[int], v: np.ndarray
) -> tuple[np.ndarray, ...]:
    r"""S²FT's dense-only update (Section 3.2): permute $S$ to the front, add $V^\top$ to the
    leading $s\times d_{\ell-1}$ block of $PW_\ell$ (a dense slice), and return the permuted
    network $(\dots, PW_\ell + [V^\top;0], W_{\ell+1}P^\top, \dots)$.

    Its output equals that of the sparse update $W_\ell+U_SV^\top$ in the original order.
    """
    ws = [np.asarray(w, float) for w in weights]
    perm = channel_permutation(ws[ell - 1].shape[0], S)
    out = list(permute_coupled(ws, ell, perm))
    s = len(tuple(S))
    block = out[ell - 1].copy()
    block[:s, :] = block[:s, :] + np.asarray(v).T
    out[ell - 1] = block
    return tuple(out)
