r"""Deep matrix factorization and completion by gradient descent (seed 004, Sections 2-3).

The model is the depth-$L$ product (seed 004, eq. (1))

$$f(\Theta) = W_L W_{L-1}\cdots W_1 = W_{L:1},\qquad W_l\in\mathbb{R}^{d_l\times d_{l-1}},$$

stored as a tuple ``(W_1, ..., W_L)`` (first factor first, as in the seed). The losses are

* factorization (2): $\ell(\Theta) = \tfrac12\|f(\Theta)-\Phi\|_F^2$;
* completion (10): $\ell_{\mathrm{mc}}(\Theta) = \tfrac12\|\Omega\odot(f(\Theta)-\Phi)\|_F^2$.

**Loss normalisation.** Every loss here is the seed's: ½ times the *sum* of squares. The
reference code for the published figures used ½·mean over all $d^2$ entries, i.e. the loss
divided by $d^2$, whose gradient is $d^{-2}$ times ours. GD with step $\eta_{\mathrm{ref}}$ on
their loss is GD with step $\eta = \eta_{\mathrm{ref}}/d^2$ on ours, iterate for iterate; the
learning rates in the figure scripts are stated in our normalisation with the reference value
beside them (:func:`lr_from_mean_loss`).

Gradient descent with weight decay $\lambda\ge 0$ is update (4)/(15),

$$W_l(t+1) = (1-\eta_l\lambda)W_l(t) - \eta_l\,W_{L:l+1}^\top(t)\,E(t)\,W_{l-1:1}^\top(t),
\qquad E(t) = \Omega\odot(W_{L:1}(t)-\Phi),$$

(with $\Omega = \mathbf 1$ for factorization), implemented with the $3(L-1)$ matrix products of
reverse-mode differentiation (prefix products forward, the back-propagated error backward) and
run as a jitted :func:`jax.lax.scan` over records with an inner :func:`jax.lax.fori_loop` over
``record_every`` steps, so that only the requested quantities are stored. Per-layer rates
$\eta_l$ let the same engine run the compressed completion (11), whose outer factors move at
$\gamma\eta$ (:mod:`lowrank_theory.dmf.compression`).

How the masked residual of a step is computed (dense, native kernel, entries packed once per
run) is not decided here: :func:`loss_and_gradients` asks
:func:`~lowrank_theory.dmf.masked_products.step_path` which formulation to take and
:func:`~lowrank_theory.dmf.masked_products.residual_products` for the products, and
:func:`run_gd` hands its compiled loop (:func:`gd_scan`) what
:func:`~lowrank_theory.dmf.masked_products.prepare_observed` returns. The recursion (6) and the
Fig. 7 rank are in :mod:`lowrank_theory.dmf.spectra`, the chunked runs (:class:`Chunking`,
:class:`RunState`, :func:`run_chunked`) in :mod:`lowrank_theory.dmf.chunking` (both re-exported
here under their earlier paths).

References: seed 004 (Yaras et al., *Compressible dynamics in deep overparameterized low-rank
learning & adaptation*), eqs. (1)-(4), (10), (13)-(15).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.linalg import chain_product, random_semi_orthogonal
from ..core.precision import DTYPE, require_x64
from ..core.validation import as_matrix, check_int
from . import masked_products
from .chunking import Chunking, RunState, run_chunked
from .spectra import check_scales, rho_divergence
from .spectra import numerical_rank_fig7 as numerical_rank_fig7  # earlier releases' path
from .spectra import rho_sequence as rho_sequence  # earlier releases' path

__all__ = [
    "Chunking",
    "GDResult",
    "RunState",
    "check_schedule",
    "check_weights",
    "contracted_gradients",
    "end_to_end",
    "factorization_loss",
    "gd_scan",
    "gd_scan_traces",
    "gd_step",
    "gd_steps",
    "loss_and_gradients",
    "lr_from_mean_loss",
    "nonlinear_factorization",
    "nonlinear_gradient",
    "numerical_rank_fig7",
    "orthogonal_init",
    "rho_sequence",
    "run_chunked",
    "run_completion",
    "run_factorization",
    "run_gd",
    "validate_mask",
    "validate_target",
]

RECORDABLE = ("loss", "recovery", "end_to_end", "weights", "singular_values")


# ----------------------------------------------------------------------------------------------
# initialisation, products, losses
# ----------------------------------------------------------------------------------------------
def orthogonal_init(
    key: Array, shapes_or_d: int | Sequence[int], depth: int, eps: float | Sequence[float]
) -> tuple[Float[Array, "d_l d_lm1"], ...]:
    r"""Scaled orthogonal initialisation (3): $W_l(0)W_l(0)^\top = W_l(0)^\top W_l(0)=\epsilon_l^2 I$.

    Each factor is $\epsilon_l Q_l$ with $Q_l$ Haar-distributed. For rectangular layers
    ($d_l\ne d_{l-1}$, only outside Theorem 2.1, e.g. the narrow factorizations of Fig. 10)
    $Q_l$ has orthonormal columns (tall) or rows (wide), so the identity holds on the smaller
    side only.

    Args:
        key: a :func:`jax.random.key`; split into one key per layer.
        shapes_or_d: an int $d$ (all layers $d\times d$, the seed's setting) or the widths
            $(d_0, d_1, \dots, d_L)$, giving $W_l\in\mathbb{R}^{d_l\times d_{l-1}}$.
        depth: $L\ge 1$.
        eps: $\epsilon_l>0$, one scalar for all layers or one per layer.

    Returns:
        ``(W_1, ..., W_L)``.

    Examples:
        >>> import jax, numpy as np
        >>> from lowrank_theory.dmf.factorization import orthogonal_init
        >>> ws = orthogonal_init(jax.random.key(0), 4, 3, [1e-3, 1e-2, 1.0])
        >>> [round(float(np.linalg.norm(w, 2)), 12) for w in ws]
        [0.001, 0.01, 1.0]
    """
    depth = check_int(depth, "depth", lo=1)
    if isinstance(shapes_or_d, int | np.integer):
        dims = [check_int(shapes_or_d, "d", lo=1)] * (depth + 1)
    else:
        dims = [check_int(x, "shapes_or_d[i]", lo=1) for x in shapes_or_d]
        if len(dims) != depth + 1:
            raise ValueError(f"widths must list d_0..d_L ({depth + 1} ints), got {len(dims)}")
    eps_l = check_scales(eps, depth)
    keys = jax.random.split(key, depth)
    out = []
    for l in range(depth):
        out.append(eps_l[l] * random_semi_orthogonal(keys[l], dims[l + 1], dims[l]))
    return tuple(out)


def end_to_end(weights: Sequence[ArrayLike]) -> Array:
    r"""$f(\Theta) = W_L\cdots W_1$ for ``weights = (W_1, ..., W_L)`` (a JAX array).

    :func:`~lowrank_theory.core.linalg.chain_product` on the factors as JAX arrays (so NumPy
    factors are multiplied by XLA too, as everywhere in GD). Shapes are checked statically
    (it also runs under ``jit``): factors that do not chain raise ``ValueError`` naming them.
    """
    require_x64()
    ws = [jnp.asarray(w) for w in weights]
    if not ws:
        raise ValueError("weights must hold at least one layer (depth >= 1)")
    return chain_product(ws, name="weights")


def validate_target(target, name: str = "target") -> Array:
    """A finite float64 matrix (non-finite targets are refused with a clear error)."""
    return as_matrix(target, name)


def validate_mask(mask, shape: tuple[int, int]) -> Array:
    r"""The observation mask $\Omega\in\{0,1\}^{d\times d}$ as a boolean array.

    Refuses masks of the wrong shape, with entries other than 0/1, or with no observed entry.
    """
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ValueError(f"mask must have the target's shape {tuple(shape)}, got {m.shape}")
    if m.dtype != bool:
        if not np.all(np.isfinite(m.astype(float))) or not np.all((m == 0) | (m == 1)):
            raise ValueError("mask entries must be 0/1 (or booleans)")
        m = m.astype(bool)
    if not m.any():
        raise ValueError("mask observes no entry: the completion loss is identically zero")
    return jnp.asarray(m)


def check_weights(weights, square: bool = False) -> tuple[Array, ...]:
    r"""The factors $(W_1,\dots,W_L)$ as finite float64 matrices whose product is defined.

    Raises ValueError for no factor, a non-finite or non-matrix factor, a non-square one when
    ``square`` (Theorem 2.1's setting), or shapes that do not chain
    ($W_l\in\mathbb R^{d_l\times d_{l-1}}$).
    """
    ws = tuple(as_matrix(w, f"weights[{i}]", square=square) for i, w in enumerate(weights))
    if not ws:
        raise ValueError("weights must hold at least one layer (depth >= 1)")
    for i in range(1, len(ws)):
        if ws[i].shape[1] != ws[i - 1].shape[0]:
            raise ValueError(
                f"weights[{i}] has shape {ws[i].shape} but weights[{i - 1}] outputs "
                f"{ws[i - 1].shape[0]} rows: the product W_L...W_1 is undefined"
            )
    return ws


def factorization_loss(weights, target, mask=None) -> Array:
    r"""$\tfrac12\|\Omega\odot(W_{L:1}-\Phi)\|_F^2$ (sum, not mean; $\Omega=\mathbf 1$ if None)."""
    e = end_to_end(weights) - jnp.asarray(target)
    if mask is not None:
        e = jnp.where(mask, e, 0.0)
    return 0.5 * jnp.sum(e * e)


def lr_from_mean_loss(lr_mean: float, d_rows: int, d_cols: int | None = None) -> float:
    r"""Our step for a step ``lr_mean`` on the reference code's ½·mean loss: $\eta_{ref}/(d_r d_c)$."""
    check_int(d_rows, "d_rows", lo=1)
    if d_cols is not None:
        check_int(d_cols, "d_cols", lo=1)
    return float(lr_mean) / (d_rows * (d_rows if d_cols is None else d_cols))


# ----------------------------------------------------------------------------------------------
# one GD step (explicit reverse mode: 3(L-1) matrix products)
# ----------------------------------------------------------------------------------------------
def contracted_gradients(weights, target, mask, packed=None):
    r"""Loss and gradients of a thin chain with small middle factors, by the small products first.

    The ``"thin-small"`` path of :func:`loss_and_gradients`
    (:func:`~lowrank_theory.dmf.masked_products.step_path`): a mask, a thin last factor and
    middle factors of at most ``MAX_WIDTH`` on each side.

    With $M = W_{L-1}\cdots W_2$ (small), $H = W_L^\top E$ and $C = H W_1^\top$:
    $\nabla_{W_L} = E (M W_1)^\top$ (the kernel's $G$), $\nabla_{W_1} = M^\top H$ and
    $\nabla_{W_l} = A_l^\top C B_l^\top$ for the middle factors ($A_l$, $B_l$ the products of
    the middle factors above and below $W_l$). Three products with a side of length $d$
    ($M W_1$, $H W_1^\top$, $M^\top H$) instead of the $3(L-1)$ of back-propagation, the rest
    small x small: the same gradients (to rounding), less than half the chain's time at
    d = 1000, k = 10, L = 3 (measured; XLA's thin d x k products cost 5-15 us each here).
    """
    w1, mid, wl = weights[0], weights[1:-1], weights[-1]
    below = [None]  # below[i] = mid[i-1] ... mid[0] (None = identity)
    for w in mid:
        below.append(w if below[-1] is None else w @ below[-1])
    above = [None]  # above[i] = mid[-1] ... mid[-i], i < len(mid)
    for w in reversed(mid[1:]):
        above.append(w if above[-1] is None else above[-1] @ w)
    m = below[-1]
    p = w1 if m is None else m @ w1
    loss, g_last, h = masked_products.residual_products(wl, p, mask, target, packed)
    grads = [h if m is None else m.T @ h]
    if mid:
        c = h @ w1.T  # W_L^T E W_1^T
        for i in range(len(mid)):
            a, b = above[len(mid) - 1 - i], below[i]
            g = c if a is None else a.T @ c
            grads.append(g if b is None else g @ b.T)
    grads.append(g_last)
    return loss, tuple(grads)


def loss_and_gradients(weights, target, mask, packed=None):
    r"""Loss and gradients of ½‖Ω⊙(W_{L:1} − Φ)‖² by prefix products and back-propagation.

    The formulation is the one :func:`~lowrank_theory.dmf.masked_products.step_path` names.
    With a mask and a thin last factor ($W_L$ of width $k\le 32$, e.g. the compressed
    factorization (11)), the residual enters only through $\ell$, $E\,W_{L-1:1}^\top$ and
    $W_L^\top E$: :func:`~lowrank_theory.dmf.masked_products.residual_products` computes them
    on the observed entries (native CPU kernel) or densely, with the same result to rounding;
    ``packed`` (:func:`~lowrank_theory.dmf.masked_products.prepare_observed`) gives the kernel
    the observed entries packed once. When the middle factors are small too, the chain is
    contracted in their coordinates (:func:`contracted_gradients`).
    """
    n = len(weights)
    path = masked_products.step_path(weights, mask)
    if path == "thin-small":
        return contracted_gradients(weights, target, mask, packed)
    thin = path == "thin"
    prefix = [None]  # prefix[l] = W_{l:1} (None = identity)
    p = weights[0]
    prefix.append(p)
    for w in weights[1 : n - 1 if thin else n]:
        p = w @ p
        prefix.append(p)
    grads = [None] * n
    if thin:
        loss, grads[n - 1], b = masked_products.residual_products(
            weights[-1], p, mask, target, packed
        )
        top = n - 2
    else:
        e = p - target
        if mask is not None:
            e = jnp.where(mask, e, 0.0)
        loss = 0.5 * jnp.sum(e * e)
        b = e  # b = W_{L:l+1}^T E
        top = n - 1
    for l in range(top, -1, -1):
        pre = prefix[l]
        grads[l] = b if pre is None else b @ pre.T
        if l > 0:
            b = weights[l].T @ b
    return loss, tuple(grads)


def gd_step(weights, target, mask, lrs, decays, packed=None):
    r"""One step of (15) with per-layer rates ``lrs`` and decays ``decays``; returns (loss, new).

    ``packed``: :func:`~lowrank_theory.dmf.masked_products.prepare_observed` of this ``target``
    and ``mask`` (the kernel then reads the values packed there, not ``target``); None: the
    mask is read every step."""
    loss, grads = loss_and_gradients(weights, target, mask, packed)
    new = tuple(
        (1.0 - lr * lam) * w - lr * g
        for w, g, lr, lam in zip(weights, grads, lrs, decays, strict=True)
    )
    return loss, new


def _record(names, weights, target, mask, truth, custom):
    out = {}
    need_f = any(n in names for n in ("loss", "recovery", "end_to_end"))
    f = end_to_end(weights) if need_f else None
    if "loss" in names:
        e = f - target
        if mask is not None:
            e = jnp.where(mask, e, 0.0)
        out["loss"] = 0.5 * jnp.sum(e * e)
    if "recovery" in names:
        ref = target if truth is None else truth
        out["recovery"] = jnp.linalg.norm(f - ref) / jnp.linalg.norm(ref)
    if "end_to_end" in names:
        out["end_to_end"] = f
    if "weights" in names:
        out["weights"] = tuple(weights)
    if "singular_values" in names:
        out["singular_values"] = tuple(jnp.linalg.svd(w, compute_uv=False) for w in weights)
    if custom is not None:
        out["custom"] = custom(weights)
    return out


_TRACES = [0]


def gd_scan_traces() -> int:
    """How many times :func:`gd_scan` has been traced (compiled) in this process.

    For tests and benchmarks that check a compiled GD loop is reused (e.g. by runs on other
    masks of the same size and density, whose packed entries share one padded capacity).
    """
    return _TRACES[0]


@partial(jax.jit, static_argnames=("n_records", "stride", "names", "custom"))
def gd_scan(
    weights, target, mask, truth, lrs, decays, packed=None, *, n_records, stride, names, custom
):
    r"""The compiled GD loop of :func:`run_gd`: ``n_records`` records ``stride`` steps apart.

    A jitted :func:`jax.lax.scan` over records with an inner :func:`jax.lax.fori_loop` of
    :func:`gd_step`; no input checks (:func:`run_gd` makes them). ``lrs``, ``decays``: per-layer
    arrays; ``packed``: :func:`~lowrank_theory.dmf.masked_products.prepare_observed` of this
    problem (or None); ``names``: sorted record names among ``RECORDABLE``; ``custom``: a
    jit-able ``weights -> pytree`` or None. Returns (final weights, records with a leading axis
    of ``n_records + 1``, the first at iteration 0). Vmappable over a batch of problems
    (:func:`~lowrank_theory.dmf.completion.run_gd_batch`).
    """
    _TRACES[0] += 1

    def inner(_, ws):
        return gd_step(ws, target, mask, lrs, decays, packed)[1]

    def outer(ws, _):
        ws = jax.lax.fori_loop(0, stride, inner, ws)
        return ws, _record(names, ws, target, mask, truth, custom)

    rec0 = _record(names, weights, target, mask, truth, custom)
    final, recs = jax.lax.scan(outer, weights, None, length=n_records)
    recs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), rec0, recs)
    return final, recs


