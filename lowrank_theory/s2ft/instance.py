r"""S²FT vs LoRA in deep linear networks: the instance (network and tasks), data, moments.

Seed 002 (Yang et al., *S²FT*, NeurIPS 2024), Section 4.1 and Appendix F.1-F.2. The fits are in
:mod:`lowrank_theory.s2ft.solutions`, the Appendix F.2 objects in :mod:`lowrank_theory.s2ft.notation`.

**Network.** $f^{\mathrm{pre}}(x) = W_L\cdots W_1x$ with $W_i\in\mathbb{R}^{d_i\times d_{i-1}}$,
$d_0=p$, $d_L=q$; ``weights = (W_1, ..., W_L)`` in this order. For a layer $\ell\in[L]$
(1-indexed) $\overline W_{\ell+1} = W_L\cdots W_{\ell+1}\in\mathbb{R}^{q\times d_\ell}$
(:meth:`DeepLinearInstance.above`, $I_q$ for $\ell=L$) and
$\underline W_{\ell-1} = W_{\ell-1}\cdots W_1\in\mathbb{R}^{d_{\ell-1}\times p}$
(:meth:`DeepLinearInstance.below`, $I_p$ for $\ell=1$). Fine-tuning layer $\ell$ by $(U,V)$ gives
(3)/(4): $f_{\ell,U,V}(x) = \overline W_{\ell+1}(W_\ell+UV^\top)\underline W_{\ell-1}x$.

**Data** (7): $y^{(k)} = B^{(k)}x^{(k)}+\epsilon^{(k)}$, $k\in\{\mathrm i,\mathrm o\}$ (here
``"in"``/``"out"``), mean-zero $x$ and $\epsilon$ with covariances $\Sigma_x^{(k)}$,
$\Sigma_\epsilon^{(k)}$, $\mathbb E[\epsilon\mid x]=0$. :func:`sample` draws Gaussian or
Rademacher (sub-Gaussian, Assumption F.1) coordinates coloured by the covariance roots.

**Conventions pinned here** (the seed's F.2 rendering is garbled):

* $D = B^{(\mathrm i)}-W^{\mathrm{pre}}$; $\hat D\hat\Sigma_x^{(\mathrm i)}$ is the sample
  cross-covariance $\frac1n(Y-W^{\mathrm{pre}}X)X^\top$ (the seed's
  $\hat D = D+\hat\Sigma_{\epsilon,x}(\hat\Sigma_x)^\dagger$ of Lemma G.3 gives exactly this);
  in the population it is $D\Sigma_x^{(\mathrm i)}$.
* :func:`moments` with ``n=None``: the population; an integer ``n`` draws $n$ in-distribution
  samples with ``key`` (default: from the instance's ``seed`` and ``n``), or pass ``data=``.
* **Ranks** follow the one rule of :mod:`lowrank_theory.core.linalg` (a singular value counts
  when above $\mathrm{rtol}\cdot\sigma_1$) with two tolerances kept from the seed-002 code:
  :data:`PSD_RTOL` $=10^{-10}$ for the eigenvalues of PSD matrices built from the data
  (covariance roots, $A^2$), and :func:`svd_rtol` $=1000\max(m,n)\varepsilon$ (headroom for the
  chained products that form $\overline W_{\ell+1}$, $\Sigma_f$, ...) for singular values.

References:
    Yang et al., *S²FT: Efficient, Scalable and Generalizable LLM Fine-tuning by Structured
    Sparsity*, NeurIPS 2024 (seed ``002_6b1767d2fe2301ea.txt``), Section 4.1, eq. (3)-(7),
    Assumptions F.1, F.3-F.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..core.linalg import chain_product, psd_roots
from ..core.precision import EPS
from ..core.validation import as_matrix, check_int

__all__ = [
    "PSD_RTOL",
    "DeepLinearInstance",
    "Moments",
    "Sample",
    "Task",
    "check_channels",
    "check_task",
    "moments",
    "sample",
    "selection_matrix",
    "sparsity_level",
    "svd_rtol",
]

Task = Literal["in", "out"]

#: relative eigenvalue threshold (rank rule's ``rtol``) for PSD matrices built from the data
PSD_RTOL = 1e-10


def svd_rtol(shape: tuple[int, ...]) -> float:
    r"""The rank rule's ``rtol`` for singular values of a matrix of ``shape``: $1000\max(m,n)\varepsilon$.

    Used for $\Phi_*$, pseudo-inverses, ranks and $\kappa_*$ of products of the weights (the
    factor 1000 leaves room for the rounding of the chained products they come from).
    """
    return 1e3 * max(shape) * EPS


def _np(x, name: str) -> np.ndarray:
    return np.asarray(as_matrix(x, name), dtype=np.float64)


def _check_psd(s: np.ndarray, name: str, *, definite: bool) -> np.ndarray:
    n = s.shape[0]
    if s.shape != (n, n):
        raise ValueError(f"{name} must be square, got shape {s.shape}")
    scale = max(float(np.linalg.norm(s)), 1e-300)
    if float(np.linalg.norm(s - s.T)) > 100 * n * EPS * scale:
        raise ValueError(f"{name} must be symmetric")
    w = np.linalg.eigvalsh((s + s.T) / 2)
    if w[0] < -100 * n * EPS * max(abs(w[-1]), 1e-300):
        raise ValueError(f"{name} must be positive semi-definite; smallest eigenvalue {w[0]:.3e}")
    if definite and w[0] <= 1e3 * n * EPS * w[-1]:
        raise ValueError(
            f"{name} is singular (eigenvalues {w[0]:.3e} .. {w[-1]:.3e}); the theory needs a "
            "non-singular signal covariance"
        )
    return (s + s.T) / 2


@dataclass(frozen=True, eq=False)
class DeepLinearInstance:
    r"""A pre-trained deep linear network with in- and out-of-distribution tasks (eq. (3)-(7)).

    Attributes:
        weights: $(W_1,\dots,W_L)$, $W_i\in\mathbb{R}^{d_i\times d_{i-1}}$ (``W_1`` acts first).
        b_in, b_out: coefficient matrices $B^{(\mathrm i)}, B^{(\mathrm o)}\in\mathbb{R}^{q\times p}$.
        sigma_x_in, sigma_x_out: signal covariances $\Sigma_x^{(k)}$ ($p\times p$, non-singular).
        sigma_eps_in, sigma_eps_out: noise covariances $\Sigma_\epsilon^{(k)}$ ($q\times q$, PSD).
        seed: integer the default sampling keys are derived from.
        info: what a builder put in on purpose (``ell``, ``S0``, ``delta``, ``epsilon``, ...).

    Raises:
        ValueError: on chained dimension mismatches, non-finite entries, non-symmetric or
            indefinite covariances, or a singular $\Sigma_x^{(k)}$.
    """

    weights: tuple[np.ndarray, ...]
    b_in: np.ndarray
    b_out: np.ndarray
    sigma_x_in: np.ndarray
    sigma_x_out: np.ndarray
    sigma_eps_in: np.ndarray
    sigma_eps_out: np.ndarray
    seed: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Sequence) or len(self.weights) == 0:
            raise ValueError("weights must be a non-empty sequence (W_1, ..., W_L)")
        ws = tuple(_np(w, f"weights[{i}] (W_{i + 1})") for i, w in enumerate(self.weights))
        for i in range(1, len(ws)):
            if ws[i].shape[1] != ws[i - 1].shape[0]:
                raise ValueError(
                    f"dimension mismatch: W_{i + 1} has shape {ws[i].shape} but W_{i} outputs "
                    f"{ws[i - 1].shape[0]} (need d_{i} = columns of W_{i + 1})"
                )
        p, q = ws[0].shape[1], ws[-1].shape[0]
        set_ = object.__setattr__
        set_(self, "weights", ws)
        for name in ("b_in", "b_out"):
            b = _np(getattr(self, name), name)
            if b.shape != (q, p):
                raise ValueError(f"{name} must have shape (q, p) = {(q, p)}, got {b.shape}")
            set_(self, name, b)
        for name, d, definite in (
            ("sigma_x_in", p, True),
            ("sigma_x_out", p, True),
            ("sigma_eps_in", q, False),
            ("sigma_eps_out", q, False),
        ):
            s = _np(getattr(self, name), name)
            if s.shape != (d, d):
                raise ValueError(f"{name} must have shape {(d, d)}, got {s.shape}")
            set_(self, name, _check_psd(s, name, definite=definite))
        set_(self, "info", dict(self.info))

    # --- structure --------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """$L$."""
        return len(self.weights)

    @property
    def dims(self) -> tuple[int, ...]:
        r"""$(d_0=p, d_1, \dots, d_L=q)$."""
        return (self.weights[0].shape[1], *(w.shape[0] for w in self.weights))

    @property
    def p(self) -> int:
        return self.dims[0]

    @property
    def q(self) -> int:
        return self.dims[-1]

    def check_layer(self, ell: int) -> int:
        """Validates $\\ell\\in[L]$."""
        return check_int(ell, "ell (the fine-tuned layer, 1-indexed)", lo=1, hi=self.n_layers)

    def above(self, ell: int) -> np.ndarray:
        r"""$\overline W_{\ell+1} = W_L\cdots W_{\ell+1}$ ($q\times d_\ell$; $I_q$ for $\ell=L$)."""
        ell = self.check_layer(ell)
        return chain_product(self.weights[ell:]) if ell < self.n_layers else np.eye(self.q)

    def below(self, ell: int) -> np.ndarray:
        r"""$\underline W_{\ell-1} = W_{\ell-1}\cdots W_1$ ($d_{\ell-1}\times p$; $I_p$ for $\ell=1$)."""
        ell = self.check_layer(ell)
        return chain_product(self.weights[: ell - 1]) if ell > 1 else np.eye(self.p)

    @property
    def w_pre(self) -> np.ndarray:
        r"""$W^{\mathrm{pre}} = W_L\cdots W_1$ ($q\times p$)."""
        return chain_product(self.weights)

    def b(self, k: Task) -> np.ndarray:
        return self.b_in if check_task(k) == "in" else self.b_out

    def sigma_x(self, k: Task) -> np.ndarray:
        return self.sigma_x_in if check_task(k) == "in" else self.sigma_x_out

    def sigma_eps(self, k: Task) -> np.ndarray:
        return self.sigma_eps_in if check_task(k) == "in" else self.sigma_eps_out

    def replace(self, **changes: Any) -> DeepLinearInstance:
        """A copy with some fields changed (validated again)."""
        fields = {
            k: getattr(self, k)
            for k in (
                "weights",
                "b_in",
                "b_out",
                "sigma_x_in",
                "sigma_x_out",
                "sigma_eps_in",
                "sigma_eps_out",
                "seed",
                "info",
            )
        }
        fields.update(changes)
        return DeepLinearInstance(**fields)


def check_task(k: str) -> Task:
    """Validates a task name: ``"in"`` or ``"out"``."""
    if k not in ("in", "out"):
        raise ValueError(f'k must be "in" or "out", got {k!r}')
    return k  # type: ignore[return-value]


def sparsity_level(r: int, d_ell: int, d_prev: int) -> int:
    r"""$s = \lfloor r(d_\ell+d_{\ell-1})/d_{\ell-1}\rfloor$: S²FT channels matching LoRA rank $r$.

    The parameter counts then match: LoRA trains $r(d_\ell+d_{\ell-1})$ numbers, S²FT
    $s\,d_{\ell-1}$ (Section 4.1).

    Examples:
        >>> sparsity_level(2, 4, 5)
        3
    """
    r = check_int(r, "r", lo=1)
    return (r * (d_ell + d_prev)) // d_prev


def check_channels(S: Sequence[int], d_ell: int) -> tuple[int, ...]:
    r"""Validates channels $S\subset[0,d_\ell)$: a non-empty sequence of distinct indices."""
    try:
        chans = tuple(int(a) for a in S)
    except TypeError as e:
        raise ValueError(f"S must be a sequence of channel indices, got {S!r}") from e
    if len(chans) == 0:
        raise ValueError("S must select at least one channel")
    if len(set(chans)) != len(chans):
        raise ValueError(f"S has repeated channels: {chans}")
    bad = [a for a in chans if not 0 <= a < d_ell]
    if bad:
        raise ValueError(f"channels {bad} out of range [0, d_ell) = [0, {d_ell})")
    return chans


def selection_matrix(S: Sequence[int], d_ell: int) -> np.ndarray:
    r"""$U_S = [e_{a_1},\dots,e_{a_s}]\in\mathbb{R}^{d_\ell\times s}$ (channels 0-indexed)."""
    chans = check_channels(S, d_ell)
    u = np.zeros((d_ell, len(chans)))
    u[list(chans), np.arange(len(chans))] = 1.0
    return u


# --- data -----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Sample:
    r"""$n$ observations as columns: ``x`` is $X\in\mathbb{R}^{p\times n}$, ``y`` is $Y\in\mathbb{R}^{q\times n}$."""

    x: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        return self.x.shape[1]


def sample(
    instance: DeepLinearInstance,
    n: int,
    key: Array | None = None,
    k: Task = "in",
    *,
    distribution: Literal["gaussian", "rademacher"] = "gaussian",
) -> Sample:
    r"""Draws $n$ i.i.d. pairs from model (7): $x = \Sigma_x^{1/2}z$, $\epsilon=\Sigma_\epsilon^{1/2}z'$.

    $z, z'$ have i.i.d. standard Gaussian or Rademacher entries (both satisfy Assumption F.1).

    Args:
        instance: the task.
        n: sample size ($\ge 1$).
        key: ``jax.random`` key; default ``fold_in(key(instance.seed), n)``.
        k: ``"in"`` or ``"out"``.
        distribution: ``"gaussian"`` or ``"rademacher"``.
    """
    n = check_int(n, "n", lo=1)
    k = check_task(k)
    if key is None:
        key = jax.random.fold_in(jax.random.key(instance.seed), n)
    kx, ke = jax.random.split(key)
    p, q = instance.p, instance.q
    if distribution == "gaussian":
        z = np.asarray(jax.random.normal(kx, (p, n), dtype=jnp.float64))
        ze = np.asarray(jax.random.normal(ke, (q, n), dtype=jnp.float64))
    elif distribution == "rademacher":
        z = np.asarray(jax.random.rademacher(kx, (p, n), dtype=jnp.float64))
        ze = np.asarray(jax.random.rademacher(ke, (q, n), dtype=jnp.float64))
    else:
        raise ValueError(f"distribution must be 'gaussian' or 'rademacher', got {distribution!r}")
    x = psd_roots(instance.sigma_x(k), PSD_RTOL).root @ z
    se = instance.sigma_eps(k)
    eps = psd_roots(se, PSD_RTOL).root @ ze if np.any(se) else 0 * ze
    return Sample(x, instance.b(k) @ x + eps)


@dataclass(frozen=True, eq=False)
class Moments:
    r"""What the minimum-norm solutions depend on: $\Sigma_x$ and $C = \hat D\hat\Sigma_x$.

    ``sxx`` is $\hat\Sigma_x^{(\mathrm i)} = XX^\top/n$ (or $\Sigma_x^{(\mathrm i)}$), ``cross``
    is $\frac1n(Y-W^{\mathrm{pre}}X)X^\top$ (or $D\Sigma_x^{(\mathrm i)}$); ``n`` is ``None`` in the
    population.
    """

    sxx: np.ndarray
    cross: np.ndarray
    n: int | None


def moments(
    instance: DeepLinearInstance,
    n: int | None = None,
    *,
    key: Array | None = None,
    data: Sample | None = None,
) -> Moments:
    """Population moments (``n=None`` and no ``data``) or sample moments of in-distribution data."""
    if data is None and n is None:
        d = instance.b_in - instance.w_pre
        return Moments(instance.sigma_x_in, d @ instance.sigma_x_in, None)
    if data is None:
        data = sample(instance, n, key, "in")  # type: ignore[arg-type]
    x, y = _np(data.x, "data.x"), _np(data.y, "data.y")
    if x.shape[0] != instance.p or y.shape[0] != instance.q or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"data shapes x {x.shape}, y {y.shape} do not match (p, n), (q, n) with "
            f"p = {instance.p}, q = {instance.q}"
        )
    if n is not None and int(n) != x.shape[1]:
        raise ValueError(f"n = {n} but data has {x.shape[1]} samples")
    m = x.shape[1]
    return Moments(x @ x.T / m, (y - instance.w_pre @ x) @ x.T / m, m)
