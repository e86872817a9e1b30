r"""The problem of deep matrix completion at scale (:mod:`lowrank_theory.dmf.large_completion`):
a rank-$r^\star$ truth held by its factors (:class:`LowRankTruth`), $|\Omega|$ observed
coordinates drawn without a $d_1\times d_2$ mask (:func:`sample_observed`), the truth's values
there, the packed entries (:class:`SparseCompletion`) and the step adapted to the sampling rate
(:func:`lr_for_sampling`). Memory $O(|\Omega| + (d_1+d_2)r^\star)$.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..core.precision import DTYPE
from ..core.validation import check_float, check_int
from .masked_products import PackedObserved, pack_entries

__all__ = [
    "DRAW_CHUNK",
    "VALUE_CHUNK",
    "LowRankTruth",
    "SparseCompletion",
    "low_rank_truth",
    "lr_for_sampling",
    "sample_observed",
    "sparse_completion_instance",
    "truth_values",
]

#: entries per chunk when computing the truth's values at the observed coordinates
VALUE_CHUNK = 1 << 20
#: draws per call of the random generator when sampling coordinates
DRAW_CHUNK = 1 << 22


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