@partial(jax.jit, static_argnames=("n",))
def gd_steps(weights, target, mask, lrs, decays, packed=None, *, n):
    r"""``n`` steps of :func:`gd_step` (a jitted :func:`jax.lax.fori_loop`, no records): the
    pieces of a record that a chunked :func:`run_gd` runs when a record takes long
    (:class:`Chunking`); bitwise the steps :func:`gd_scan` takes. Returns the weights."""

    def inner(_, ws):
        return gd_step(ws, target, mask, lrs, decays, packed)[1]

    return jax.lax.fori_loop(0, n, inner, weights)


@dataclass(frozen=True)
class GDResult:
    r"""Final weights, the records at iterations ``steps`` (0, stride, 2·stride, ...), rho."""

    weights: tuple[Array, ...]
    records: dict[str, Any]
    steps: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def check_schedule(steps: int, record_every: int | None) -> tuple[int, int]:
    r"""``(steps, stride)`` of a GD run: ``steps`` $\ge 0$, records ``stride`` steps apart
    (``record_every``, default ``steps``; at least 1), ``steps`` a multiple of it (else
    ValueError)."""
    steps = check_int(steps, "steps", lo=0)
    stride = steps if record_every is None else check_int(record_every, "record_every", lo=1)
    stride = max(stride, 1)
    if steps % stride:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({stride})")
    return steps, stride


