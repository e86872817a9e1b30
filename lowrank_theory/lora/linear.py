r"""The expressive power of LoRA (seed 000: Zeng & Lee, ICLR 2024, reading notes).

Linear models (Case 1, Lemma 1). The frozen model is $f_0(x) = W_L\cdots W_1 x$ with
$W_l\in\mathbb{R}^{D\times D}$; ``frozen = [W_1, ..., W_L]`` is given in the seed's order (``W_1``
acts first) and every list returned is in the same order. The target is
$\bar f(x) = \bar W x$ and the error matrix is $E = \bar W - \prod_l W_l$ with
$\prod_{l=1}^L W_l := W_L\cdots W_1$. LoRA adapts each layer by $\Delta W_l$ with
$\operatorname{rank}\Delta W_l\le R$.

**Lemma 1.** If every $W_l$ and every $\prod_l W_l + \mathrm{LR}_r(E)$, $r\le R(L-1)$, is
non-singular, then
$$\min_{\operatorname{rank}\Delta W_l\le R}\Big\|\prod_{l=1}^L(W_l+\Delta W_l)-\bar W\Big\|_2
= \sigma_{RL+1}(E),$$
and for $R\ge\lceil R_E/L\rceil$ the minimiser reproduces $\bar W$ exactly.

The constructive proof takes $E = UDV^\top$, $E' = \mathrm{LR}_{RL\wedge R_E}(E)$,
$Q_l = V I_{(R(l-1)+1):(Rl\wedge R_{E'})} V^\top$ (the $l$-th block of $R$ right singular
vectors; empty once $R(l-1)\ge R_{E'}$) and, recursively (eq. (8)/(11)),
$$\Delta W_l = \Big(\prod_{i=l+1}^L W_i\Big)^{-1} E' Q_l
\Big(\prod_{i=1}^{l-1}(W_i+\Delta W_i)\Big)^{-1}.$$

References:
    Y. Zeng and K. Lee, *The Expressive Power of Low-Rank Adaptation*, ICLR 2024, Lemma 1
    (seed ``000_2c09e710a2aeae0d.txt``, "Case 1: Linear Model").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.linalg import (
    chain_product,
    numerical_rank,
    rank_from_singular_values,
)
from ..core.precision import EPS
from ..core.validation import as_matrix, as_matrix_list, check_float, check_int

__all__ = [
    "LinearLemma1",
    "adapter_rank",
    "lemma1_construction",
    "linear_adapters",
    "linear_min_error",
    "lora_product",
    "min_lora_rank",
    "problem_scale",
    "train_linear_lora",
]

#: Rank tolerance used for $R_E$ unless the caller passes ``rtol``: singular values of $E$
#: below ``RANK_RTOL * D * eps * s`` count as zero, $s$ the problem's scale
#: (:func:`problem_scale`; NumPy's ``matrix_rank`` rule on that scale).
RANK_RTOL = 1.0


def _rank_rtol(d: int, rtol: float | None) -> float:
    """The ``rtol`` of the rank rule for $R_E$: the caller's, else ``RANK_RTOL * D * eps``."""
    return RANK_RTOL * d * EPS if rtol is None else rtol


def problem_scale(frozen: Sequence[Array], target: Array) -> float:
    r"""The scale on which $E=\bar W-\prod_lW_l$ and its rank are decided:
    $s=\|\bar W\|_2+\prod_l\|W_l\|_2$.

    $E$ is computed as the difference of $\bar W$ and the product $W_L\cdots W_1$, so its
    rounding error is a few $\varepsilon$ times the size of those two terms, not of $E$: an
    $E$ that is small next to them (an error matrix scaled to $\sigma_{\min}(\prod_lW_l)$ of
    ill-conditioned layers) carries rounding noise far above $D\varepsilon\,\sigma_1(E)$, and a
    rank decided on $E$'s own $\sigma_1$ counts that noise (at $D=2$, $L=4$ a rank-1 $E$ of
    size $5\cdot10^{-5}$ came out rank 2, and the construction then built an adapter of pure
    noise). On $s$ the noise is below the cut-off $D\varepsilon s$ (measured: at most
    $0.09\,D\varepsilon s$ over 400 drawn instances, genuine singular values at least
    $355\,D\varepsilon s$).
    """
    prod_norm = math.prod(float(jnp.linalg.norm(w, 2)) for w in frozen)
    return float(jnp.linalg.norm(target, 2)) + prod_norm


