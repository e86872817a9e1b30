r"""Deep matrix completion at scale: memory $O(|\Omega| + (d_1+d_2)r)$ end to end (seed 004,
Section 3, the compressed problem (11)).

Nothing of size $d_1\times d_2$ is ever formed. The pieces, each with its memory:

* **Observed entries** (:func:`sample_observed`, :func:`sparse_completion_instance`): $|\Omega|$
  coordinates drawn uniformly without replacement from a :func:`jax.random.key` (linear indices
  in rounds, the first $|\Omega|$ distinct ones kept), then packed once
  (:func:`~lowrank_theory.dmf.native_kernel.pack_entries`): int32 rows and columns, float64
  values, int64 offsets per (column block, row): $16|\Omega| + 8 d_1\lceil d_2/b\rceil$ bytes,
  the block $b$ wide enough for the offsets to be $O(|\Omega|)$.
* **Ground truth** $\Phi = LR^\top$ by its factors (:class:`LowRankTruth`, $(d_1+d_2)r^\star$);
  its observed values are computed at the coordinates, a chunk at a time.
* **Initialisation.** A full-width $L$-layer factorization with scaled orthogonal $W_l(0)$
  (3) is never stored: everything the compressed problem needs from it is its end-to-end
  product $W_{L:1}(0) = \prod_l\epsilon_l\,O$ (the proof of Theorem 2.1 and the Section 2.3
  recipe see $W_l(0)$ only through $O$ and the scales). We take $O$ a random *signed
  permutation* of size $d=\max(d_1,d_2)$ (:class:`SignedPermutation`, $O(d)$ memory, applied
  by a gather), e.g. $W_1 = \epsilon_1Q_1$, $W_2=\epsilon_2Q_2$,
  $W_3=\epsilon_3 O Q_1^\top Q_2^\top$ with Haar $Q_l$ (each $W_l$ then Haar-distributed); a
  rectangular $\Phi$ is the top-left block of a $d\times d$ problem with the other rows or
  columns unobserved.
* **Compression setup** (:func:`compress_sparse`). With $c=\prod_{l\ge2}\epsilon_l$ and
  $Q=W_{L:2}(0)/c$ orthogonal, the gradient at initialisation is
  $G_1 = c\,Q^\top E$, $E = \Omega\odot(\prod_l\epsilon_l O - \Phi)$ (``method="gradient"``;
  ``"exact"`` drops the $O$ term: $\Psi$ of Lemma E.1), and the stacked matrix of
  :func:`~lowrank_theory.dmf.compression.subspaces_from_gradient` is
  $M = [G_1;\ G_1^\top W_1(0)/\epsilon_1] = c\,\mathrm{diag}(Q^\top, I)\,[E;\ E^\top O]$: its
  right singular vectors are those of the sparse $[E;\ E^\top O]$. Its top $2r$ are found by
  block subspace iteration with Rayleigh-Ritz on $A = E^\top E + O^\top EE^\top O$ (four
  packed products of width $2r+$``oversample`` per iteration, started from a Gaussian block
  drawn from the key: deterministic), stopped when every kept Ritz pair has residual
  $\le$ ``tol``$\cdot\lambda_1$. Then $V_{1,1}$ = those vectors, $U_{L,1} = OV_{1,1}$ and
  $\widetilde W_l(0) = \epsilon_lI_{2r}$, as in :func:`~lowrank_theory.dmf.compression.compress`
  (tested against it on small problems). Why not ``scipy.sparse.linalg.svds``: the block
  iteration runs the same packed products as GD (the native kernel on CPU, multi-threaded; the
  pure-JAX path on accelerators), needs no second (CSR) copy of the entries, and its result
  is a function of the key alone. Memory $O(d(2r+\mathrm{oversample}))$.
* **Compressed GD** (:func:`run_sparse_compressed`): (11) on $(V_{1,1}^\top,\widetilde
  W_1,\dots,\widetilde W_L,U_{L,1})$ with rates $(\gamma\eta,\eta,\dots,\eta,\gamma\eta)$. A
  step is one call of the packed products
  (:func:`~lowrank_theory.dmf.masked_products.entry_products`: $\ell$, $G=EP^\top$,
  $H=U^\top E$ with $P = \widetilde W_{L:1}V^\top$) plus $O((d_1+d_2)k^2)$ for the chain
  contracted in $k\times k$ coordinates: $O(|\Omega|k + dk^2)$ per step. Steps run in jitted
  chunks (:func:`jax.lax.fori_loop`), the recovery error is recorded after each chunk and the
  run stops at ``tol``.
* **Recovery error** (:func:`factor_recovery_error`): $f-\Phi = [U\ L]\,\mathrm{diag}(A,
  -I)\,[V\ R]^\top$, so with thin QR factorizations $[U\ L] = Q_aR_a$, $[V\ R]=Q_bR_b$,
  $\|f-\Phi\|_F = \|R_a\,\mathrm{diag}(A,-I)\,R_b^\top\|_F$: exact to rounding relative to
  $\|\Phi\|_F$ (no cancellation of squared norms), $O(d(k+r^\star)^2)$.

Hyper-parameters adapted to the sampling rate (:func:`lr_for_sampling`): the loss is
$\tfrac12$ the *sum* over observed entries, whose curvature scales with the observed fraction
$p = |\Omega|/(d_1d_2)$, so $\eta = c/p$ with Fig. 5's $c$ (``dmc.compressed_seconds_to_1e-12``
uses $c=0.6$, 90 % of the stability limit $2/(pL\|\Phi\|_2^{2-2/L})$); $\epsilon_l$, $L$ and
$\gamma$ as in Fig. 5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..core.precision import DTYPE
from ..core.validation import check_float, check_int
from .masked_products import PackedObserved, entry_products, pack_entries

__all__ = [
    "LowRankTruth",
    "SignedPermutation",
    "SparseCompletion",
    "SparseCompressed",
    "SparseRun",
    "compress_sparse",
    "factor_recovery_error",
    "low_rank_truth",
    "lr_for_sampling",
    "run_sparse_compressed",
    "sample_observed",
    "signed_permutation",
    "sparse_completion_instance",
    "sparse_step",
    "truth_values",
]

#: entries per chunk when computing the truth's values at the observed coordinates
VALUE_CHUNK = 1 << 20
#: draws per call of the random generator when sampling coordinates
DRAW_CHUNK = 1 << 22


# ----------------------------------------------------------------------------------------------
# the problem: truth by factors, observed coordinates, packed entries
# ----------------------------------------------------------------------------------------------
@partial(jax.tree_util.register_dataclass, data_fields=["left", "right"], meta_fields=[])
@dataclass(frozen=True)
class LowRankTruth:
    r"""$\Phi = LR^\top$ given by its factors $L$ ($d_1\times r$), $R$ ($d_2\times r$)."""

    left: Array
    right: Array

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.left.shape[0]), int(self.right.shape[0]))

    @property
    def rank(self) -> int:
        return int(self.left.shape[1])

    def dense(self) -> Array:
        """$\\Phi$ as a $d_1\\times d_2$ array (for small problems and tests only)."""
        return self.left @ self.right.T


def _check_shape(shape) -> tuple[int, int]:
    if not isinstance(shape, Sequence) or len(shape) != 2:
        raise ValueError(f"shape must be (d1, d2), got {shape!r}")
    d1 = check_int(shape[0], "d1", lo=1, hi=2**31 - 1)
    return d1, check_int(shape[1], "d2", lo=1, hi=2**31 - 1)


def _haar_columns(key, d: int, r: int) -> Array:
    q, rr = jnp.linalg.qr(jax.random.normal(key, (d, r), dtype=DTYPE))
    return q * jnp.sign(jnp.diag(rr))[None, :]  # Haar: fix the signs of the QR


def low_rank_truth(key: Array, shape, rank: int, *, scale: str = "unit") -> LowRankTruth:
    r"""$\Phi = U\operatorname{diag}(s)V^\top$ with Haar $U$ ($d_1\times r^\star$), $V$
    ($d_2\times r^\star$): ``scale="unit"``, $s = 1$ ($\|\Phi\|_2 = 1$, as
    :func:`~lowrank_theory.dmf.completion.completion_instance`); ``"entries"``,
    $s = \sqrt{d_1d_2/r^\star}$ (entries of order 1)."""
    d1, d2 = _check_shape(shape)
    rank = check_int(rank, "rank", lo=1, hi=min(d1, d2))
    if scale not in ("unit", "entries"):
        raise ValueError(f"scale must be 'unit' or 'entries', got {scale!r}")
    k1, k2 = jax.random.split(key)
    s = 1.0 if scale == "unit" else math.sqrt(d1 * d2 / rank)
    return LowRankTruth(s * _haar_columns(k1, d1, rank), _haar_columns(k2, d2, rank))


def sample_observed(key: Array, shape, n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    r"""$|\Omega|$ = ``n_obs`` distinct coordinates drawn uniformly (without replacement):
    int32 (rows, cols), in row-major order. $O(|\Omega|)$ memory, no $d_1\times d_2$ mask.

    Small or dense problems ($d_1d_2 < 4|\Omega|$ or $\le 2^{16}$) draw a subset directly
    (:func:`jax.random.choice`); otherwise linear indices are drawn in rounds and the first
    ``n_obs`` distinct ones (in draw order) kept, which is a uniform subset. Deterministic
    given ``key``."""
    d1, d2 = _check_shape(shape)
    total = d1 * d2
    n_obs = check_int(n_obs, "n_obs", lo=1, hi=total)
    if 4 * n_obs > total or total <= 1 << 16:
        lin = np.sort(np.asarray(jax.random.choice(key, total, (n_obs,), replace=False)))
    else:
        lin = _draw_distinct(key, total, n_obs)
    return (lin // d2).astype(np.int32), (lin % d2).astype(np.int32)


def _draws(key, size: int, total: int) -> np.ndarray:
    """``size`` i.i.d. uniform integers in [0, total), ``DRAW_CHUNK`` per call of the generator."""
    out = np.empty(size, dtype=np.int64)
    for c, start in enumerate(range(0, size, DRAW_CHUNK)):
        n = min(DRAW_CHUNK, size - start)
        k = jax.random.fold_in(key, c)
        out[start : start + n] = np.asarray(jax.random.randint(k, (n,), 0, total, dtype=jnp.int64))
    return out


def _sorted_distinct(x: np.ndarray) -> np.ndarray:
    """The distinct values of ``x``, sorted (an in-place sort; NumPy 2's ``np.unique`` hashes,
    ~100x slower on 2e7 random int64, measured)."""
    x.sort()
    if x.size < 2:
        return x
    keep = np.empty(x.size, dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def _draw_distinct(key, total: int, n_obs: int) -> np.ndarray:
    """A uniform ``n_obs``-subset of [0, total), sorted: the distinct values of i.i.d. draws
    are, given their number, a uniform subset of that size (exchangeability); draws are added
    until there are at least ``n_obs``, then the surplus is dropped at random (a uniform subset
    of a uniform subset is uniform). A sort, no argsort: O(n log n), O(n) memory."""
    k_draw, k_drop = jax.random.split(key)
    lin = np.empty(0, dtype=np.int64)
    rnd = 0
    while lin.size < n_obs:
        missing = n_obs - lin.size
        # the missing ones, their expected repeats (n^2 / total) and a margin
        want = missing + (n_obs * n_obs) // total + 1024
        lin = _sorted_distinct(
            np.concatenate([lin, _draws(jax.random.fold_in(k_draw, rnd), want, total)])
        )
        rnd += 1
    surplus = lin.size - n_obs
    if surplus:
        drop = np.empty(0, dtype=np.int64)
        rnd = 0
        while drop.size < surplus:  # `surplus` distinct positions, the first ones drawn
            cand = _draws(jax.random.fold_in(k_drop, rnd), 2 * surplus + 16, lin.size)
            allc = np.concatenate([drop, cand])
            _, first = np.unique(allc, return_index=True)
            drop = allc[np.sort(first)][:surplus]
            rnd += 1
        keep = np.ones(lin.size, dtype=bool)
        keep[drop] = False
        lin = lin[keep]
    return lin


@jax.jit
def _values_chunk(left, right, rows, cols):
    lr = left.at[rows].get(mode="fill", fill_value=0.0)
    rr = right.at[cols].get(mode="fill", fill_value=0.0)
    return jnp.sum(lr * rr, axis=1)


def truth_values(truth: LowRankTruth, rows, cols) -> np.ndarray:
    """$\\Phi_{ij}$ at the coordinates, ``VALUE_CHUNK`` at a time (float64 NumPy)."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    out = np.empty(rows.shape[0], dtype=np.float64)
    for s in range(0, rows.shape[0], VALUE_CHUNK):
        r, c = rows[s : s + VALUE_CHUNK], cols[s : s + VALUE_CHUNK]
        pad = VALUE_CHUNK - r.shape[0] if rows.shape[0] > VALUE_CHUNK else 0
        rp = np.concatenate([r, np.full(pad, truth.shape[0], np.int32)]) if pad else r
        cp = np.concatenate([c, np.full(pad, truth.shape[1], np.int32)]) if pad else c
        v = np.asarray(_values_chunk(truth.left, truth.right, jnp.asarray(rp), jnp.asarray(cp)))
        out[s : s + r.shape[0]] = v[: r.shape[0]]
    return out