def _per_layer_rates(lr, weight_decay, depth: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(rates, decays), one per layer, broadcast from scalars; checked finite and >= 0."""
    lrs = tuple(float(x) for x in np.broadcast_to(np.asarray(lr, dtype=DTYPE), (depth,)))
    decays = tuple(
        float(x) for x in np.broadcast_to(np.asarray(weight_decay, dtype=DTYPE), (depth,))
    )
    if any(not (x >= 0 and math.isfinite(x)) for x in lrs) or not any(x > 0 for x in lrs):
        raise ValueError(f"learning rates must be finite, >= 0 and not all zero, got {lrs}")
    if any(not (x >= 0 and math.isfinite(x)) for x in decays):
        raise ValueError(f"weight decay must be finite and >= 0, got {decays}")
    return lrs, decays


def _checked_problem(weights0, target, mask, truth):
    """(weights, target, mask, truth) of :func:`run_gd`, validated (mask, truth may be None)."""
    ws = check_weights(weights0)
    target = validate_target(target)
    if target.shape != (ws[-1].shape[0], ws[0].shape[1]):
        raise ValueError(
            f"target shape {target.shape} != product shape {(ws[-1].shape[0], ws[0].shape[1])}"
        )
    m = None if mask is None else validate_mask(mask, target.shape)
    tr = None if truth is None else validate_target(truth, "truth")
    if tr is not None and tr.shape != target.shape:
        raise ValueError(f"truth shape {tr.shape} != target shape {target.shape}")
    return ws, target, m, tr


def run_gd(
    weights0: Sequence[ArrayLike],
    target: Float[ArrayLike, "m n"],
    *,
    lr: float | Sequence[float],
    steps: int,
    weight_decay: float | Sequence[float] = 0.0,
    mask: ArrayLike | None = None,
    record_every: int | None = None,
    record: Sequence[str] = ("loss",),
    truth: ArrayLike | None = None,
    record_fn: Callable | None = None,
    chunking: Chunking | None = None,
) -> GDResult:
    r"""Gradient descent (15) on $\tfrac12\|\Omega\odot(W_{L:1}-\Phi)\|_F^2$ for any layer shapes.

    Args:
        weights0: $(W_1(0),\dots,W_L(0))$, shapes chaining ($W_l$ is $d_l\times d_{l-1}$).
        target: $\Phi$, $d_L\times d_0$, finite.
        lr: $\eta$ (or one rate per layer, e.g. $\gamma\eta$ on outer factors).
        steps: number of GD iterations $T$ (a multiple of ``record_every``).
        weight_decay: $\lambda\ge0$ (scalar or per layer).
        mask: $\Omega$ (0/1 or bool, shape of ``target``) for completion (10); None = all.
        record_every: stride between records (default: ``steps``, i.e. first and last only).
        record: names among ``loss`` ($\tfrac12\|\Omega\odot(f-\Phi)\|_F^2$), ``recovery``
            ($\|f-\Phi^\star\|_F/\|\Phi^\star\|_F$ with $\Phi^\star$ = ``truth`` or the target),
            ``end_to_end``, ``weights``, ``singular_values`` (of every layer).
        truth: the ground truth for ``recovery`` (completion).
        record_fn: optional jit-able ``weights -> pytree`` recorded as ``custom``.
        chunking: None (default): one compiled scan. A :class:`Chunking`: the same iterates
            and records bitwise, computed in chunks of whole records with progress,
            checkpoint and resume hooks between them (Ctrl-C lands between chunks).

    Returns:
        :class:`GDResult`; ``records[name]`` has a leading axis over ``steps`` =
        $0, s, 2s, \dots, T$ (with the iterate *after* that many steps).

    Raises:
        ValueError: bad shapes, non-finite inputs, a bad mask, negative rates, or an unknown
        record name; FloatingPointError when the run diverges (non-finite iterate).
    """
    ws, target, m, tr = _checked_problem(weights0, target, mask, truth)
    lrs, decays = _per_layer_rates(lr, weight_decay, len(ws))
    steps, stride = check_schedule(steps, record_every)
    names = tuple(sorted(set(record)))
    bad = [n for n in names if n not in RECORDABLE]
    if bad:
        raise ValueError(f"unknown record names {bad}; choose from {RECORDABLE}")
    lrs_a, decays_a = jnp.asarray(lrs), jnp.asarray(decays)
    packed = masked_products.prepare_observed(ws, target, m)

    def advance(w, n):
        return gd_scan(w, target, m, tr, lrs_a, decays_a, packed, n_records=n, stride=stride,
                       names=names, custom=record_fn)  # fmt: skip

    if chunking is None:
        final, recs = advance(ws, steps // stride)
    else:
        sig = {"driver": "run_gd", "steps": steps, "stride": stride, "records": list(names),
               "custom": record_fn is not None, "shapes": [list(w.shape) for w in ws]}  # fmt: skip
        final, recs = run_chunked(
            advance, ws, n_records=steps // stride, stride=stride, signature=sig,
            chunking=chunking,
            advance_steps=lambda w, n: gd_steps(w, target, m, lrs_a, decays_a, packed, n=n),
        )  # fmt: skip
    if not all(bool(jnp.all(jnp.isfinite(w))) for w in final):
        raise FloatingPointError(
            "gradient descent diverged (non-finite weights): lower the learning rate"
        )
    return GDResult(final, recs, np.arange(0, steps + 1, stride))


def _scales(ws) -> tuple[float, ...]:
    """ε_l = ‖W_l‖_F/√d_l of square factors (the scale of a scaled orthogonal matrix)."""
    return tuple(float(jnp.linalg.norm(w) / math.sqrt(w.shape[0])) for w in ws)


def run_factorization(weights0, target, *, lr, steps, weight_decay=0.0, **kw) -> GDResult:
    r"""GD on the deep factorization loss (2); see :func:`run_gd` for the arguments.

    Warns when $\eta$ makes the $\rho$ recursion (6) oscillate with growing amplitude
    ($\eta(\lambda+\prod_{k\ne l}\epsilon_k^2)>2$), where Theorem 2.1's decomposition still holds
    algebraically but the iterates blow up.
    """
    ws = check_weights(weights0)
    if all(w.shape[0] == w.shape[1] for w in ws):
        eps = _scales(ws)
        rho_divergence(eps, float(np.max(lr)), float(np.max(weight_decay)), warn=True)
    return run_gd(ws, target, lr=lr, steps=steps, weight_decay=weight_decay, **kw)


def run_completion(
    weights0, target, mask, *, lr, steps, weight_decay=0.0, truth=None, **kw
) -> GDResult:
    r"""GD on the deep matrix completion loss (10), $\tfrac12\|\Omega\odot(f(\Theta)-\Phi)\|_F^2$.

    ``truth`` defaults to ``target`` (the unobserved entries of ``target`` are its truth); the
    ``recovery`` record is then $\|f-\Phi\|_F/\|\Phi\|_F$ over *all* entries.
    """
    truth = target if truth is None else truth
    return run_gd(
        weights0,
        target,
        lr=lr,
        steps=steps,
        weight_decay=weight_decay,
        mask=mask,
        truth=truth,
        **kw,
    )


# ----------------------------------------------------------------------------------------------
# nonlinear factorization (13)
# ----------------------------------------------------------------------------------------------
def nonlinear_factorization(weights, activation=jax.nn.relu) -> Array:
    r"""$f(\Theta) = W_L\,\sigma(W_{L-1}\cdots\sigma(W_2\,\sigma(W_1)))$, eq. (13)."""
    require_x64()
    h = activation(weights[0])
    for w in weights[1:-1]:
        h = activation(w @ h)
    return weights[-1] @ h if len(weights) > 1 else h


def nonlinear_gradient(
    weights: Sequence[ArrayLike], target: ArrayLike, layer: int = 2, activation=jax.nn.relu
) -> Array:
    r"""$\nabla_{W_{layer}}\tfrac12\|f(\Theta)-\Phi\|_F^2$ for the nonlinear factorization (13).

    For $L=3$, layer 2 this is $[h(W_2\sigma(W_1))\odot(W_3^\top E)]\,\sigma(W_1)^\top$ (Section
    5), computed by autodiff (``layer`` is 1-indexed).
    """
    ws = check_weights(weights)
    target = validate_target(target)
    layer = check_int(layer, "layer", lo=1, hi=len(ws))

    def loss(w):
        ww = list(ws)
        ww[layer - 1] = w
        e = nonlinear_factorization(ww, activation) - target
        return 0.5 * jnp.sum(e * e)

    return jax.grad(loss)(ws[layer - 1])