def adapter_rank(w: ArrayLike, dw: ArrayLike, kappa: float = 1.0, rtol: float | None = None) -> int:
    r"""Rank of a computed adapter $\Delta W_l$ of the frozen layer $W_l$, on the problem's scale.

    The rank rule (:func:`~lowrank_theory.core.linalg.rank_from_singular_values`, default
    $\mathrm{rtol}=D\varepsilon$) with scale $s_l=\kappa\,(\|W_l\|_2+\|\Delta W_l\|_2)$:
    the size of the adapted layer $W_l+\Delta W_l$ times ``kappa``, the largest condition
    number of the matrices the adapter was solved with (Lemma 1's construction divides by the
    products of the other layers, which amplifies the rounding of $E'Q_l$ by up to their
    condition numbers). An adapter's *own* $\sigma_1$ is not the scale: a small adapter of
    a well-scaled layer (at $D=32$: 13 genuine singular values down to $4.8\cdot10^{-5}$ and
    rounding noise $2.7\cdot10^{-17}$ next to $\sigma_1=3.4\cdot10^{-3}$) has noise above
    $D\varepsilon\sigma_1$. Measured over 400 drawn Lemma 1 instances: noise at most
    $0.15\,D\varepsilon s_l$, genuine singular values at least $208\,D\varepsilon s_l$.
    For gradient-trained adapters $B_lA_l$ (exact rank by construction) ``kappa`` is 1.
    """
    w, dw = np.asarray(w, dtype=np.float64), np.asarray(dw, dtype=np.float64)
    if not np.all(np.isfinite(dw)):
        raise ValueError("the adapter contains NaN or inf: its rank is undefined")
    s = np.linalg.svd(dw, compute_uv=False)
    scale = kappa * (float(np.linalg.norm(w, 2)) + float(s[0]))
    return rank_from_singular_values(s, dw.shape, rtol, scale=scale)


def lora_product(
    frozen: Sequence[Float[ArrayLike, "D D"]], adapters: Sequence[Float[ArrayLike, "D D"]]
) -> Float[Array, "D D"]:
    r"""The adapted end-to-end matrix $\prod_{l=1}^L (W_l+\Delta W_l) = (W_L+\Delta W_L)\cdots(W_1+\Delta W_1)$."""
    ws = as_matrix_list(frozen, "frozen", square=True)
    dws = as_matrix_list(adapters, "adapters", square=True)
    if len(ws) != len(dws):
        raise ValueError(f"{len(ws)} frozen weights but {len(dws)} adapters")
    d = ws[0].shape[0]
    for i, (w, dw) in enumerate(zip(ws, dws, strict=True)):
        if w.shape != (d, d) or dw.shape != (d, d):
            raise ValueError(f"layer {i + 1}: shapes {w.shape}, {dw.shape}; all must be {(d, d)}")
    return chain_product([w + dw for w, dw in zip(ws, dws, strict=True)], identity=d)


def _validate(frozen, target, rank: int | None):
    ws = as_matrix_list(frozen, "frozen", square=True)
    d = ws[0].shape[0]
    for i, w in enumerate(ws):
        if w.shape != (d, d):
            raise ValueError(
                f"frozen[{i}] has shape {w.shape}; every frozen weight must be {(d, d)}"
            )
    wbar = as_matrix(target, "target", square=True)
    if wbar.shape != (d, d):
        raise ValueError(
            f"target has shape {wbar.shape}; it must match the frozen weights {(d, d)}"
        )
    if rank is not None:
        rank = check_int(rank, "rank (LoRA rank R)", lo=1, hi=d)
    return ws, wbar, d, rank


