r"""Invariant subspaces of Theorem 2.1 and the compressed factorizations (9) and (11) (seed 004).

**Subspace extraction** (Section 2.3 and the proof of Lemma E.1). Given scaled orthogonal
$W_l(0)$ ($W_l(0)^\top W_l(0)=\epsilon_l^2I$) and $\Phi$ of rank $\le r$, take

$$\mathcal S = \mathcal N(G)\cap\mathcal N(G^\top W_1(0)) = \mathcal N(M),\qquad
M = \begin{bmatrix}G\\ G^\top W_1(0)/\epsilon_1\end{bmatrix},$$

with either ``method="exact"``: $G = \Psi = W_{L:2}^\top(0)\,(\Omega\odot\Phi)$ (the proof of
Lemma E.1; exact for full observation), or ``method="gradient"``: $G = G_1 =
\nabla_{W_1}\ell(\Theta(0))$ (the Section 2.3 recipe, usable for any loss whose gradient at
initialisation is available). The division by $\epsilon_1$ does not change the nullspace but
balances the blocks ($W_1(0)/\epsilon_1$ is orthogonal); without it the second block is
$\epsilon_1$ times smaller and, when $G$ is only approximately low rank (completion, where
$\Omega\odot\Phi$ has full rank), the top-$k$ directions all come from $G$'s row space and
miss the $W_1(0)^\top\operatorname{col}(G)$ half (we observed compressed completion not
learning at all). For full observation $G_1 = c\,W_1(0) - \Psi$ with
$c=\prod_{l\ge2}\epsilon_l^2$, and $\mathcal S$ is *exactly* the eigenspace of $M^\top M$
for the repeated eigenvalue $2c^2\epsilon_1^2$, so the recipe recovers $\mathcal S$ to
rounding whenever that cluster lies below the rest of the spectrum, whose smallest part is
$\sim\sqrt c\,\sigma_{r^\star}(\Phi)$: the ratio is $\sigma_{r^\star}(\Phi)/\prod_l\epsilon_l$,
large for small $\epsilon$; at $\epsilon_l\approx1$ it is not (see ``dmf.construction``).

**Numerical-rank decision.** The right singular vectors of the stacked matrix $M$ for its
$k$ largest singular values span $\mathcal S^\perp$ (generically $k = 2r^\star$). Unless the
caller passes ``rank`` (then $k = 2\,$``rank``), $k$ is the position of the *largest* ratio
$\sigma_j/\sigma_{j+1}$ of consecutive singular values (zeros floored at the smallest normal
float), and this ratio is reported as ``gap``. If the largest ratio is below ``min_gap``
(default $10^3$) there is no clear split and a ValueError asks for ``rank``. A zero $M$
(e.g. $\Phi=0$) gives $k=0$.

$V_1 = [V_{1,1}\ V_{1,2}]$ ($V_{1,2}$ a basis of $\mathcal S$), then
$U_l = W_l(0)V_l/\epsilon_l$, $V_{l+1}=U_l$.

**Compression** (9): $f_C = U_{L,1}\widetilde W_{L:1}V_{1,1}^\top$ with $\widetilde W_l(0) =
U_{l,1}^\top W_l(0)V_{l,1} = \epsilon_l I_k$. For full observation and fixed $U_{L,1},V_{1,1}$,

$$\tfrac12\|U_{L,1}AV_{1,1}^\top-\Phi\|_F^2 = \tfrac12\|A-\widetilde\Phi\|_F^2 + \tfrac12\|\Phi -
U_{L,1}\widetilde\Phi V_{1,1}^\top\|_F^2,\qquad \widetilde\Phi = U_{L,1}^\top\Phi V_{1,1},$$

so GD runs entirely in $k\times k$ coordinates: its per-step cost does not depend on $d$
after the setup. The completion version (11) also trains $U_{L,1}, V_{1,1}$ at rate
$\gamma\eta$; it is the $(L+2)$-layer factorization $(V_{1,1}^\top,\widetilde W_1,\dots,
\widetilde W_L, U_{L,1})$ run by the dense masked engine of
:mod:`lowrank_theory.dmf.factorization` ($3$ products of cost $d^2k$ per step).

References: seed 004, Theorem 2.1, Section 2.3, eqs. (8)-(9), (11), Proposition 2.2,
Lemma E.1 and its proof, proof of Theorem 2.1 (16)-(18).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.precision import DTYPE, EPS
from ..core.validation import check_int
from .factorization import (
    Chunking,
    GDResult,
    check_schedule,
    check_weights,
    end_to_end,
    gd_step,
    loss_and_gradients,
    orthogonal_init,
    run_chunked,
    run_gd,
    validate_mask,
    validate_target,
)
from .spectra import rho_divergence

__all__ = [
    "Compressed",
    "InvariantSubspaces",
    "compress",
    "compress_from_gradient",
    "invariant_subspaces",
    "run_compressed",
    "run_narrow",
    "subspaces_from_gradient",
]


@dataclass(frozen=True)
class InvariantSubspaces:
    r"""$(U_l, V_l)_{l=1}^L$ of Theorem 2.1; the first ``width`` columns are $U_{l,1}, V_{l,1}$.

    Attributes:
        u, v: tuples of $d\times d$ orthogonal matrices, $V_{l+1}=U_l$.
        width: $k$ (the compressed width; $2r$ in the theorem).
        m: $d-k$, the invariant dimension.
        eps: the scales $\epsilon_l$ read off $W_l(0)$.
        singular_values: of the stacked matrix $M$ (decreasing).
        gap: $\sigma_k/\sigma_{k+1}$ of $M$ at the chosen split (``inf`` if $\sigma_{k+1}=0$).
        method: ``"exact"`` or ``"gradient"``; ``decided``: ``"given"`` or ``"largest-gap"``.
    """

    u: tuple[Array, ...]
    v: tuple[Array, ...]
    width: int
    m: int
    eps: tuple[float, ...]
    singular_values: np.ndarray
    gap: float
    method: str
    decided: str

    def u1(self, l: int) -> Array:
        """$U_{l,1}$ (1-indexed layer)."""
        return self.u[l - 1][:, : self.width]

    def u2(self, l: int) -> Array:
        return self.u[l - 1][:, self.width :]

    def v1(self, l: int) -> Array:
        return self.v[l - 1][:, : self.width]

    def v2(self, l: int) -> Array:
        return self.v[l - 1][:, self.width :]


@jax.jit
def _frobenius_defect(w, e):
    return jnp.linalg.norm(w.T @ w / e**2 - jnp.eye(w.shape[0], dtype=w.dtype))


def _orthogonality_defect(w, e: float, limit: float) -> float:
    r"""$\|W^\top W/\epsilon^2 - I\|_2$, or the Frobenius norm when that is already $\le$ ``limit``.

    The Frobenius norm bounds the spectral norm from above, so when it is within the caller's
    ``limit`` the check passes exactly as the spectral norm would; only otherwise is the
    spectral norm (an SVD, ~10x the cost at d = 1000) computed, for the exact decision and the
    value in the error message.
    """
    fro = float(_frobenius_defect(w, e))
    if fro <= limit:
        return fro
    return float(jnp.linalg.norm(w.T @ w / e**2 - jnp.eye(w.shape[0]), 2))


def _check_orthogonal_init(ws, rtol: float = 1e3) -> tuple[float, ...]:
    """ε_l of square scaled-orthogonal W_l(0); raises if W^T W ≠ ε² I beyond rounding."""
    eps = []
    for i, w in enumerate(ws):
        d = w.shape[0]
        if w.shape[0] != w.shape[1]:
            raise ValueError(f"Theorem 2.1 needs square factors; weights[{i}] has shape {w.shape}")
        e = float(jnp.linalg.norm(w) / math.sqrt(d))
        if not e > 0:
            raise ValueError(f"weights[{i}] is zero: eps_l must be > 0")
        dev = _orthogonality_defect(w, e, rtol * d * EPS)
        if dev > rtol * d * EPS:
            raise ValueError(
                f"weights[{i}] is not scaled orthogonal (||W^T W/eps^2 - I||_2 = {dev:.2e}): "
                "Theorem 2.1 assumes the initialisation (3)"
            )
        eps.append(e)
    return tuple(eps)


#: largest sigma_1/sigma_k of the kept block for which the eigh route is used (its subspace error
#: grows as cond^2 * eps: <= 1e4 * eps here); beyond it subspaces_from_gradient takes the SVD
_EIGH_MAX_COND = 100.0


@jax.jit
def _right_singular_pairs(m):
    r"""All right singular vectors of a tall $M$ and its singular values, decreasing.

    The vectors are the eigenvectors of $M^\top M$ (symmetric eigensolver), the values the
    column norms $\|Mv_i\|$. A thin SVD of $M$ gives the same subspaces: the angle error of
    the top-$k$ span is $O(\varepsilon\|M\|^2/(\sigma_k^2-\sigma_{k+1}^2))$ instead of
    $O(\varepsilon\|M\|/(\sigma_k-\sigma_{k+1}))$, i.e. the same to rounding whenever
    $\sigma_1/\sigma_k$ is moderate (tested against the SVD; ~2e-15 at the d = 1000 completion
    instance of Fig. 5), and the values agree with the SVD's to $O(\varepsilon\|M\|)$; the
    null-space values stay at rounding level, so a clean gap is still reported as
    $\gtrsim 10^{13}$. At d = 1000 ($M$ is 2000 x 1000) this takes ~0.5 s where LAPACK's thin
    SVD took 5-18 s on the shared 2-core benchmark machine.
    """
    _, v = jnp.linalg.eigh(m.T @ m)
    s = jnp.linalg.norm(m @ v, axis=0)
    order = jnp.argsort(-s)
    return v[:, order], s[order]


def _decide_split(s: np.ndarray, width: int | None, min_gap: float) -> tuple[int, float, str]:
    d = s.shape[0]
    tiny = np.finfo(DTYPE).tiny
    if width is not None:
        k = width
        gap = float(s[k - 1] / max(s[k], tiny)) if 0 < k < d else math.inf
        return k, gap, "given"
    if s[0] <= tiny:
        return 0, math.inf, "largest-gap"
    ratios = s[:-1] / np.maximum(s[1:], tiny)
    j = int(np.argmax(ratios))
    gap = float(ratios[j])
    if gap < min_gap:
        raise ValueError(
            f"no spectral gap to decide the invariant subspace: the largest ratio of consecutive "
            f"singular values is {gap:.3g} < min_gap = {min_gap:g} (at k = {j + 1}); pass rank="
        )
    return j + 1, gap, "largest-gap"


def subspaces_from_gradient(
    weights0: Sequence[ArrayLike],
    grad1: Float[ArrayLike, "d d"],
    width: int | None = None,
    *,
    min_gap: float = 1e3,
    method: str = "gradient",
) -> InvariantSubspaces:
    r"""$(U_l,V_l)$ from a first-layer matrix $G$ (gradient or $\Psi$) at initialisation.

    Generic entry point (also for other losses, e.g. Deep LoRA's): $\mathcal S =
    \mathcal N(G)\cap\mathcal N(G^\top W_1(0))$, split by ``width`` or by the largest-gap
    decision (module docstring), then propagated through the layers.

    Args:
        weights0: square scaled-orthogonal $W_l(0)$ (checked).
        grad1: $G\in\mathbb{R}^{d\times d}$.
        width: $k$ (None: decided numerically).
        min_gap: smallest acceptable ratio for the numerical decision.
    """
    ws = check_weights(weights0, square=True)
    eps = _check_orthogonal_init(ws)
    d = ws[0].shape[0]
    g = validate_target(grad1, "grad1")
    if g.shape != (d, d):
        raise ValueError(f"grad1 must be {d}x{d}, got {g.shape}")
    if width is not None:
        width = check_int(width, "width", lo=0, hi=d)
    # N(G^T W_1) = N(G^T W_1 / eps_1): the scaling balances the two blocks (module docstring)
    m_stack = jnp.concatenate([g, g.T @ ws[0] / eps[0]], axis=0)
    v1, s = _right_singular_pairs(m_stack)  # v1 is d x d: all of V
    s = np.asarray(s)
    k, gap, decided = _decide_split(s, width, min_gap)
    if k > 0 and s[0] > _EIGH_MAX_COND * s[k - 1]:
        # the kept block is ill-conditioned: eigh(M^T M) would lose accuracy as cond^2, so take
        # the thin SVD of M (same ordering and meaning) and decide again on its values
        _, s_svd, vt = jnp.linalg.svd(m_stack, full_matrices=False)
        v1, s = vt.T, np.asarray(s_svd)
        k, gap, decided = _decide_split(s, width, min_gap)
    # columns ordered by decreasing singular value: the first k span S^perp
    us, vs = [], []
    v = v1
    for l, w in enumerate(ws):
        u = w @ v / eps[l]
        vs.append(v)
        us.append(u)
        v = u
    return InvariantSubspaces(tuple(us), tuple(vs), k, d - k, eps, s, gap, method, decided)


def invariant_subspaces(
    weights0: Sequence[ArrayLike],
    target: Float[ArrayLike, "d d"],
    rank: int | None = None,
    *,
    method: str = "exact",
    mask: ArrayLike | None = None,
    min_gap: float = 1e3,
) -> InvariantSubspaces:
    r"""The orthogonal $(U_l, V_l)_{l=1}^L$ of Theorem 2.1 for $\Theta(0)$ and $\Phi$.

    Args:
        weights0: $W_l(0)$, square, scaled orthogonal (3) (checked, else ValueError).
        target: $\Phi$ ($d\times d$, finite).
        rank: $r$, the rank bound on $\Phi$; the split is then $k=2r$ and $m=d-2r$ must be $>0$.
            None: $k$ from the largest-gap decision (module docstring), gap reported.
        method: ``"exact"`` ($G=\Psi=W_{L:2}^\top(0)(\Omega\odot\Phi)$, Lemma E.1) or
            ``"gradient"`` ($G=\nabla_{W_1}\ell(\Theta(0))$, Section 2.3).
        mask: $\Omega$ for completion (10); None = full observation.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from lowrank_theory.dmf.factorization import orthogonal_init
        >>> from lowrank_theory.dmf.compression import invariant_subspaces
        >>> ws = orthogonal_init(jax.random.key(0), 8, 3, 1e-2)
        >>> phi = jnp.outer(jnp.arange(8.0), jnp.ones(8))  # rank 1
        >>> sub = invariant_subspaces(ws, phi)
        >>> sub.width, sub.m, sub.gap > 1e10
        (2, 6, True)
    """
    ws = check_weights(weights0, square=True)
    phi = validate_target(target)
    d = ws[0].shape[0]
    if phi.shape != (d, d):
        raise ValueError(f"target must be {d}x{d}, got {phi.shape}")
    width = None
    if rank is not None:
        rank = check_int(rank, "rank", lo=0)
        if d - 2 * rank <= 0:
            raise ValueError(
                f"Theorem 2.1 needs m = d - 2r > 0; got d = {d}, r = {rank} (rank >= d/2)"
            )
        width = 2 * rank
    msk = None if mask is None else validate_mask(mask, phi.shape)
    if method == "exact":
        obs = phi if msk is None else jnp.where(msk, phi, 0.0)
        g = end_to_end(ws[1:]).T @ obs if len(ws) > 1 else obs
    elif method == "gradient":
        g = loss_and_gradients(ws, phi, msk)[1][0]
    else:
        raise ValueError(f"method must be 'exact' or 'gradient', got {method!r}")
    sub = subspaces_from_gradient(ws, g, width, min_gap=min_gap, method=method)
    if sub.m <= 0:
        raise ValueError(f"no invariant directions: the decided width {sub.width} >= d = {d}")
    return sub


@dataclass(frozen=True)
class Compressed:
    r"""A compressed factorization: $\widetilde W_l(0)=\epsilon_lI_k$, $U_{L,1}$, $V_{1,1}$, target."""

    weights: tuple[Array, ...]
    u: Array
    v: Array
    target: Array
    target_c: Array
    residual: float
    subspaces: InvariantSubspaces | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.u.shape[1])

    def end_to_end(self, weights=None) -> Array:
        r"""$f_C = U_{L,1}\widetilde W_{L:1}V_{1,1}^\top$ ($d\times d$)."""
        a = end_to_end(self.weights if weights is None else weights)
        return (self.u @ a) @ self.v.T


def compress_from_gradient(weights0, grad1, width: int, *, method="gradient") -> Compressed:
    r"""Compression of a depth-$L$ factorization to width ``width`` from its initialisation.

    Reusable for any loss: ``grad1`` is $\nabla_{W_1}$ of that loss at $\Theta(0)$ (Section
    2.3; Deep LoRA compresses each adapter this way). Returns $\widetilde W_l(0) =
    U_{l,1}^\top W_l(0)V_{l,1} = \epsilon_l I$, $U_{L,1}$, $V_{1,1}$ (``target`` fields are
    empty).
    """
    sub = subspaces_from_gradient(weights0, grad1, width, method=method)
    ws = check_weights(weights0, square=True)
    small = tuple(sub.u1(l + 1).T @ ws[l] @ sub.v1(l + 1) for l in range(len(ws)))
    z = jnp.zeros((0, 0))
    return Compressed(small, sub.u1(len(ws)), sub.v1(1), z, z, 0.0, sub)


def compress(
    weights0: Sequence[ArrayLike],
    target: Float[ArrayLike, "d d"],
    rank: int,
    *,
    method: str = "exact",
    mask: ArrayLike | None = None,
) -> Compressed:
    r"""The width-$2r$ compressed factorization (9) built at initialisation (Section 2.3).

    Args:
        weights0: square scaled-orthogonal $W_l(0)$.
        target: $\Phi$.
        rank: $r$ with $2r<d$ (else ValueError: $m=d-2r\le0$, nothing to compress).
        method, mask: as in :func:`invariant_subspaces`.

    Returns:
        :class:`Compressed` with $\widetilde W_l(0)$, $U_{L,1}$, $V_{1,1}$, $\Phi$,
        $\widetilde\Phi=U_{L,1}^\top\Phi V_{1,1}$ and the out-of-subspace residual
        $\|\Phi-U_{L,1}\widetilde\Phi V_{1,1}^\top\|_F$.
    """
    rank = check_int(rank, "rank", lo=1)
    sub = invariant_subspaces(weights0, target, rank, method=method, mask=mask)
    ws = check_weights(weights0, square=True)
    phi = validate_target(target)
    big_l = len(ws)
    small = tuple(sub.u1(l + 1).T @ ws[l] @ sub.v1(l + 1) for l in range(big_l))
    u, v = sub.u1(big_l), sub.v1(1)
    phic = u.T @ phi @ v
    res = float(jnp.linalg.norm(phi - u @ phic @ v.T))
    return Compressed(small, u, v, phi, phic, res, sub)


# ----------------------------------------------------------------------------------------------
# GD on the compressed factorization
# ----------------------------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("n_records", "stride", "want_small"))
def _scan_small(ws, phic, res2, lr, lam, *, n_records, stride, want_small):
    lrs = (lr,) * len(ws)
    lams = (lam,) * len(ws)

    def inner(_, w):
        return gd_step(w, phic, None, lrs, lams)[1]

    def rec(w):
        e = end_to_end(w) - phic
        out = {"loss": 0.5 * (jnp.sum(e * e) + res2), "err2": jnp.sum(e * e)}
        if want_small:
            out["weights"] = w
        return out

    def outer(w, _):
        w = jax.lax.fori_loop(0, stride, inner, w)
        return w, rec(w)

    r0 = rec(ws)
    final, recs = jax.lax.scan(outer, ws, None, length=n_records)
    recs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), r0, recs)
    return final, recs


@partial(jax.jit, static_argnames=("n",))
def _steps_small(ws, phic, lr, lam, *, n):
    lrs, lams = (lr,) * len(ws), (lam,) * len(ws)
    return jax.lax.fori_loop(0, n, lambda _, w: gd_step(w, phic, None, lrs, lams)[1], ws)


def _run_small(
    comp: Compressed, lr, weight_decay, steps: int, stride: int, record, chunking=None
) -> GDResult:
    """The k x k path of :func:`run_compressed` (full observation, gamma = 0): GD (9)."""
    want = "weights" in record
    res2 = comp.residual**2

    def advance(w, n):
        return _scan_small(w, comp.target_c, res2, float(lr), float(weight_decay), n_records=n,
                           stride=stride, want_small=want)  # fmt: skip

    ws = tuple(comp.weights)
    if chunking is None:
        final, recs = advance(ws, steps // stride)
    else:
        sig = {"driver": "run_compressed k x k", "steps": steps, "stride": stride,
               "weights": want, "shapes": [list(w.shape) for w in ws]}  # fmt: skip
        final, recs = run_chunked(
            advance, ws, n_records=steps // stride, stride=stride, signature=sig,
            chunking=chunking,
            advance_steps=lambda w, n: _steps_small(w, comp.target_c, float(lr),
                                                    float(weight_decay), n=n),
        )  # fmt: skip
    if not all(bool(jnp.all(jnp.isfinite(w))) for w in final):
        raise FloatingPointError("compressed GD diverged: lower the learning rate")
    out = {}
    if "loss" in record:
        out["loss"] = recs["loss"]
    if "recovery" in record:
        out["recovery"] = jnp.sqrt(recs["err2"] + comp.residual**2) / jnp.linalg.norm(comp.target)
    if "weights" in record:
        out["weights"] = recs["weights"]
    return GDResult(final, out, np.arange(0, steps + 1, stride), {"path": "k x k"})


def run_compressed(
    comp: Compressed,
    *,
    lr: float,
    steps: int,
    weight_decay: float = 0.0,
    gamma: float = 0.0,
    mask: ArrayLike | None = None,
    truth: ArrayLike | None = None,
    record_every: int | None = None,
    record: Sequence[str] = ("loss",),
    record_fn=None,
    chunking: Chunking | None = None,
) -> GDResult:
    r"""GD on the compressed problem: (9) for full observation, (11) with a mask and/or $\gamma>0$.

    * ``mask is None and gamma == 0``: (9) in $k\times k$ coordinates (cost independent of
      $d$). Records: ``loss`` (the full $\tfrac12\|f_C-\Phi\|_F^2$, via the exact split of the
      module docstring), ``recovery`` ($\|f_C-\Phi\|_F/\|\Phi\|_F$), ``weights`` (the small
      $\widetilde W_l$). The result's ``weights`` are the $\widetilde W_l$.
    * otherwise: (11), GD on $(V_{1,1}^\top,\widetilde W_1,\dots,\widetilde W_L,U_{L,1})$ with
      rate $\gamma\eta$ on the outer two (and no weight decay on them: the seed specifies none)
      and $\eta$, $\lambda$ on the inner ones; ``gamma = 0`` freezes $U_{L,1},V_{1,1}$. The
      result's ``weights`` are that $(L+2)$-tuple; records (and ``record_fn``, called on that
      tuple) as in :func:`lowrank_theory.dmf.factorization.run_gd`.

    ``chunking``: run in chunks (progress, Ctrl-C, checkpoints; bitwise the same result), see
    :class:`~lowrank_theory.dmf.factorization.Chunking`.
    """
    if not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be finite and > 0, got {lr}")
    steps, stride = check_schedule(steps, record_every)
    if mask is None and gamma == 0.0:
        bad = [n for n in record if n not in ("loss", "recovery", "weights")]
        if bad:
            raise ValueError(f"the k x k path records loss, recovery, weights; not {bad}")
        if truth is not None or record_fn is not None:
            raise ValueError("truth and record_fn are only used on the dense path (mask/gamma)")
        eps = tuple(float(w[0, 0]) for w in comp.weights)
        rho_divergence(eps, lr, weight_decay, warn=True)
        return _run_small(comp, lr, weight_decay, steps, stride, record, chunking)
    ws = (comp.v.T, *comp.weights, comp.u)
    n = len(ws)
    lrs = [gamma * lr] + [lr] * (n - 2) + [gamma * lr]
    lams = [0.0] + [weight_decay] * (n - 2) + [0.0]
    res = run_gd(
        ws,
        comp.target,
        lr=lrs,
        steps=steps,
        weight_decay=lams,
        mask=mask,
        truth=truth if truth is not None else (comp.target if mask is not None else None),
        record_every=stride,
        record=record,
        record_fn=record_fn,
        chunking=chunking,
    )
    return GDResult(res.weights, res.records, res.steps, {"path": "dense (L+2)-layer"})


def run_narrow(
    key: Array,
    target: Float[ArrayLike, "d d"],
    width: int,
    depth: int,
    eps: float,
    *,
    lr: float,
    steps: int,
    mask: ArrayLike | None = None,
    weight_decay: float = 0.0,
    truth: ArrayLike | None = None,
    record_every: int | None = None,
    record: Sequence[str] = ("loss",),
    chunking: Chunking | None = None,
) -> GDResult:
    r"""A randomly initialised narrow factorization of width ``width`` (Fig. 10's baseline).

    Layers $W_1\in\mathbb{R}^{w\times d}$, $W_2,\dots,W_{L-1}\in\mathbb{R}^{w\times w}$,
    $W_L\in\mathbb{R}^{d\times w}$ with scaled (semi-)orthogonal random initialisation of scale
    ``eps`` (:func:`~lowrank_theory.dmf.factorization.orthogonal_init`), trained by GD on (2) or,
    with ``mask``, on (10). ``chunking``: as in
    :func:`~lowrank_theory.dmf.factorization.run_gd`.
    """
    phi = validate_target(target)
    depth = check_int(depth, "depth", lo=2)
    width = check_int(width, "width", lo=1)
    dims = [phi.shape[1]] + [width] * (depth - 1) + [phi.shape[0]]
    ws = orthogonal_init(key, dims, depth, eps)
    if mask is not None and truth is None:
        truth = phi
    return run_gd(
        ws,
        phi,
        lr=lr,
        steps=steps,
        weight_decay=weight_decay,
        mask=mask,
        truth=truth,
        record_every=record_every,
        record=record,
        chunking=chunking,
    )