@dataclass(frozen=True)
class SparseCompletion:
    r"""A completion problem held as packed observed entries and a truth by factors.

    ``entries``: :class:`~lowrank_theory.dmf.native_kernel.PackedObserved` of
    $\Omega\odot\Phi$; ``truth``: :class:`LowRankTruth`; ``n_obs`` $=|\Omega|$."""

    entries: PackedObserved
    truth: LowRankTruth
    n_obs: int
    info: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.entries.shape

    @property
    def fraction(self) -> float:
        """The observed fraction $p = |\\Omega|/(d_1d_2)$."""
        return self.n_obs / (self.shape[0] * self.shape[1])


def sparse_completion_instance(
    key: Array, shape, rank: int, n_obs: int, *, scale: str = "unit", block: int | None = None
) -> SparseCompletion:
    r"""A rank-$r^\star$ truth (:func:`low_rank_truth`) and $|\Omega|$ = ``n_obs`` uniformly
    drawn observed entries (:func:`sample_observed`), packed once
    (:func:`~lowrank_theory.dmf.native_kernel.pack_entries`; ``block`` its column block).
    ``info`` has the seconds each part took (``sample_s``, ``values_s``, ``pack_s``)."""
    k1, k2 = jax.random.split(key)
    t0 = time.perf_counter()
    truth = low_rank_truth(k1, shape, rank, scale=scale)
    rows, cols = sample_observed(k2, shape, n_obs)
    t1 = time.perf_counter()
    vals = truth_values(truth, rows, cols)
    t2 = time.perf_counter()
    entries = pack_entries(rows, cols, vals, truth.shape, block=block)
    del rows, cols, vals
    t3 = time.perf_counter()
    info = {"sample_s": t1 - t0, "values_s": t2 - t1, "pack_s": t3 - t2}
    return SparseCompletion(entries, truth, int(n_obs), info)