def _is_singular(s: np.ndarray) -> bool:
    r"""Whether a $D\times D$ matrix with singular values ``s`` (decreasing) is numerically
    singular: its rank under the package's rank rule (default $\mathrm{rtol}=D\varepsilon$ on
    its own $\sigma_1$; non-singularity is scale-free) is below $D$."""
    d = s.shape[0]
    return rank_from_singular_values(s, (d, d)) < d


def _check_nonsingular(m: Array, what: str) -> float:
    """Raises ValueError if ``m`` is numerically singular; returns its condition number."""
    s = np.asarray(jnp.linalg.svd(m, compute_uv=False))
    if _is_singular(s):
        raise ValueError(
            f"Lemma 1 assumption violated: {what} is singular "
            f"(sigma_min/sigma_max = {s[-1] / s[0] if s[0] > 0 else 0.0:.2e} <= D*eps)"
        )
    return float(s[0] / s[-1])


def _check_assumption(prod: Array, u: Array, s: Array, vt: Array, k_max: int, r_max: int):
    r"""Lemma 1's assumption: $\prod_l W_l+\mathrm{LR}_k(E)$ non-singular for $k\le$ ``k_max``.

    ``u, s, vt``: the SVD of $E$; ``r_max`` $=R(L-1)$ (for the message; $\mathrm{LR}_k(E)=E$
    for $k\ge R_E$, so ``k_max`` $=R(L-1)\wedge R_E$). Checked in one batched host SVD
    (masks, not slices, so no shape-dependent recompiles). Returns the worst condition number.
    """
    d = prod.shape[0]
    un, sn, vtn = np.asarray(u), np.asarray(s), np.asarray(vt)
    ks = np.arange(k_max + 1)
    masks = (np.arange(d)[None, :] < ks[:, None]).astype(float)  # (k_max+1, d)
    lrs = np.einsum("ij,kj,jl->kil", un, masks * sn[None, :], vtn)
    sv = np.linalg.svd(np.asarray(prod)[None] + lrs, compute_uv=False)
    bad = [i for i, row in enumerate(sv) if _is_singular(row)]
    if bad:
        k = int(ks[bad[0]])
        raise ValueError(
            f"Lemma 1 assumption violated: prod_l W_l + LR_{k}(E) is singular "
            f"(sigma_min/sigma_max = {sv[bad[0], -1] / sv[bad[0], 0]:.2e}); the lemma needs it "
            f"non-singular for every r <= R(L-1) = {r_max}"
        )
    return float(np.max(sv[:, 0] / sv[:, -1]))


@dataclass(frozen=True)
class LinearLemma1:
    r"""Every object of Lemma 1's constructive proof for one instance.

    Attributes:
        adapters: $\Delta W_1,\dots,\Delta W_L$ (seed order).
        q: the projections $Q_1,\dots,Q_L$.
        e: the error matrix $E$; ``e_prime``: $E' = \mathrm{LR}_{RL\wedge R_E}(E)$.
        rank_e: $R_E$ (numerical, see :func:`min_lora_rank`); ``rank``: $R$.
        a_terms: $A_l = (\prod_{i>l} W_i)\,\Delta W_l\,(\prod_{i<l}(W_i+\Delta W_i))$.
        cond: condition numbers of the matrices the construction inverts: the frozen
            $W_l$ and the adapted $W_l+\Delta W_l$, $l<L$ (the assumption's matrices).
        scale: the problem's scale $\|\bar W\|_2+\prod_l\|W_l\|_2$ on which $R_E$ is
            decided (:func:`problem_scale`).
        adapter_ranks: $\operatorname{rank}\Delta W_l$ by :func:`adapter_rank` (the rank rule
            on the adapted layer's scale times the construction's largest condition number).
    """

    adapters: list[Array]
    q: list[Array]
    e: Array
    e_prime: Array
    rank_e: int
    rank: int
    a_terms: list[Array]
    cond: dict[str, float]
    scale: float = math.nan
    adapter_ranks: tuple[int, ...] = ()


