r"""The compression setup of deep matrix completion at scale
(:mod:`lowrank_theory.dmf.large_completion`): the initialisation's end-to-end product, a random
signed permutation $O$ (:class:`SignedPermutation`), and the width-$2r$ compressed factorization
(11) from the sparse gradient at initialisation (:func:`compress_sparse`: block subspace
iteration on the packed entries, memory $O(d(2r+\mathrm{oversample}))$).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..core.precision import DTYPE
from ..core.validation import check_float, check_int
from .large_problem import SparseCompletion
from .masked_products import PackedObserved, entry_products

__all__ = ["SignedPermutation", "SparseCompressed", "compress_sparse", "signed_permutation"]


@partial(jax.tree_util.register_dataclass, data_fields=["perm", "signs"], meta_fields=[])
@dataclass(frozen=True)
class SignedPermutation:
    r"""$O$ with $O_{i,\pi(i)} = s_i$: $(Ox)_i = s_ix_{\pi(i)}$, $(O^\top y)_{\pi(i)} = s_iy_i$."""

    perm: Array  # int32 (d,)
    signs: Array  # float64 (d,), +-1

    def apply(self, x: Array) -> Array:
        return self.signs[:, None] * x[self.perm]

    def apply_t(self, y: Array) -> Array:
        return jnp.zeros_like(y).at[self.perm].set(self.signs[:, None] * y)

    def dense(self) -> Array:
        """$O$ as a $d\\times d$ array (small problems and tests only)."""
        d = self.perm.shape[0]
        return jnp.zeros((d, d), DTYPE).at[jnp.arange(d), self.perm].set(self.signs)


def signed_permutation(key: Array, d: int) -> SignedPermutation:
    """A uniformly random signed permutation of size ``d`` (an orthogonal matrix, O(d) memory)."""
    d = check_int(d, "d", lo=1)
    k1, k2 = jax.random.split(key)
    perm = jax.random.permutation(k1, d).astype(jnp.int32)
    signs = jnp.where(jax.random.bernoulli(k2, 0.5, (d,)), 1.0, -1.0).astype(DTYPE)
    return SignedPermutation(perm, signs)


@dataclass(frozen=True)
class SparseCompressed:
    r"""The compressed factorization (11) of a :class:`SparseCompletion`: $U_{L,1}$
    ($d_1\times k$), $V_{1,1}$ ($d_2\times k$), $\widetilde W_l(0) = \epsilon_lI_k$.

    ``singular_values``: the Ritz values of $[E;\ E^\top O]$ (the top $k$ converged, the rest
    estimates); ``gap``: $\sigma_k/\sigma_{k+1}$ of those; ``iterations``, ``residual``: of
    the subspace iteration; ``init``: the end-to-end $O$ of the initialisation."""

    u: Array
    v: Array
    weights: tuple[Array, ...]
    eps: tuple[float, ...]
    init: SignedPermutation
    singular_values: np.ndarray
    gap: float
    iterations: int
    residual: float
    info: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.u.shape[1])


def _observed_diagonal(entries: PackedObserved, o: SignedPermutation, d1: int) -> np.ndarray:
    """For each row i < d1: whether (i, perm[i]) is observed (read from the packed layout)."""
    m, n = entries.shape
    perm = np.asarray(o.perm)[:d1].astype(np.int64)
    ptr, cols = np.asarray(entries.ptr), np.asarray(entries.cols)
    rows = np.arange(d1)
    inside = perm < n
    seg = np.where(inside, (perm // entries.block) * m + rows, 0)
    s0, s1 = ptr[seg], ptr[seg + 1]
    found = np.zeros(d1, dtype=bool)
    for t in range(int(np.max(s1 - s0, initial=0))):
        idx = s0 + t
        ok = idx < s1
        found |= ok & (cols[np.where(ok, idx, 0)] == perm)
    return found & inside


def _setup_operator(entries, o, diag, shift, backend):
    """X (d, b) -> A X, A = E^T E + O^T E E^T O, E = shift * O|_Omega - T_Omega (padded to d)."""
    d1, d2 = entries.shape
    d = o.perm.shape[0]
    perm1, s1 = o.perm[:d1], o.signs[:d1] * diag * shift  # the O term on observed entries

    def e_mul(x):  # E x, x (d2, b) -> (d1, b)
        b = x.shape[1]
        _, g, _ = entry_products(jnp.zeros((d1, b), DTYPE), x.T, entries, backend=backend)
        delta = s1[:, None] * x.at[perm1].get(mode="fill", fill_value=0.0)
        return g + delta

    def et_mul(y):  # E^T y, y (d1, b) -> (d2, b)
        b = y.shape[1]
        _, _, h = entry_products(y, jnp.zeros((b, d2), DTYPE), entries, backend=backend)
        delta = jnp.zeros((d2, b), DTYPE).at[perm1].add(s1[:, None] * y, mode="drop")
        return h.T + delta

    def pad(z):
        return jnp.zeros((d, z.shape[1]), DTYPE).at[: z.shape[0]].set(z)

    def apply(x):
        t1 = et_mul(e_mul(x[:d2]))
        t2 = e_mul(et_mul(o.apply(x)[:d1]))
        return pad(t1) + o.apply_t(pad(t2))

    return apply


@partial(jax.jit, static_argnames=("width", "backend"))
def _subspace_iteration(entries, o, diag, shift, x0, tol, max_iter, *, width, backend):
    apply = _setup_operator(entries, o, diag, shift, backend)

    def ritz(q):
        z = apply(q)
        lam, w = jnp.linalg.eigh(0.5 * (q.T @ z + z.T @ q))
        lam, w = lam[::-1], w[:, ::-1]
        vecs, zw = q @ w, z @ w
        res = jnp.linalg.norm(zw - vecs * lam[None, :], axis=0)
        return vecs, zw, lam, jnp.max(res[:width]) / jnp.maximum(lam[0], jnp.finfo(DTYPE).tiny)

    def cond(state):
        it, res = state[0], state[4]
        return (it < max_iter) & (res > tol)

    def body(state):
        it, _, zw, _, _ = state
        q = jnp.linalg.qr(zw)[0]
        vecs, zw, lam, res = ritz(q)
        return it + 1, vecs, zw, lam, res

    q0 = jnp.linalg.qr(x0)[0]
    vecs, zw, lam, res = ritz(q0)
    state = (jnp.asarray(1), vecs, zw, lam, res)
    it, vecs, _, lam, res = jax.lax.while_loop(cond, body, state)
    return vecs[:, :width], lam, res, it


def compress_sparse(
    key: Array,
    problem: SparseCompletion,
    rank: int,
    *,
    depth: int = 3,
    eps: float = 1e-3,
    method: str = "gradient",
    oversample: int = 10,
    tol: float = 1e-10,
    max_iter: int = 200,
    backend: str = "auto",
) -> SparseCompressed:
    r"""The width-$2r$ compressed factorization (11) of ``problem`` at initialisation, from the
    sparse gradient (module docstring): $O(|\Omega|(2r+\mathrm{oversample}))$ per iteration,
    $O(d(2r+\mathrm{oversample}))$ memory.

    Args:
        key: draws the initialisation's end-to-end $O$ and the starting block.
        problem: :class:`SparseCompletion`.
        rank: $r$; the compressed width is $k=2r$ ($<\min(d_1, d_2)$).
        depth, eps: $L\ge2$ and $\epsilon_l=\epsilon>0$ of the initialisation (3).
        method: ``"gradient"`` ($G_1$, Section 2.3) or ``"exact"`` ($\Psi$, Lemma E.1).
        oversample: extra columns of the iterated block (at least one is kept, for the gap;
            the width $2r+$``oversample`` is capped at 32, the widest the native kernel takes,
            unless $2r\ge32$).
        tol, max_iter: stop when the kept Ritz residuals are $\le$ ``tol``$\,\lambda_1$.
        backend: of the packed products (:func:`~lowrank_theory.dmf.masked_products.entry_products`).

    Raises:
        ValueError: bad rank, depth, eps, method, oversample, tol or max_iter.
    """
    d1, d2 = problem.shape
    rank = check_int(rank, "rank", lo=1)
    width = 2 * rank
    if width >= min(d1, d2):
        raise ValueError(f"the compressed width 2r = {width} must be < min(d1, d2) = {min(d1, d2)}")
    depth = check_int(depth, "depth", lo=2)
    eps = check_float(eps, "eps", lo=0.0, lo_open=True)
    if method not in ("gradient", "exact"):
        raise ValueError(f"method must be 'gradient' or 'exact', got {method!r}")
    oversample = check_int(oversample, "oversample", lo=0)
    tol = check_float(tol, "tol", lo=0.0)
    max_iter = check_int(max_iter, "max_iter", lo=1)
    d = max(d1, d2)
    b = min(max(width + oversample, width + 1), max(32, width + 1), d)
    k1, k2 = jax.random.split(key)
    o = signed_permutation(k1, d)
    diag = jnp.asarray(_observed_diagonal(problem.entries, o, d1), DTYPE)
    shift = eps**depth if method == "gradient" else 0.0
    x0 = jax.random.normal(k2, (d, b), dtype=DTYPE)
    vecs, lam, res, it = _subspace_iteration(
        problem.entries, o, diag, jnp.asarray(shift, DTYPE), x0, jnp.asarray(tol, DTYPE),
        jnp.asarray(max_iter), width=width, backend=backend,
    )  # fmt: skip
    u = o.apply(vecs)[:d1]
    v = vecs[:d2]
    sv = np.sqrt(np.maximum(np.asarray(lam), 0.0))
    gap = float(sv[width - 1] / sv[width]) if b > width and sv[width] > 0 else math.inf
    weights = tuple(eps * jnp.eye(width, dtype=DTYPE) for _ in range(depth))
    info = {"block": b, "method": method, "oversample": oversample, "tol": tol}
    return SparseCompressed(u, v, weights, (eps,) * depth, o, sv, gap, int(it), float(res), info)