def lr_for_sampling(shape, n_obs: int, lr_times_p: float = 0.6) -> float:
    r"""$\eta = c/p$, $p = |\Omega|/(d_1d_2)$: Fig. 5's step adapted to the sampling rate
    (module docstring); $c$ = ``lr_times_p``."""
    d1, d2 = _check_shape(shape)
    n_obs = check_int(n_obs, "n_obs", lo=1, hi=d1 * d2)
    return check_float(lr_times_p, "lr_times_p", lo=0.0, lo_open=True) * d1 * d2 / n_obs


# ----------------------------------------------------------------------------------------------
# the initialisation's end-to-end product and the compression setup
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# the recovery error from factors, and compressed GD on the packed entries
# ----------------------------------------------------------------------------------------------
def _chain(mids):
    """W_L ... W_1 of small square factors."""
    out = mids[0]
    for w in mids[1:]:
        out = w @ out
    return out


def factor_recovery_error(u, a, v, truth: LowRankTruth) -> Array:
    r"""$\|UAV^\top - \Phi\|_F / \|\Phi\|_F$ without forming either matrix (module docstring):
    thin QR factorizations of $[U\ L]$ and $[V\ R]$, then a $(k+r)\times(k+r)$ product."""
    ra = jnp.linalg.qr(jnp.concatenate([u, truth.left], axis=1), mode="r")
    rb = jnp.linalg.qr(jnp.concatenate([v, truth.right], axis=1), mode="r")
    k, r = a.shape[0], truth.rank
    c = jnp.zeros((k + r, k + r), DTYPE).at[:k, :k].set(a).at[k:, k:].set(-jnp.eye(r, dtype=DTYPE))
    phi = jnp.zeros_like(c).at[k:, k:].set(jnp.eye(r, dtype=DTYPE))
    return jnp.linalg.norm(ra @ c @ rb.T) / jnp.linalg.norm(ra @ phi @ rb.T)