def lemma1_construction(
    frozen: Sequence[Float[ArrayLike, "D D"]],
    target: Float[ArrayLike, "D D"],
    rank: int,
    *,
    rtol: float | None = None,
    index_convention: Literal["empty", "literal"] = "empty",
) -> LinearLemma1:
    r"""Lemma 1's construction with all intermediate objects (see :class:`LinearLemma1`).

    Args:
        frozen: $[W_1,\dots,W_L]$, each $D\times D$ and non-singular.
        target: $\bar W$ ($D\times D$).
        rank: the LoRA rank $R\in[D]$.
        rtol: relative tolerance for $R_E$ on the problem's scale (default $D\varepsilon$, see
            :func:`min_lora_rank`).
        index_convention: how to read the seed's index range
            $(R(l-1)+1)\wedge R_{E'} : Rl\wedge R_{E'}$ once $R(l-1)\ge R_{E'}$. ``"empty"``
            (default, the reading the proof needs): $Q_l = 0$. ``"literal"``: the range
            $R_{E'}:R_{E'}$, i.e. $v_{R_{E'}}$ counted again; this reading breaks (7) and is
            kept only so that the audit can show it (claim
            ``lora.lemma1.construction[literal-index]``).

    Raises:
        ValueError: bad shapes, $R\notin[D]$, NaN/inf, or the lemma's assumption violated
            (a frozen $W_l$ or some $\prod_l W_l+\mathrm{LR}_r(E)$, $r\le R(L-1)$, singular).
    """
    ws, wbar, d, r = _validate(frozen, target, rank)
    assert r is not None
    if index_convention not in ("empty", "literal"):
        raise ValueError(f"unknown index_convention {index_convention!r}")
    n_layers = len(ws)
    cond = {}
    for i, w in enumerate(ws):
        cond[f"W_{i + 1}"] = _check_nonsingular(w, f"frozen weight W_{i + 1}")
    prod = chain_product(ws, identity=d)
    e = wbar - prod
    u, s, vt = jnp.linalg.svd(e)
    scale = problem_scale(ws, wbar)
    rank_e = rank_from_singular_values(np.asarray(s), (d, d), _rank_rtol(d, rtol), scale)
    k_max = min(r * (n_layers - 1), rank_e)
    cond["prod+LR_r(E), worst r<=R(L-1)"] = _check_assumption(
        prod, u, s, vt, k_max, r * (n_layers - 1)
    )
    re_prime = min(r * n_layers, rank_e)
    idx = jnp.arange(d)
    e_prime = (u * jnp.where(idx < re_prime, s, 0.0)[None, :]) @ vt
    qs, dws, a_terms = _adapters(ws, e_prime, vt.T, r, re_prime, index_convention, cond)
    kappa = max(cond.values())
    ranks = tuple(adapter_rank(w, dw, kappa) for w, dw in zip(ws, dws, strict=True))
    return LinearLemma1(dws, qs, e, e_prime, rank_e, r, a_terms, cond, scale, ranks)


