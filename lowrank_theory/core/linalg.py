r"""Shared numerics: singular values, low-rank approximation, ranks, projectors, roots, angles.

Conventions used everywhere in the package (and relied on by the claim checks):

* Singular values are sorted in decreasing order and **1-indexed** as in the seeds:
  $\sigma_1(A)\ge\sigma_2(A)\ge\dots$, and $\sigma_k(A) = 0$ for
  $k > \min(m, n)$ (so $\sigma_{RL+1}(E)$ is defined for every $R$, $L$).
* $\mathrm{LR}_r(A)$ is the best rank-$r$ approximation of $A$ in every unitarily invariant
  norm (Eckart–Young–Mirsky): the truncated SVD $\sum_{i\le r}\sigma_i u_i v_i^\top$.
  $\mathrm{LR}_0(A) = 0$ and $\mathrm{LR}_r(A) = A$ for $r\ge\min(m,n)$. When
  $\sigma_r = \sigma_{r+1}$ it is not unique; the SVD's choice is returned.
* Numerical rank (**the one rank rule of the package**, :func:`rank_from_singular_values`):
  the number of singular values above $\tau = \mathrm{rtol}\cdot s$ where $s$ is the
  *scale of the problem the matrix came from* (``scale=``: e.g. $\|W\|_2$ of the frozen
  weights, or $\sigma_1$ of the target) and defaults to the matrix's own $\sigma_1(A)$; the
  default $\mathrm{rtol} = \max(m,n)\,\varepsilon_{64}$ is NumPy's ``matrix_rank`` rule, the
  size of what rounding alone leaves in an exactly rank-deficient matrix of that scale. A
  computed matrix that should be zero (an adapter of pure rounding noise) has a "rank" on its
  own scale, so callers that know the problem's scale pass it. :func:`rank_gap` reports how
  clear-cut the decision was.
* Chain products $M_k\cdots M_1$ of a list ``[M_1, ..., M_k]`` (first factor applied first):
  :func:`chain_product`, the one copy used by every paper package.
* Condition number $\kappa(A) = \sigma_1/\sigma_{\min(m,n)}$ (``inf`` when singular);
  $\kappa_*(A) = \sigma_1/\sigma_k$ over the $k$ singular values the rank rule keeps
  (:func:`kappa_star`).

Every function accepts NumPy or JAX arrays and computes in float64. The ``*_np`` variants
(:func:`pinv_np`, :func:`orth_np`, :func:`low_rank_approx_np`) and :func:`psd_roots`,
:func:`kappa_star` compute with NumPy on the host and return NumPy arrays: for closed forms
built from many small host-side products (seed 002's Appendix F), where a JAX dispatch per
product costs more than the product. They apply the same rank rule.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax import Array
from jaxtyping import ArrayLike, Float

from .precision import DTYPE, EPS
from .validation import as_matrix, check_int

__all__ = [
    "PsdRoots",
    "chain_product",
    "condition_number",
    "kappa_star",
    "low_rank_approx",
    "low_rank_approx_np",
    "numerical_rank",
    "orth",
    "orth_np",
    "pinv",
    "pinv_np",
    "principal_angles",
    "projector",
    "psd_roots",
    "psd_sqrt",
    "random_orthogonal",
    "random_orthonormal",
    "random_semi_orthogonal",
    "random_with_spectrum",
    "random_with_spectrum_thin",
    "rank_from_singular_values",
    "rank_gap",
    "rank_threshold",
    "sigma",
    "singular_values",
    "truncated_svd",
]


def singular_values(a: Float[ArrayLike, "m n"]) -> Float[Array, " k"]:
    r"""All $\min(m,n)$ singular values of ``a``, in decreasing order."""
    a = as_matrix(a, "a")
    return jnp.linalg.svd(a, compute_uv=False)


def sigma(a: Float[ArrayLike, "m n"], k: int) -> float:
    r"""The $k$-th largest singular value $\sigma_k(a)$, 1-indexed; 0 when $k>\min(m,n)$.

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.linalg import sigma
        >>> sigma(np.diag([3.0, 2.0, 1.0]), 2), sigma(np.eye(2), 3)
        (2.0, 0.0)
    """
    k = check_int(k, "k", lo=1)
    s = singular_values(a)
    return float(s[k - 1]) if k <= s.shape[0] else 0.0


def truncated_svd(
    a: Float[ArrayLike, "m n"], r: int
) -> tuple[Float[Array, "m r"], Float[Array, " r"], Float[Array, "r n"]]:
    r"""The leading rank-$r$ SVD triple $(U_r, s_r, V_r^\top)$ with $r\le\min(m,n)$."""
    a = as_matrix(a, "a")
    r = check_int(r, "r", lo=0, hi=min(a.shape))
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    return u[:, :r], s[:r], vt[:r, :]


def low_rank_approx(a: Float[ArrayLike, "m n"], r: int) -> Float[Array, "m n"]:
    r"""$\mathrm{LR}_r(a)$, the best rank-$r$ approximation (truncated SVD).

    ``r`` may exceed $\min(m,n)$, in which case ``a`` itself is returned.

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.linalg import low_rank_approx
        >>> np.asarray(low_rank_approx(np.diag([3.0, 2.0, 1.0]), 1)).round(12).tolist()
        [[3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    a = as_matrix(a, "a")
    r = check_int(r, "r", lo=0)
    r = min(r, min(a.shape))
    if r == 0:
        return jnp.zeros_like(a)
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    return (u[:, :r] * s[None, :r]) @ vt[:r, :]


def rank_threshold(
    s: ArrayLike, shape: tuple[int, ...], rtol: float | None = None, scale: float | None = None
) -> float:
    r"""The cut-off $\tau=\mathrm{rtol}\cdot\mathrm{scale}$ of the rank rule (module docstring).

    ``s``: the singular values (decreasing); ``shape``: the matrix's shape (for the default
    $\mathrm{rtol}=\max(m,n)\,\varepsilon$); ``scale``: the problem's scale, default $s_1$.
    """
    if rtol is None:
        rtol = max(shape) * EPS
    if not rtol >= 0:
        raise ValueError(f"rtol must be non-negative, got {rtol}")
    if scale is None:
        s = np.asarray(s)
        scale = float(s[0]) if s.shape[0] else 0.0
    elif not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and non-negative, got {scale}")
    return float(rtol * scale)


def rank_from_singular_values(
    s: ArrayLike, shape: tuple[int, ...], rtol: float | None = None, scale: float | None = None
) -> int:
    r"""Numerical rank from singular values ``s``: how many exceed :func:`rank_threshold`.

    A zero matrix (or an empty spectrum) has rank 0.

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.linalg import rank_from_singular_values
        >>> s = np.array([1e-3, 1e-5, 3e-17])
        >>> rank_from_singular_values(s, (3, 3)), rank_from_singular_values(s, (3, 3), scale=1.0)
        (3, 2)
    """
    s = np.asarray(s)
    if s.shape[0] == 0 or not float(s[0]) > 0:
        return 0
    return int(np.sum(s > rank_threshold(s, shape, rtol, scale)))


def numerical_rank(
    a: Float[ArrayLike, "m n"], rtol: float | None = None, *, scale: float | None = None
) -> int:
    r"""Number of singular values above $\mathrm{rtol}\cdot\mathrm{scale}$ (the rank rule).

    The default $\mathrm{rtol}=\max(m,n)\,\varepsilon_{64}$ treats as zero what rounding alone
    can produce from an exactly rank-deficient matrix of that scale; ``scale`` defaults to
    $\sigma_1(a)$ but should be the scale of the problem ``a`` was computed from. A zero matrix
    has rank 0.
    """
    a = as_matrix(a, "a")
    s = np.asarray(jnp.linalg.svd(a, compute_uv=False))
    return rank_from_singular_values(s, a.shape, rtol, scale)


def chain_product(mats: Sequence[ArrayLike], *, identity: int | None = None, name: str = "mats"):
    r"""The chain product $M_k\cdots M_1$ of ``mats = [M_1, ..., M_k]`` ($M_1$ applied first).

    An empty list gives the $d\times d$ identity with $d$ = ``identity`` (required then). NumPy
    inputs give a NumPy result (computed by NumPy), anything else a JAX array; works under
    ``jit`` (shapes are checked statically; ``name`` is the argument named in the errors).

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.linalg import chain_product
        >>> a, b = np.diag([1.0, 2.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
        >>> chain_product([a, b]).tolist(), chain_product([], identity=2).tolist()
        ([[0.0, 2.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])
    """
    mats = list(mats)
    if not mats:
        if identity is None:
            raise ValueError("chain_product of no matrices needs identity=d")
        return jnp.eye(check_int(identity, "identity", lo=0), dtype=DTYPE)
    xp = np if all(isinstance(m, np.ndarray) for m in mats) else jnp
    mats = [xp.asarray(m) for m in mats]
    for i, m in enumerate(mats):
        if m.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a matrix, got shape {m.shape}")
        if i and m.shape[1] != mats[i - 1].shape[0]:
            raise ValueError(
                f"{name}[{i}] has shape {m.shape} but {name}[{i - 1}] outputs "
                f"{mats[i - 1].shape[0]} rows: the product W_L...W_1 is undefined"
            )
    if identity is not None and mats[0].shape[1] != identity:
        raise ValueError(f"chain acts on dimension {mats[0].shape[1]}, not identity={identity}")
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


def rank_gap(
    a: Float[ArrayLike, "m n"], rtol: float | None = None, *, scale: float | None = None
) -> float:
    r"""How clear-cut :func:`numerical_rank` is: $\sigma_k/\sigma_{k+1}$ at the chosen rank $k$
    (``rtol``, ``scale`` as there).

    ``inf`` when the matrix is numerically full rank or zero; values near 1 mean the rank
    decision is arbitrary and the caller should pass the rank explicitly.
    """
    a = as_matrix(a, "a")
    s = np.asarray(jnp.linalg.svd(a, compute_uv=False))
    k = rank_from_singular_values(s, a.shape, rtol, scale)
    if k == 0 or k >= s.shape[0]:
        return float("inf")
    return float(s[k - 1] / s[k]) if s[k] > 0 else float("inf")


def condition_number(a: Float[ArrayLike, "m n"]) -> float:
    r"""$\kappa(a)=\sigma_1/\sigma_{\min(m,n)}$; ``inf`` for a singular matrix."""
    s = np.asarray(singular_values(a))
    return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")


def orth(
    a: Float[ArrayLike, "m n"],
    rank: int | None = None,
    rtol: float | None = None,
    *,
    scale: float | None = None,
):
    r"""Orthonormal basis $Q\in\mathbb{R}^{m\times k}$ of the column space of ``a``.

    $k$ is ``rank`` if given, else :func:`numerical_rank` with ``rtol`` and ``scale`` (the
    problem's scale, default $\sigma_1(a)$).
    """
    a = as_matrix(a, "a")
    if rank is None:
        k = numerical_rank(a, rtol, scale=scale)
    else:
        k = check_int(rank, "rank", lo=0, hi=min(a.shape))
    u, _, _ = jnp.linalg.svd(a, full_matrices=False)
    return u[:, :k]


def projector(
    a: Float[ArrayLike, "m n"],
    rank: int | None = None,
    rtol: float | None = None,
    *,
    scale: float | None = None,
):
    r"""Orthogonal projector $QQ^\top$ onto the column space of ``a`` (see :func:`orth`)."""
    q = orth(a, rank, rtol, scale=scale)
    return q @ q.T


def pinv(
    a: Float[ArrayLike, "m n"], rtol: float | None = None, *, scale: float | None = None
) -> Float[Array, "n m"]:
    r"""Moore–Penrose pseudo-inverse, inverting only the singular values above the rank rule's
    cut-off (:func:`rank_threshold` with ``rtol`` and ``scale``, the problem's scale)."""
    a = as_matrix(a, "a")
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    tau = rank_threshold(s, a.shape, rtol, scale)
    s_inv = jnp.where(s > tau, 1.0 / jnp.where(s > tau, s, 1.0), 0.0)
    return (vt.T * s_inv[None, :]) @ u.T


def psd_sqrt(
    a: Float[ArrayLike, "n n"], *, inverse: bool = False, rtol: float | None = None
) -> Float[Array, "n n"]:
    r"""Symmetric PSD square root $A^{1/2}$ (or $A^{-1/2}$ with ``inverse=True``) by ``eigh``.

    The input must be symmetric and PSD up to rounding: the check uses
    $\|A-A^\top\|_F \le 100 n\varepsilon\|A\|_F$ and $\lambda_{\min}\ge -\tau$ with
    $\tau = \mathrm{rtol}\cdot\lambda_{\max}$ (default $\mathrm{rtol} = 100 n\varepsilon$).
    Eigenvalues in $[-\tau, \tau]$ are treated as zero; ``inverse=True`` then raises, since the
    inverse root of a singular matrix does not exist (use :func:`pinv` for a pseudo-inverse).
    """
    a = as_matrix(a, "a", square=True)
    n = a.shape[0]
    scale = float(jnp.linalg.norm(a))
    if float(jnp.linalg.norm(a - a.T)) > 100 * n * EPS * max(scale, 1e-300):
        raise ValueError("a must be symmetric (it is not, beyond rounding)")
    w, v = jnp.linalg.eigh((a + a.T) / 2)
    rtol = 100 * n * EPS if rtol is None else rtol
    tau = rtol * max(float(jnp.max(jnp.abs(w))), 0.0)
    if float(w[0]) < -tau:
        raise ValueError(f"a must be positive semi-definite; smallest eigenvalue {float(w[0]):.3e}")
    w = jnp.where(w > tau, w, 0.0)
    if inverse:
        if float(w[0]) <= 0.0:
            raise ValueError("a is singular: its inverse square root does not exist")
        return (v * (1.0 / jnp.sqrt(w))[None, :]) @ v.T
    return (v * jnp.sqrt(w)[None, :]) @ v.T


def principal_angles(a: Float[ArrayLike, "n p"], b: Float[ArrayLike, "n q"]) -> Float[Array, " k"]:
    r"""Principal angles (radians, increasing) between the column spaces of ``a`` and ``b``.

    Both inputs are orthonormalised first (numerical rank, default tolerance); the cosines are
    the singular values of $Q_a^\top Q_b$, and small angles are computed from the sines
    (Björck–Golub) so that angles near 0 are accurate.
    """
    a = as_matrix(a, "a")
    b = as_matrix(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got {a.shape} and {b.shape}")
    qa, qb = orth(a), orth(b)
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa
    c = jnp.clip(jnp.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)  # decreasing
    resid = qb - qa @ (qa.T @ qb)
    s = jnp.clip(jnp.linalg.svd(resid, compute_uv=False), 0.0, 1.0)[::-1]  # increasing
    # cos is accurate for large angles, sin for small ones (both lists: increasing angle)
    return jnp.where(c > np.sqrt(0.5), jnp.arcsin(s), jnp.arccos(c))


def random_orthogonal(key: Array, n: int) -> Float[Array, "n n"]:
    r"""A Haar-distributed orthogonal $n\times n$ matrix (QR of a Gaussian, signs fixed)."""
    n = check_int(n, "n", lo=1)
    g = jax.random.normal(key, (n, n), dtype=DTYPE)
    q, r = jnp.linalg.qr(g)
    return q * jnp.sign(jnp.diag(r))[None, :]


def _padded_spectrum(singular_vals: ArrayLike, m: int, n: int) -> np.ndarray:
    """At most min(m, n) finite non-negative singular values, padded with zeros to min(m, n)."""
    s = np.asarray(singular_vals, dtype=DTYPE).reshape(-1)
    k = min(m, n)
    if s.shape[0] > k:
        raise ValueError(f"at most min(m, n) = {k} singular values, got {s.shape[0]}")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise ValueError("singular values must be finite and non-negative")
    return np.concatenate([s, np.zeros(k - s.shape[0])])


def random_semi_orthogonal(key: Array, rows: int, cols: int) -> Float[Array, "rows cols"]:
    r"""The top-left ``rows`` $\times$ ``cols`` block of :func:`random_orthogonal` of size
    $\max(\text{rows}, \text{cols})$: Haar-distributed, orthonormal columns (tall) or rows
    (wide). The same key gives the same matrix as that block, which the deep factorizations
    (seed 004) are initialised from."""
    rows, cols = check_int(rows, "rows", lo=1), check_int(cols, "cols", lo=1)
    return random_orthogonal(key, max(rows, cols))[:rows, :cols]


def random_with_spectrum(
    key: Array, m: int, n: int, singular_vals: ArrayLike
) -> Float[Array, "m n"]:
    r"""A random $m\times n$ matrix $U\operatorname{diag}(s)V^\top$ with Haar $U, V$.

    ``singular_vals`` has at most $\min(m,n)$ non-negative entries (padded with zeros), in any
    order; the result's singular values are exactly these (to rounding).
    """
    m = check_int(m, "m", lo=1)
    n = check_int(n, "n", lo=1)
    # padded on the host so that the traced shapes depend on (m, n) only (no recompiles)
    s = jnp.asarray(_padded_spectrum(singular_vals, m, n))
    k = min(m, n)
    ku, kv = jax.random.split(key)
    u = random_orthogonal(ku, m)[:, :k]
    v = random_orthogonal(kv, n)[:, :k]
    return (u * s[None, :]) @ v.T


# --- NumPy in, NumPy out: host-side closed forms ---------------------------------------------
def _np64(a: ArrayLike, name: str) -> np.ndarray:
    """``a`` as a finite float64 NumPy matrix (checked on the host: no JAX dispatch)."""
    out = np.asarray(a, dtype=DTYPE)
    if out.ndim != 2:
        raise ValueError(f"{name} must have 2 dimension(s), got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or inf")
    return out


def pinv_np(a: ArrayLike, rtol: float | None = None, *, scale: float | None = None) -> np.ndarray:
    r"""Moore–Penrose pseudo-inverse by NumPy's SVD, inverting the singular values the rank rule
    keeps (:func:`rank_threshold` with ``rtol``, ``scale``); a zero matrix gives zeros.

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.linalg import pinv_np
        >>> pinv_np(np.diag([2.0, 1e-20])).tolist()
        [[0.5, 0.0], [0.0, 0.0]]
    """
    a = _np64(a, "a")
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    keep = s > rank_threshold(s, a.shape, rtol, scale) if s.size and s[0] > 0 else s > np.inf
    inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    return (vt.T * inv[None, :]) @ u.T


def orth_np(a: ArrayLike, rtol: float | None = None, *, scale: float | None = None) -> np.ndarray:
    r"""$\Phi_*(a)$: orthonormal basis of the column space (NumPy's left singular vectors), of
    :func:`rank_from_singular_values` columns with ``rtol``, ``scale``; $m\times 0$ for a zero
    matrix."""
    a = _np64(a, "a")
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, : rank_from_singular_values(s, a.shape, rtol, scale)]


def low_rank_approx_np(a: ArrayLike, r: int) -> np.ndarray:
    r"""$\mathrm{LR}_r(a)$ (seed 002's $\mathrm{SVD}_r$) by NumPy's SVD; ``r`` may exceed
    $\min(m,n)$ (then ``a`` itself, to rounding)."""
    a = _np64(a, "a")
    r = check_int(r, "r", lo=0)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    r = min(r, s.size)
    return (u[:, :r] * s[None, :r]) @ vt[:r, :]


def kappa_star(a: ArrayLike, rtol: float | None = None, *, scale: float | None = None) -> float:
    r"""$\kappa_*(a)=\sigma_1/\sigma_k$ with $k$ the numerical rank (``rtol``, ``scale``): the
    condition number on the range (seed 002's $\|X\|_{op}/\lambda_*(X)$); 1 for a zero matrix.

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.linalg import kappa_star
        >>> kappa_star(np.diag([4.0, 2.0, 0.0])), kappa_star(np.zeros((2, 2)))
        (2.0, 1.0)
    """
    a = _np64(a, "a")
    s = np.linalg.svd(a, compute_uv=False)
    k = rank_from_singular_values(s, a.shape, rtol, scale)
    return float(s[0] / s[k - 1]) if k else 1.0


class PsdRoots(NamedTuple):
    r"""$(S^{1/2}, (S^{1/2})^\dagger, S^\dagger, \operatorname{rank}S)$ of a PSD matrix $S$."""

    root: np.ndarray
    root_pinv: np.ndarray
    pinv: np.ndarray
    rank: int


def psd_roots(a: ArrayLike, rtol: float | None = None, *, scale: float | None = None) -> PsdRoots:
    r"""$S^{1/2}$, its pseudo-inverse, $S^\dagger$ and the rank of a PSD $S$, from one NumPy ``eigh``.

    $S$ is symmetrised first; eigenvalues at or below $\tau$ = :func:`rank_threshold` of
    $|\lambda|$ (``rtol``; ``scale`` defaults to $\max|\lambda|$) count as zero (negative ones
    too: no PSD check, see :func:`psd_sqrt` for a checked root).

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.linalg import psd_roots
        >>> r = psd_roots(np.diag([4.0, 0.0]))
        >>> r.root.tolist(), r.root_pinv.tolist(), r.rank
        ([[2.0, 0.0], [0.0, 0.0]], [[0.5, 0.0], [0.0, 0.0]], 1)
    """
    a = _np64(a, "a")
    w, v = np.linalg.eigh((a + a.T) / 2)
    tau = rank_threshold(np.sort(np.abs(w))[::-1], a.shape, rtol, scale)
    keep = w > tau
    wp = np.where(keep, w, 0.0)
    inv_w = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    return PsdRoots(
        (v * np.sqrt(wp)[None, :]) @ v.T,
        (v * np.sqrt(inv_w)[None, :]) @ v.T,
        (v * inv_w[None, :]) @ v.T,
        int(keep.sum()),
    )


def random_orthonormal(key: Array, m: int, n: int) -> np.ndarray:
    r"""A Haar-distributed $m\times n$ matrix with orthonormal columns ($m\ge n$) or rows ($m<n$).

    NumPy's QR of a $\max(m,n)\times\min(m,n)$ standard Gaussian drawn with ``key`` (signs of
    $R$'s diagonal fixed), transposed when $m<n$; a NumPy array. Only the columns used are drawn,
    so for $m=n$ this is a Haar orthogonal matrix but a different draw from
    :func:`random_orthogonal` with the same key (seed 002's instances are built from it).
    """
    m, n = check_int(m, "m", lo=1), check_int(n, "n", lo=1)
    g = np.asarray(jax.random.normal(key, (max(m, n), min(m, n)), dtype=DTYPE))
    qm, rm = np.linalg.qr(g)
    qm = qm * np.sign(np.diag(rm))[None, :]
    return qm if m >= n else qm.T


def random_with_spectrum_thin(key: Array, m: int, n: int, singular_vals: ArrayLike) -> np.ndarray:
    r"""$U\operatorname{diag}(s)V^\top$ with $U$, $V$ = :func:`random_orthonormal` ($m\times k$,
    $n\times k$, $k=\min(m,n)$, keys split from ``key``); a NumPy array.

    The same law as :func:`random_with_spectrum` but only the $k$ columns used are drawn, so not
    the same matrix for the same key. ``singular_vals``: at most $k$ non-negative values (padded
    with zeros), in any order.
    """
    m, n = check_int(m, "m", lo=1), check_int(n, "n", lo=1)
    s = _padded_spectrum(singular_vals, m, n)
    k = min(m, n)
    k1, k2 = jax.random.split(key)
    return (random_orthonormal(k1, m, k) * s[None, :]) @ random_orthonormal(k2, n, k).T


def subspace_angles_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SciPy's principal angles (decreasing order), the reference the tests compare against."""
    return scipy.linalg.subspace_angles(np.asarray(a), np.asarray(b))