def sparse_step(state, entries, lrs, decay, backend: str = "auto"):
    r"""One GD step of (11) on packed entries: ``state = (U, (W~_1, ..., W~_L), V)``; ``lrs`` =
    $(\gamma\eta, \eta)$ (outer, inner), ``decay`` $\lambda$ on the inner factors. Returns
    (loss before the step, new state). The chain is contracted in $k\times k$ coordinates
    (as :func:`~lowrank_theory.dmf.factorization.contracted_gradients`): with
    $M=\widetilde W_{L:1}$, $(\ell, G, H)$ = the packed products of $(U, MV^\top)$,
    $\nabla_U = G$, $\nabla_V = H^\top M$, $\nabla_{\widetilde W_l} = A_l^\top (HV) B_l^\top$."""
    u, mids, v = state
    outer, inner = lrs
    n = len(mids)
    below = [None]  # below[i] = W_i ... W_1
    for w in mids:
        below.append(w if below[-1] is None else w @ below[-1])
    above = [None]  # above[i] = W_L ... W_{L-i+1}
    for w in reversed(mids):
        above.append(w if above[-1] is None else above[-1] @ w)
    m = below[-1]
    loss, g, h = entry_products(u, m @ v.T, entries, backend=backend)
    c = h @ v  # U^T E V
    grads = []
    for i in range(n):
        a, b = above[n - 1 - i], below[i]
        gi = c if a is None else a.T @ c
        grads.append(gi if b is None else gi @ b.T)
    new_mids = tuple(
        (1.0 - inner * decay) * w - inner * gw for w, gw in zip(mids, grads, strict=True)
    )
    return loss, (u - outer * g, new_mids, v - outer * (h.T @ m))