def _adapters(ws, e_prime, v, r: int, re_prime: int, index_convention: str, cond: dict):
    r"""The recursion (8)/(11): $Q_l$, $\Delta W_l$ and $A_l$ for $l=1,\dots,L$.

    Records the condition number of each inverted $W_l+\Delta W_l$ ($l<L$) in ``cond``.
    """
    d, n_layers = e_prime.shape[0], len(ws)
    idx = jnp.arange(d)
    qs, dws, a_terms = [], [], []
    for l in range(1, n_layers + 1):
        lo, hi = r * (l - 1), min(r * l, re_prime)
        if index_convention == "literal" and lo >= re_prime and re_prime > 0:
            lo, hi = re_prime - 1, re_prime
        sel = ((idx >= lo) & (idx < hi)).astype(v.dtype)
        q_l = (v * sel[None, :]) @ v.T
        eq_l = e_prime @ q_l
        suffix = chain_product(ws[l:], identity=d)  # W_L ... W_{l+1}
        prefix = chain_product([w + dw for w, dw in zip(ws[: l - 1], dws, strict=True)], identity=d)
        left = jnp.linalg.solve(suffix, eq_l)  # suffix^{-1} E'Q_l
        dw_l = jnp.linalg.solve(prefix.T, left.T).T  # ... prefix^{-1}
        if l < n_layers:
            cond[f"W_{l}+dW_{l}"] = _check_nonsingular(ws[l - 1] + dw_l, f"W_{l} + dW_{l}")
        qs.append(q_l)
        dws.append(dw_l)
        a_terms.append(suffix @ dw_l @ prefix)
    return qs, dws, a_terms


def linear_adapters(
    frozen: Sequence[Float[ArrayLike, "D D"]],
    target: Float[ArrayLike, "D D"],
    rank: int,
    *,
    rtol: float | None = None,
) -> list[Float[Array, "D D"]]:
    r"""Lemma 1's LoRA adapters $[\Delta W_1,\dots,\Delta W_L]$ (each of rank $\le R$).

    With these, $\|\prod_l(W_l+\Delta W_l)-\bar W\|_2 = \sigma_{RL+1}(E)$, the smallest value any
    rank-$R$ adapters can reach, and $\prod_l(W_l+\Delta W_l)=\bar W$ when $R\ge\lceil R_E/L\rceil$.

    Args:
        frozen: $[W_1,\dots,W_L]$ in the seed's order ($W_1$ acts first), NumPy or JAX.
        target: $\bar W$.
        rank: the LoRA rank $R\in[D]$.
        rtol: tolerance for the numerical rank $R_E$ (see :func:`min_lora_rank`).

    Returns:
        The adapters, same order as ``frozen``, float64 JAX arrays.

    Raises:
        ValueError: non-square or mismatched matrices, $R<1$ or $R>D$, NaN/inf, or the lemma's
            assumption violated (a singular $W_l$ or $\prod_l W_l + \mathrm{LR}_r(E)$).

    Examples:
        >>> import numpy as np
        >>> import lowrank_theory as lt
        >>> rng = np.random.default_rng(0)
        >>> frozen = [np.eye(4) + 0.1 * rng.standard_normal((4, 4)) for _ in range(2)]
        >>> target = frozen[1] @ frozen[0] + np.outer(rng.standard_normal(4), rng.standard_normal(4))
        >>> adapters = lt.linear_adapters(frozen, target, rank=1)
        >>> bool(np.allclose(lt.lora_product(frozen, adapters), target))
        True

    References:
        Zeng & Lee (ICLR 2024), Lemma 1 and eq. (8)/(11) of its proof.
    """
    return lemma1_construction(frozen, target, rank, rtol=rtol).adapters


def linear_min_error(
    frozen: Sequence[Float[ArrayLike, "D D"]], target: Float[ArrayLike, "D D"], rank: int
) -> float:
    r"""$\sigma_{RL+1}(E)$: the least spectral error reachable with rank-$R$ LoRA (Lemma 1).

    Zero when $RL\ge D$ (singular values beyond the dimension are 0 by convention). This is
    the right-hand side of Lemma 1; it does not check the lemma's non-singularity assumption
    (use :func:`linear_adapters` for the construction, which does).
    """
    ws, wbar, d, r = _validate(frozen, target, rank)
    assert r is not None
    e = wbar - chain_product(ws, identity=d)
    k = r * len(ws) + 1
    s = np.asarray(jnp.linalg.svd(e, compute_uv=False))
    return float(s[k - 1]) if k <= d else 0.0


