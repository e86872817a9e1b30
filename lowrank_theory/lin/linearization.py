r"""Regularized fine-tuning, its linearisation and the bounds of Theorems 1-4 (seed 003).

Conventions (pinned; seed 003, "Problem Formulation" and Lemma 3):

* $\tilde R(\theta) = \|f_\theta(x^*) - y^*\|_2^2$ (sum of squares, no $\tfrac12$, no $\tfrac1n$);
  $\nabla\tilde R = 2 J^\top (f_\theta(x^*) - y^*)$.
* Split update of Lemma 3 (``update="split"``, the seed's scheme):
  $\tilde\theta_{t+1} = \theta_t - \eta\nabla\tilde R(\theta_t)$,
  $\theta_{t+1} = \theta_0 + (1-\lambda_{t+1}\eta)(\tilde\theta_{t+1}-\theta_0)$.
  ``update="joint"``: plain GD on $\tilde R + \tfrac\lambda2\|\theta-\theta_0\|^2$.
* Selective scheme: $\lambda_{t+1} = \lambda$ if $\nabla\tilde R(\theta_t)\cdot(\theta_t-\theta_0)
  \ge 0$, else $0$; non-selective: $\lambda_t \equiv \lambda$.
* Gradient flow (Lemma 3): $\dot\theta = -\nabla\tilde R(\theta)^\top - \lambda_t(\theta-\theta_0)$,
  integrated by classical RK4 with $\lambda_t$ frozen over each step (chosen at the step's start).
* Linearised model $\bar f_{\bar\theta}(x) = f_{\theta_0}(x) + \langle\nabla f_{\theta_0}(x),
  \bar\theta-\theta_0\rangle$ (exact, ``jax.jvp``), trained by the same scheme; the gap is
  $\Delta_t = \|f_{\theta_t}(x^*) - \bar f_{\bar\theta_t}(x^*)\|_2$.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float

from ..core.validation import as_array, check_float
from .ntk import check_model_inputs

__all__ = [
    "FinetuneTrace",
    "flow_loss_derivative",
    "gradient_flow",
    "linearize",
    "regularized_finetune",
    "theorem2_bound",
    "theorem3_bound",
    "theorem3_bound_corrected",
    "theorem4_gap_bound",
    "theorem4_threshold",
    "theorem4_time",
]


def linearize(f: Callable, params0: Any) -> Callable:
    r"""$\bar f(\theta, x) = f(\theta_0, x) + \langle\nabla_\theta f(\theta_0, x), \theta-\theta_0\rangle$ by ``jax.jvp``."""

    def fbar(params, x):
        delta = jax.tree.map(lambda a, b: a - b, params, params0)
        y0, dy = jax.jvp(lambda p: f(p, x), (params0,), (delta,))
        return y0 + dy

    return fbar


class FinetuneTrace(NamedTuple):
    """Per-step records of :func:`regularized_finetune` / :func:`gradient_flow` (index t = 0..T)."""

    params: Any  #: final parameters (pytree)
    time: Array  #: t (steps) or continuous time
    loss: Array  #: $\tilde R(\theta_t)$
    dist: Array  #: $\|\theta_t-\theta_0\|_2$
    lam: Array  #: $\lambda_t$ in effect on the step ending at t (0 at t = 0)
    lin_loss: Array  #: $\tilde R$ of the linearised model at $\bar\theta_t$
    lin_dist: Array  #: $\|\bar\theta_t - \theta_0\|_2$
    gap: Array  #: $\|f_{\theta_t}(x^*) - \bar f_{\bar\theta_t}(x^*)\|_2$
    pred: Array  #: $f_{\theta_T}(x_{\mathrm{eval}})$ (final)
    lin_pred: Array  #: $\bar f_{\bar\theta_T}(x_{\mathrm{eval}})$ (final)


def _validate(x, y, lam, lr=None, steps=None):
    xx = as_array(x, "x")
    yy = as_array(y, "y")
    if xx.ndim < 1 or yy.shape != (xx.shape[0],):
        raise ValueError(f"y must have shape ({xx.shape[0] if xx.ndim else '?'},), got {yy.shape}")
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite non-negative regularization strength, got {lam}")
    if lr is not None and (not math.isfinite(float(lr)) or float(lr) <= 0):
        raise ValueError(f"lr must be positive, got {lr}")
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps}")
    return xx, yy, lam


_RUNNERS: dict = {}


def _key_of(f):
    try:
        hash(f)
        return f
    except TypeError:
        return id(f)


def _runner(f, params0, kind, *static):
    r"""One jitted scan per (model, parameter structure, scheme, length): no recompiles when only
    the data, $\theta_0$, $\lambda$ or the step size change."""
    theta0, unravel = ravel_pytree(params0)
    key = (_key_of(f), jax.tree.structure(params0), theta0.shape, kind, static)
    if key in _RUNNERS:
        return _RUNNERS[key]
    selective, steps, update = static

    def make(theta0, x, y):
        fbar = linearize(f, unravel(theta0))

        def preds(theta, model):
            return jax.vmap(lambda xi: model(unravel(theta), xi))(x)

        def grad(theta, model):
            return jax.grad(lambda t: jnp.sum((preds(t, model) - y) ** 2))(theta)

        def lam_of(theta, model, lam):
            on = jnp.logical_or(not selective, jnp.vdot(grad(theta, model), theta - theta0) >= 0)
            return jnp.where(on, lam, 0.0)

        def record(theta, tbar, lt):
            r = preds(theta, f) - y
            rb = preds(tbar, fbar) - y
            return (
                jnp.sum(r**2),
                jnp.linalg.norm(theta - theta0),
                lt,
                jnp.sum(rb**2),
                jnp.linalg.norm(tbar - theta0),
                jnp.linalg.norm(r - rb),
            )

        return fbar, preds, grad, lam_of, record

    def run(theta0, x, y, xe, lam, h):
        fbar, _preds, grad, lam_of, record = make(theta0, x, y)

        def step(theta, model):
            lt = lam_of(theta, model, lam)
            if kind == "flow":

                def rhs(t):
                    return -grad(t, model) - lt * (t - theta0)

                k1 = rhs(theta)
                k2 = rhs(theta + 0.5 * h * k1)
                k3 = rhs(theta + 0.5 * h * k2)
                k4 = rhs(theta + h * k3)
                return theta + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), lt
            g = grad(theta, model)
            if update == "split":
                return theta0 + (1 - lt * h) * (theta - h * g - theta0), lt
            return theta - h * (g + lt * (theta - theta0)), lt

        def body(carry, _):
            th, tb = carry
            th, lt = step(th, f)
            tb, _ = step(tb, fbar)
            return (th, tb), record(th, tb, lt)

        first = record(theta0, theta0, jnp.zeros(()))
        (th, tb), recs = jax.lax.scan(body, (theta0, theta0), None, length=steps)
        recs = tuple(jnp.concatenate([a[None], b]) for a, b in zip(first, recs, strict=True))
        pe = jax.vmap(lambda xi: f(unravel(th), xi))(xe)
        pbe = jax.vmap(lambda xi: fbar(unravel(tb), xi))(xe)
        return th, recs, pe, pbe

    fn = jax.jit(run)
    _RUNNERS[key] = (fn, unravel)
    return fn, unravel


def _trace(f, params0, kind, static, args, times) -> FinetuneTrace:
    """Runs the cached scan of :func:`_runner` on ``args = (x, y, x_eval, lam, step)``."""
    fn, unravel = _runner(f, params0, kind, *static)
    theta0, _ = ravel_pytree(params0)
    th, recs, pe, pbe = fn(theta0, *args)
    return FinetuneTrace(unravel(th), times, *recs, pe, pbe)


def regularized_finetune(
    f: Callable,
    params0: Any,
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    *,
    lam: float,
    lr: float,
    steps: int,
    selective: bool = False,
    update: Literal["split", "joint"] = "split",
    x_eval: Float[ArrayLike, "m d"] | None = None,
) -> FinetuneTrace:
    r"""Regularized fine-tuning of ``f`` from ``params0`` and of its linearisation, side by side.

    One jitted ``lax.scan`` runs both the model and its linearisation $\bar f$ with the same
    scheme (see module docstring), recording $\tilde R$, $\|\theta_t-\theta_0\|$, $\lambda_t$ and
    the gap $\|f_{\theta_t}(x^*) - \bar f_{\bar\theta_t}(x^*)\|$ at every step.

    Args:
        f: ``f(params, x) -> scalar``; params0: $\theta_0$ (any pytree).
        x, y: training inputs ``(n, d)`` and targets ``(n,)``.
        lam: $\lambda \ge 0$; lr: step $\eta > 0$; steps: number of updates.
        selective: the seed's selective scheme (regularise only when
            $\nabla\tilde R(\theta_t)\cdot(\theta_t-\theta_0)\ge 0$).
        update: ``"split"`` (Lemma 3's two-stage step) or ``"joint"`` (plain GD on the sum).
        x_eval: inputs for the final predictions (default ``x``).

    References: seed 003, "Problem Formulation" (split optimisation), Theorem 1 (selective scheme),
    Lemma 3 (discrete update).
    """
    xx, yy, lam = _validate(x, y, lam, lr, steps)
    if xx.ndim == 2:
        check_model_inputs(f, params0, xx, "x")
    if update not in ("split", "joint"):
        raise ValueError(f"update must be 'split' or 'joint', got {update!r}")
    xe = xx if x_eval is None else as_array(x_eval, "x_eval")
    static = (bool(selective), int(steps), update)
    return _trace(f, params0, "gd", static, (xx, yy, xe, lam, float(lr)), jnp.arange(steps + 1.0))


def gradient_flow(
    f: Callable,
    params0: Any,
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    *,
    lam: float,
    t_end: float,
    n_steps: int,
    selective: bool = False,
) -> FinetuneTrace:
    r"""The gradient-flow limit of Lemma 3 for the model and its linearisation (RK4).

    $\dot\theta = -\nabla\tilde R(\theta) - \lambda_t(\theta-\theta_0)$ on $[0, t_{\rm end}]$ with
    ``n_steps`` classical Runge-Kutta steps; for ``selective=True`` $\lambda_t$ is chosen at the
    start of every step from the sign of $\nabla\tilde R\cdot(\theta-\theta_0)$ (the right-hand
    side is discontinuous there, so the scheme is first order near switches). Estimate the
    integration error by comparing ``n_steps`` with ``2 * n_steps``.
    """
    xx, yy, lam = _validate(x, y, lam)
    if xx.ndim == 2:
        check_model_inputs(f, params0, xx, "x")
    if not (t_end > 0) or int(n_steps) < 1:
        raise ValueError("t_end must be > 0 and n_steps >= 1")
    static = (bool(selective), int(n_steps), "split")
    h = float(t_end) / int(n_steps)
    times = jnp.linspace(0.0, float(t_end), int(n_steps) + 1)
    return _trace(f, params0, "flow", static, (xx, yy, xx, lam, h), times)


def flow_loss_derivative(
    f: Callable, params0: Any, params: Any, x, y, *, lam_t: float
) -> tuple[float, float]:
    r"""$\tfrac{d}{dt}\|f_{\theta}(x^*)-y^*\|^2$ along Lemma 3's flow at $\theta$, and the switch.

    Returns ``(derivative, s)`` with $s = \nabla\tilde R(\theta)\cdot(\theta-\theta_0)$; the
    derivative is the exact directional derivative $\nabla\tilde R\cdot\dot\theta$ (autodiff), which
    equals $-4 r^\top k_\theta r - \lambda_t s$ (proof of Theorem 1).
    """
    xx, yy, _ = _validate(x, y, lam_t)
    theta0, unravel = ravel_pytree(params0)
    theta, _ = ravel_pytree(params)

    def loss(t):
        return jnp.sum((jax.vmap(lambda xi: f(unravel(t), xi))(xx) - yy) ** 2)

    g = jax.grad(loss)(theta)
    u = theta - theta0
    return float(jnp.vdot(g, -g - lam_t * u)), float(jnp.vdot(g, u))


# --------------------------------------------------------------------------------------------
# bounds of Theorems 2-4 (flow statements; Lip constants from lowrank_theory.lin.lipschitz)
# --------------------------------------------------------------------------------------------
def theorem2_bound(
    lip_f: float, residual0: float, times: Float[ArrayLike, " T"], lams: Float[ArrayLike, " T"]
) -> np.ndarray:
    r"""Corrected Theorem 2: $\|\theta_t-\theta_0\| \le 2\,\mathrm{Lip}(f)\,\|y(0)-y^*\|
    \int_0^t e^{-(\Lambda_t-\Lambda_s)}ds$ for a piecewise-constant $\lambda_s$ (``lams[k]`` in
    effect on $(t_{k-1}, t_k]$), evaluated exactly piece by piece.

    The statement as written has the *current* residual $\|f_{\theta_t}(x^*)-y^*\|$; that version
    is false (claim ``lin.theorem2.distance``); pass the current residual to evaluate it.
    """
    t = np.asarray(as_array(times, "times", ndim=1))
    lam = np.asarray(as_array(lams, "lams", ndim=1))
    if lam.shape != t.shape:
        raise ValueError(f"lams must have one entry per time, shape {t.shape}, got {lam.shape}")
    integral = np.zeros_like(t)
    for k in range(1, t.size):
        h = t[k] - t[k - 1]
        lk = lam[k]
        # I_k = e^{-lk h} I_{k-1} + int_0^h e^{-lk (h - s)} ds
        piece = h if lk == 0 else -math.expm1(-lk * h) / lk
        integral[k] = math.exp(-lk * h) * integral[k - 1] + piece
    return 2 * lip_f * residual0 * integral


def theorem3_bound(
    t: Float[ArrayLike, " T"], lam: float, lip_f: float, lip_grad: float, residual0: float
) -> np.ndarray:
    r"""Theorem 3 as stated: $\Delta(t) \le b\,(t - (1-e^{-\lambda t})/\lambda)$,
    $b = 2\mathrm{Lip}(f)^2\|y(0)-y^*\|(\tfrac4\lambda\mathrm{Lip}(\nabla f)\|y(0)-y^*\|+1)$."""
    t = np.asarray(t, dtype=float)
    if lam <= 0:
        raise ValueError("Theorem 3 needs lam > 0")
    b = 2 * lip_f**2 * residual0 * (4 / lam * lip_grad * residual0 + 1)
    return b * (t + np.expm1(-lam * t) / lam)


def theorem3_bound_corrected(t, lam, lip_f, lip_grad, residual0) -> np.ndarray:
    r"""Theorem 3 with the proof's dropped term restored: the linearised model's own
    regulariser $\lambda\nabla\bar f\,(\bar\theta_t-\theta_0)$ adds $2\mathrm{Lip}(f)^2\|y(0)-y^*\|
    (1-e^{-\lambda t})$ to $\dot\Delta$, i.e. $b' = 2\mathrm{Lip}(f)^2\|y(0)-y^*\|
    (\tfrac4\lambda\mathrm{Lip}(\nabla f)\|y(0)-y^*\|+2)$."""
    t = np.asarray(t, dtype=float)
    b = 2 * lip_f**2 * residual0 * (4 / lam * lip_grad * residual0 + 2)
    return b * (t + np.expm1(-lam * t) / lam)


def theorem4_threshold(residual0: float, lip_f: float, radius: float) -> float:
    r"""$\lambda_o = 2\|f_{\theta_0}(x^*)-y^*\|\,\mathrm{Lip}(f)/r$ (Theorem 4)."""
    check_float(radius, "radius", lo=0.0, lo_open=True)
    return 2 * residual0 * lip_f / radius


def theorem4_time(lam: float, lam_o: float) -> float:
    r"""Time the flow is guaranteed to stay in the $r$-ball: $\infty$ if $\lambda\ge\lambda_o$,
    else $\tfrac1\lambda\ln\frac{1}{1-\lambda/\lambda_o}$ ($t$ for $\lambda = 0$: $r/(2\|r_0\|L)$
    $= 1/\lambda_o$)."""
    if lam >= lam_o:
        return math.inf
    if lam == 0:
        return 1 / lam_o
    return -math.log1p(-lam / lam_o) / lam


def theorem4_gap_bound(t, residual0, lip_f, lip_grad, radius, *, reading="norm") -> np.ndarray:
    r"""Theorem 4's linear gap bound $2\mathrm{Lip}(f)\,c\,(2r\mathrm{Lip}(\nabla f)+\mathrm{Lip}(f))\,t$
    with $c = \|y(0)-y^*\|$ (``reading="norm"``, what the proof gives) or
    $c = \tilde R(\theta_0) = \|y(0)-y^*\|^2$ (``"as_written"``)."""
    c = residual0 if reading == "norm" else residual0**2
    return 2 * lip_f * c * (2 * radius * lip_grad + lip_f) * np.asarray(t, dtype=float)