@partial(jax.jit, static_argnames=("n_steps", "backend"), donate_argnums=(0,))
def _gd_chunk(state, entries, truth, lrs, decay, *, n_steps, backend):
    def body(_, carry):
        st, _ = carry
        return sparse_step(st, entries, lrs, decay, backend)[::-1]

    st, loss = jax.lax.fori_loop(0, n_steps, body, (state, jnp.zeros((), DTYPE)))
    u, mids, v = st
    return st, loss, factor_recovery_error(u, _chain(mids), v, truth)


@dataclass(frozen=True)
class SparseRun:
    r"""The result of :func:`run_sparse_compressed`: the final factors, and per record (after
    every ``record_every`` steps, and at step 0) ``steps``, ``recovery`` (relative error of
    $f_C$), ``loss`` (the loss at the last step of the chunk, NaN at step 0) and ``seconds``
    (wall time since the start of GD, compile excluded where the chunk was compiled before).
    ``reached``: the first recorded step with recovery $\le$ ``tol`` (None if never)."""

    u: Array
    weights: tuple[Array, ...]
    v: Array
    steps: np.ndarray
    recovery: np.ndarray
    loss: np.ndarray
    seconds: np.ndarray
    reached: int | None
    info: dict = field(default_factory=dict)


def run_sparse_compressed(
    comp: SparseCompressed,
    problem: SparseCompletion,
    *,
    lr: float,
    steps: int,
    gamma: float = 0.01,
    weight_decay: float = 0.0,
    tol: float | None = None,
    record_every: int = 50,
    backend: str = "auto",
    progress: Callable[[dict], None] | None = None,
) -> SparseRun:
    r"""Compressed GD (11) on the packed entries, from ``comp``, for at most ``steps`` steps.

    Rates $\gamma\eta$ on $U_{L,1}, V_{1,1}$ and $\eta$ (with weight decay $\lambda$) on the
    $\widetilde W_l$, as :func:`~lowrank_theory.dmf.compression.run_compressed` (the same
    iterates to rounding, tested). Runs ``record_every`` steps per jitted chunk; after each
    chunk the exact recovery error is recorded (:func:`factor_recovery_error`), ``progress``
    (if given) is called with ``{"step", "recovery", "loss", "seconds"}``, and the run stops
    once the error is $\le$ ``tol``. Ctrl-C between chunks stops it cleanly (the records so far
    are returned, ``info["interrupted"]`` True).

    Raises:
        ValueError: bad rates, steps, record_every or tol; ``comp`` not made for ``problem``.
        FloatingPointError: the iterates became non-finite (lower ``lr``).
    """
    lr = check_float(lr, "lr", lo=0.0, lo_open=True)
    gamma = check_float(gamma, "gamma", lo=0.0)
    weight_decay = check_float(weight_decay, "weight_decay", lo=0.0)
    steps = check_int(steps, "steps", lo=1)
    stride = check_int(record_every, "record_every", lo=1)
    if tol is not None:
        tol = check_float(tol, "tol", lo=0.0)
    if comp.u.shape[0] != problem.shape[0] or comp.v.shape[0] != problem.shape[1]:
        raise ValueError(
            f"comp has factors for {(comp.u.shape[0], comp.v.shape[0])}, problem is {problem.shape}"
        )
    lrs = (jnp.asarray(gamma * lr, DTYPE), jnp.asarray(lr, DTYPE))
    decay = jnp.asarray(weight_decay, DTYPE)
    state = (comp.u + 0.0, tuple(w + 0.0 for w in comp.weights), comp.v + 0.0)  # donated copies
    err0 = float(factor_recovery_error(comp.u, _chain(comp.weights), comp.v, problem.truth))
    rec = {"steps": [0], "recovery": [err0], "loss": [math.nan], "seconds": [0.0]}
    reached = 0 if tol is not None and err0 <= tol else None
    done, interrupted, t0 = 0, False, time.perf_counter()
    try:
        while done < steps and reached is None:
            n = min(stride, steps - done)
            state, loss, err = _gd_chunk(state, problem.entries, problem.truth, lrs, decay,
                                         n_steps=n, backend=backend)  # fmt: skip
            err = float(err)  # syncs
            done += n
            for name, val in (("steps", done), ("recovery", err), ("loss", float(loss)),
                              ("seconds", time.perf_counter() - t0)):  # fmt: skip
                rec[name].append(val)
            if not math.isfinite(err):
                raise FloatingPointError(f"compressed GD diverged at step {done}: lower lr")
            if progress is not None:
                progress({k: v[-1] for k, v in rec.items()} | {"step": done})
            if tol is not None and err <= tol:
                reached = done
    except KeyboardInterrupt:
        interrupted = True
    u, mids, v = state
    arrays = {
        k: np.asarray(v, dtype=np.int64 if k == "steps" else np.float64) for k, v in rec.items()
    }
    info = {"lr": lr, "gamma": gamma, "weight_decay": weight_decay, "interrupted": interrupted}
    return SparseRun(u, mids, v, arrays["steps"], arrays["recovery"], arrays["loss"],
                     arrays["seconds"], reached, info)  # fmt: skip