def min_lora_rank(
    frozen: Sequence[Float[ArrayLike, "D D"]],
    target: Float[ArrayLike, "D D"],
    *,
    rtol: float | None = None,
) -> int:
    r"""$\lceil R_E/L\rceil$: the smallest LoRA rank with which Lemma 1 reproduces $\bar W$.

    $R_E$ is the numerical rank of $E$: singular values at most $\mathrm{rtol}\cdot s$ count
    as zero, $s=\|\bar W\|_2+\prod_l\|W_l\|_2$ the problem's scale (:func:`problem_scale`:
    $E$ is a difference of those two terms and carries their rounding), with default
    $\mathrm{rtol}=D\varepsilon$ (the threshold below which rounding alone can produce a
    singular value). Returns 0 when $E = 0$ (no adaptation needed).
    """
    ws, wbar, d, _ = _validate(frozen, target, None)
    e = wbar - chain_product(ws, identity=d)
    rank_e = numerical_rank(e, rtol=_rank_rtol(d, rtol), scale=problem_scale(ws, wbar))
    return math.ceil(rank_e / len(ws))


def train_linear_lora(
    frozen: Sequence[Float[ArrayLike, "D D"]],
    target: Float[ArrayLike, "D D"],
    rank: int,
    key: Array,
    *,
    starts: int = 4,
    steps: int = 500,
    lr: float = 1e-2,
    init_scale: float = 0.1,
) -> list[Array]:
    r"""LoRA adapters $\Delta W_l = B_l A_l$ trained by Adam on $\|\prod_l(W_l+B_lA_l)-\bar W\|_F^2$.

    The gradient baseline of Lemma 1: ``starts`` independent initialisations run in one
    vmapped, jitted ``lax.scan`` ($B_l = 0$, $A_l$ Gaussian with std ``init_scale``, the usual
    LoRA initialisation); returns the adapters of the start with the smallest final loss.
    Rank $R$ is enforced by masking $D\times D$ factors to $R$ columns, so one compilation
    serves every $R$ at a given $(D, L)$.
    """
    ws, wbar, d, r = _validate(frozen, target, rank)
    assert r is not None
    check_int(starts, "starts", lo=1)
    check_int(steps, "steps", lo=1)
    check_float(lr, "lr", lo=0.0, lo_open=True)
    check_float(init_scale, "init_scale", lo=0.0, lo_open=True)
    w_stack = jnp.stack(ws)
    mask = (jnp.arange(d) < r).astype(w_stack.dtype)
    b, a, loss = _train_lora_jit(w_stack, wbar, mask, key, starts, steps, lr, init_scale)
    best = int(jnp.argmin(loss))
    return [b[best, i] @ a[best, i] for i in range(len(ws))]


def _lora_loss(params, w_stack, wbar, mask):
    b, a = params
    d = wbar.shape[0]

    def layer(acc, xs):
        w, bl, al = xs
        return (w + (bl * mask[None, :]) @ al) @ acc, None

    prod, _ = jax.lax.scan(layer, jnp.eye(d, dtype=wbar.dtype), (w_stack, b, a))
    return jnp.sum((prod - wbar) ** 2)


@partial(jax.jit, static_argnums=(4, 5))
def _train_lora_jit(w_stack, wbar, mask, key, starts, steps, lr, init_scale):
    n_layers, d, _ = w_stack.shape
    opt = optax.adam(lr)

    def one(k):
        a0 = init_scale * jax.random.normal(k, (n_layers, d, d), dtype=wbar.dtype)
        params = (jnp.zeros_like(a0), a0)
        state = opt.init(params)

        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(_lora_loss)(p, w_stack, wbar, mask)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        (p, _), _ = jax.lax.scan(step, (params, state), None, length=steps)
        return p[0] * mask[None, None, :], p[1], _lora_loss(p, w_stack, wbar, mask)

    return jax.vmap(one)(jax.random.split(key, starts))
