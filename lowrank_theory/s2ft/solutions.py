r"""S²FT vs LoRA in deep linear networks: instances, minimum-norm solutions, excess risks.

Seed 002 (Yang et al., *S²FT*, NeurIPS 2024), Section 4.1 and Appendix F.1-F.2, F.5-F.7.

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
* $A = (\underline W_{\ell-1}\Sigma_x^{(\mathrm i)}\underline W_{\ell-1}^\top)^{1/2}$ (and
  $\hat A$ with $\hat\Sigma_x$), $\Phi' = \Phi_*(\overline W_{\ell+1})$,
  $\Phi''_S = \Phi_*(\overline W_{\ell+1}U_S)$,
  $M = \Phi'\Phi'^\top D\Sigma_x\underline W_{\ell-1}^\top A^\dagger$.
* The risk is the **squared** error $\mathcal R^{(k)}(f) = \mathbb E\|y-f(x)\|^2$ (the seed's
  F.2 display drops the square; the excess risk uses it), and
  $\mathcal E^{(k)}(f) = \mathcal R^{(k)}(f) - \operatorname{tr}\Sigma_\epsilon^{(k)}$.
* ``n=None`` means the population solution ($n\to\infty$, (15), (25)); an integer ``n`` draws
  $n$ in-distribution samples with ``key`` (default: derived from the instance's ``seed`` and
  ``n``), or use ``data=`` to pass a :class:`Sample`.

References:
    Yang et al., *S²FT: Efficient, Scalable and Generalizable LLM Fine-tuning by Structured
    Sparsity*, NeurIPS 2024 (seed ``002_6b1767d2fe2301ea.txt``), Section 4.1, eq. (3)-(7),
    Lemmas F.9, F.12, F.17.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.precision import EPS
from ..core.validation import as_matrix, check_int

__all__ = [
    "DeepLinearInstance",
    "FineTuned",
    "Moments",
    "Sample",
    "channel_selector",
    "excess_risk",
    "excess_risk_mc",
    "full_ft",
    "lora_eigengap",
    "min_norm_lora",
    "min_norm_s2ft",
    "moments",
    "pretrained",
    "risk",
    "sample",
    "sparsity_level",
]

Task = Literal["in", "out"]
_RTOL = 1e-10  # relative eigenvalue threshold for ranks of PSD matrices built from the data


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


def psd_root(
    s: np.ndarray, *, rtol: float = _RTOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    r"""$(S^{1/2}, (S^{1/2})^\dagger, S^\dagger, \operatorname{rank} S)$ of a PSD matrix by ``eigh``.

    Eigenvalues below ``rtol`` times the largest count as zero.
    """
    w, v = np.linalg.eigh((s + s.T) / 2)
    tau = rtol * max(float(np.max(np.abs(w))), 1e-300)
    keep = w > tau
    wp = np.where(keep, w, 0.0)
    root = (v * np.sqrt(wp)[None, :]) @ v.T
    inv_w = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    root_pinv = (v * np.sqrt(inv_w)[None, :]) @ v.T
    pinv = (v * inv_w[None, :]) @ v.T
    return root, root_pinv, pinv, int(keep.sum())


def pinv_rank(a: np.ndarray, rtol: float | None = None) -> tuple[np.ndarray, int]:
    """Moore-Penrose inverse and numerical rank (threshold ``rtol * sigma_1``)."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return np.zeros(a.T.shape), 0
    rtol = max(a.shape) * EPS * 1e3 if rtol is None else rtol
    keep = s > rtol * s[0]
    inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    return (vt.T * inv[None, :]) @ u.T, int(keep.sum())


def col_basis(a: np.ndarray, rtol: float | None = None) -> np.ndarray:
    r"""$\Phi_*(a)$: orthonormal basis of the column space (left singular vectors, σ > 0)."""
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return np.zeros((a.shape[0], 0))
    rtol = max(a.shape) * EPS * 1e3 if rtol is None else rtol
    return u[:, : int((s > rtol * s[0]).sum())]


def svd_r(a: Float[ArrayLike, "m n"], r: int) -> Float[np.ndarray, "m n"]:
    r"""$\mathrm{SVD}_r(a)$, the top-$r$ truncated SVD (Notation F.1)."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    r = min(r, s.size)
    return (u[:, :r] * s[None, :r]) @ vt[:r, :]


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
        out = np.eye(self.dims[ell])
        for w in self.weights[ell:]:
            out = w @ out
        return out

    def below(self, ell: int) -> np.ndarray:
        r"""$\underline W_{\ell-1} = W_{\ell-1}\cdots W_1$ ($d_{\ell-1}\times p$; $I_p$ for $\ell=1$)."""
        ell = self.check_layer(ell)
        out = np.eye(self.p)
        for w in self.weights[: ell - 1]:
            out = w @ out
        return out

    @property
    def w_pre(self) -> np.ndarray:
        r"""$W^{\mathrm{pre}} = W_L\cdots W_1$ ($q\times p$)."""
        out = np.eye(self.p)
        for w in self.weights:
            out = w @ out
        return out

    def b(self, k: Task) -> np.ndarray:
        return self.b_in if _task(k) == "in" else self.b_out

    def sigma_x(self, k: Task) -> np.ndarray:
        return self.sigma_x_in if _task(k) == "in" else self.sigma_x_out

    def sigma_eps(self, k: Task) -> np.ndarray:
        return self.sigma_eps_in if _task(k) == "in" else self.sigma_eps_out

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


def _task(k: str) -> Task:
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
    k = _task(k)
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
    x = psd_root(instance.sigma_x(k))[0] @ z
    eps = psd_root(instance.sigma_eps(k))[0] @ ze if np.any(instance.sigma_eps(k)) else 0 * ze
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


# --- fitted models ----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FineTuned:
    r"""A fine-tuned network $f(x) = \overline W_{\ell+1}(W_\ell+\Delta)\underline W_{\ell-1}x$.

    Attributes:
        method: ``"pretrained"``, ``"lora"``, ``"s2ft"`` or ``"full"``.
        ell: the fine-tuned layer.
        delta: $\Delta = UV^\top\in\mathbb{R}^{d_\ell\times d_{\ell-1}}$.
        u, v: the factors ($U$: $d_\ell\times d$, $V$: $d_{\ell-1}\times d$); LoRA's are the
            balanced ones $U=\Phi\Lambda^{1/2}$, $V=\Psi\Lambda^{1/2}$ (minimum $\|(U,V)\|_F^2 =
            2\|\Delta\|_*$), S²FT's $U=U_S$.
        end_to_end: the $q\times p$ matrix of the fitted network.
        n: sample size (``None``: population).
        channels: $S$ for S²FT.
    """

    method: str
    ell: int
    delta: np.ndarray
    u: np.ndarray
    v: np.ndarray
    end_to_end: np.ndarray
    n: int | None = None
    channels: tuple[int, ...] | None = None


def _fitted(inst, method, ell, delta, u, v, n, channels=None) -> FineTuned:
    e2e = inst.w_pre + inst.above(ell) @ delta @ inst.below(ell)
    return FineTuned(method, ell, delta, u, v, e2e, n, channels)


def pretrained(instance: DeepLinearInstance, ell: int = 1) -> FineTuned:
    r"""$f^{\mathrm{pre}}$ as a :class:`FineTuned` with $\Delta=0$."""
    ell = instance.check_layer(ell)
    d, dp = instance.dims[ell], instance.dims[ell - 1]
    return _fitted(
        instance, "pretrained", ell, np.zeros((d, dp)), np.zeros((d, 0)), np.zeros((dp, 0)), None
    )


@dataclass(frozen=True)
class _Layer:
    wbar: np.ndarray  # above
    wlow: np.ndarray  # below
    a: np.ndarray
    a_pinv: np.ndarray
    a2_pinv: np.ndarray
    cw: np.ndarray  # C W_low^T  (q x d_{l-1})


def _layer(instance: DeepLinearInstance, ell: int, mom: Moments) -> _Layer:
    wbar, wlow = instance.above(ell), instance.below(ell)
    a2 = wlow @ mom.sxx @ wlow.T
    a, a_pinv, a2_pinv, rank = psd_root(a2)
    if rank == 0:
        raise ValueError(
            "W_below Sigma_x W_below^T = 0: fine-tuning this layer cannot change the output "
            "(Section F.3 excludes it)"
        )
    return _Layer(wbar, wlow, a, a_pinv, a2_pinv, mom.cross @ wlow.T)


def _m_matrix(lay: _Layer) -> np.ndarray:
    wbar_pinv, _ = pinv_rank(lay.wbar)
    return lay.wbar @ wbar_pinv @ lay.cw @ lay.a_pinv


def lora_eigengap(
    instance: DeepLinearInstance, ell: int, r: int, n: int | None = None, **kw
) -> float:
    r"""$C_g = \lambda_r(M)/(\lambda_r(M)-\lambda_{r+1}(M))$ of Assumption F.3 (``inf`` if no gap).

    ``n``/``key``/``data`` as in :func:`min_norm_lora` (then $\hat M$).
    """
    ell = instance.check_layer(ell)
    s = np.linalg.svd(
        _m_matrix(_layer(instance, ell, moments(instance, n, **kw))), compute_uv=False
    )
    lr = s[r - 1] if r <= s.size else 0.0
    lr1 = s[r] if r < s.size else 0.0
    if lr == 0.0:
        return 1.0
    return float(lr / (lr - lr1)) if lr > lr1 else math.inf


def min_norm_lora(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    n: int | None = None,
    *,
    key: Array | None = None,
    data: Sample | None = None,
) -> FineTuned:
    r"""The minimum-norm LoRA solution (5)/(15), closed form of Lemma F.9.

    $$U^{\mathrm{LoRA}}V^{\mathrm{LoRA}\top} = \overline W_{\ell+1}^\dagger\,
    \mathrm{SVD}_r\big(\overline W_{\ell+1}\overline W_{\ell+1}^\dagger\hat D\hat\Sigma_x
    \underline W_{\ell-1}^\top\hat A^\dagger\big)\hat A^\dagger.$$

    Args:
        instance: the task.
        ell: fine-tuned layer, $1\le\ell\le L$.
        r: LoRA rank, $1\le r\le\min(d_\ell,d_{\ell-1})$.
        n: ``None`` for the population solution, else the in-distribution sample size.
        key, data: see the module docstring.

    Raises:
        ValueError: bad ``ell``/``r``, or $\lambda_r(\hat M)=\lambda_{r+1}(\hat M)>0$ (the
            rank-$r$ minimiser is not unique; Assumption F.3 fails).
    """
    ell = instance.check_layer(ell)
    d, dp = instance.dims[ell], instance.dims[ell - 1]
    r = check_int(r, "r (LoRA rank)", lo=1, hi=min(d, dp))
    mom = moments(instance, n, key=key, data=data)
    lay = _layer(instance, ell, mom)
    m = _m_matrix(lay)
    uu, s, vt = np.linalg.svd(m, full_matrices=False)
    if r < s.size and s[r - 1] > 1e3 * max(m.shape) * EPS * s[0]:
        if s[r - 1] - s[r] <= 1e3 * max(m.shape) * EPS * s[0]:
            raise ValueError(
                f"lambda_r(M) = lambda_(r+1)(M) = {s[r - 1]:.6g}: the rank-{r} LoRA minimiser is "
                "not unique (eigengap Assumption F.3 fails)"
            )
    mr = (uu[:, :r] * s[None, :r]) @ vt[:r, :]
    wbar_pinv, _ = pinv_rank(lay.wbar)
    delta = wbar_pinv @ mr @ lay.a_pinv
    u, v = _balanced(delta, r)
    return _fitted(instance, "lora", ell, delta, u, v, mom.n)


def _balanced(delta: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    uu, s, vt = np.linalg.svd(delta, full_matrices=False)
    root = np.sqrt(s[:r])
    return uu[:, :r] * root[None, :], vt[:r, :].T * root[None, :]


def _check_channels(S, d_ell: int) -> tuple[int, ...]:
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


def selection_matrix(S: Sequence[int], d_ell: int) -> Float[np.ndarray, "d_ell s"]:
    r"""$U_S = [e_{a_1},\dots,e_{a_s}]\in\mathbb{R}^{d_\ell\times s}$ (channels 0-indexed)."""
    chans = _check_channels(S, d_ell)
    u = np.zeros((d_ell, len(chans)))
    u[list(chans), np.arange(len(chans))] = 1.0
    return u


def min_norm_s2ft(
    instance: DeepLinearInstance,
    ell: int,
    S: Sequence[int],
    n: int | None = None,
    *,
    key: Array | None = None,
    data: Sample | None = None,
) -> FineTuned:
    r"""The minimum-norm S²FT solution (6)/(25), closed form (19) of Lemma F.12.

    $$U_SV^{\mathrm{S^2FT}\top} = U_S(\overline W_{\ell+1}U_S)^\dagger\hat D\hat\Sigma_x
    \underline W_{\ell-1}^\top(\hat A^\dagger)^2.$$

    Args:
        instance: the task.
        ell: fine-tuned layer.
        S: the $s$ distinct trainable channels (rows of $W_\ell$), 0-indexed, in $[0,d_\ell)$.
        n, key, data: as in :func:`min_norm_lora`.
    """
    ell = instance.check_layer(ell)
    d = instance.dims[ell]
    us = selection_matrix(S, d)
    mom = moments(instance, n, key=key, data=data)
    lay = _layer(instance, ell, mom)
    g_pinv, _ = pinv_rank(lay.wbar @ us)
    vt = g_pinv @ lay.cw @ lay.a2_pinv
    return _fitted(instance, "s2ft", ell, us @ vt, us, vt.T, mom.n, tuple(int(a) for a in S))


def full_ft(
    instance: DeepLinearInstance,
    ell: int,
    n: int | None = None,
    *,
    key: Array | None = None,
    data: Sample | None = None,
) -> FineTuned:
    r"""Full fine-tuning of layer $\ell$ (Section F.7): the minimum-norm minimiser
    $\Delta^{\mathrm{full}}_\ell = \overline W_{\ell+1}^\dagger D\Sigma_x\underline W_{\ell-1}^\top(A^2)^\dagger$.

    With ``n`` (or ``data``) the same with sample moments (least squares on the data).
    """
    ell = instance.check_layer(ell)
    mom = moments(instance, n, key=key, data=data)
    lay = _layer(instance, ell, mom)
    wbar_pinv, _ = pinv_rank(lay.wbar)
    delta = wbar_pinv @ lay.cw @ lay.a2_pinv
    u, v = _balanced(delta, min(delta.shape))
    return _fitted(instance, "full", ell, delta, u, v, mom.n)


# --- risks -------------------------------------------------------------------------------------
def _end_to_end(instance: DeepLinearInstance, model) -> np.ndarray:
    if isinstance(model, FineTuned):
        return model.end_to_end
    w = _np(model, "model (q x p end-to-end matrix)")
    if w.shape != (instance.q, instance.p):
        raise ValueError(
            f"model matrix must have shape (q, p) = {(instance.q, instance.p)}, got {w.shape}"
        )
    return w


def excess_risk(
    instance: DeepLinearInstance,
    model: FineTuned | Float[ArrayLike, "q p"],
    k: Task = "in",
    *,
    method: Literal["trace", "direct"] = "trace",
) -> float:
    r"""$\mathcal E^{(k)}(f)$ of a linear model $f(x)=Wx$.

    ``method="trace"``: $\operatorname{tr}\big((B^{(k)}-W)\Sigma_x^{(k)}(B^{(k)}-W)^\top\big)$
    (Lemma F.9's formula). ``method="direct"``: $\mathcal R^{(k)}(f)-\mathcal R^{(k)}(B^{(k)})$
    from the exact second moments of $(x, y)$ (:func:`risk`); the Bayes predictor under
    $\mathbb E[\epsilon\mid x]=0$ is $B^{(k)}x$.

    Args:
        model: a :class:`FineTuned` or a $q\times p$ end-to-end matrix.
        k: ``"in"`` or ``"out"``.

    Examples:
        >>> import numpy as np
        >>> inst = build_instance(0, dims=(3, 2, 3), ell=1, residual_rank=1)
        >>> round(excess_risk(inst, inst.b_in, "in"), 12)
        0.0
    """
    k = _task(k)
    w = _end_to_end(instance, model)
    if method == "trace":
        e = instance.b(k) - w
        return float(np.trace(e @ instance.sigma_x(k) @ e.T))
    if method == "direct":
        return risk(instance, w, k) - float(np.trace(instance.sigma_eps(k)))
    raise ValueError(f"method must be 'trace' or 'direct', got {method!r}")


def risk(
    instance: DeepLinearInstance, model: FineTuned | Float[ArrayLike, "q p"], k: Task = "in"
) -> float:
    r"""$\mathcal R^{(k)}(f) = \mathbb E\|y-Wx\|^2 = \operatorname{tr}\mathbb E[yy^\top]
    - 2\operatorname{tr}(W\mathbb E[xy^\top]) + \operatorname{tr}(W\Sigma_xW^\top)$, exactly."""
    k = _task(k)
    w = _end_to_end(instance, model)
    b, sx = instance.b(k), instance.sigma_x(k)
    eyy = b @ sx @ b.T + instance.sigma_eps(k)
    exy = sx @ b.T
    return float(np.trace(eyy) - 2 * np.trace(w @ exy) + np.trace(w @ sx @ w.T))


def excess_risk_mc(
    instance: DeepLinearInstance, model, k: Task, n: int, key: Array
) -> tuple[float, float]:
    r"""Monte Carlo estimate of $\mathcal E^{(k)}(f)$ and its standard error ($n$ test draws).

    Uses $\|y-Wx\|^2-\|y-B^{(k)}x\|^2$ per draw (a control variate: the noise cancels).
    """
    w = _end_to_end(instance, model)
    data = sample(instance, n, key, k)
    b = instance.b(k)
    per = np.sum((data.y - w @ data.x) ** 2, 0) - np.sum((data.y - b @ data.x) ** 2, 0)
    return float(per.mean()), float(per.std(ddof=1) / math.sqrt(n))


# --- builders ------------------------------------------------------------------------------
def _key(seed_or_key) -> Array:
    if isinstance(seed_or_key, int | np.integer):
        return jax.random.key(int(seed_or_key))
    return seed_or_key


def _orth(key, m, n) -> np.ndarray:
    """Random $m\\times n$ matrix with orthonormal columns (m >= n) or rows (m < n)."""
    g = np.asarray(jax.random.normal(key, (max(m, n), min(m, n)), dtype=jnp.float64))
    qm, rm = np.linalg.qr(g)
    qm = qm * np.sign(np.diag(rm))[None, :]
    return qm if m >= n else qm.T


def _with_spectrum(key, m, n, s) -> np.ndarray:
    k1, k2 = jax.random.split(key)
    k = min(m, n)
    s = np.concatenate([np.asarray(s, float), np.zeros(k - len(s))])[:k]
    return (_orth(k1, m, k) * s[None, :]) @ _orth(k2, n, k).T


def build_instance(
    seed: int,
    dims: Sequence[int],
    ell: int,
    *,
    residual_rank: int = 2,
    residual_decay: float = 1.0,
    residual_scale: float = 1.0,
    channels: Sequence[int] | None = None,
    delta: float = 0.0,
    realisable: bool = True,
    outside_scale: float = 0.0,
    weight_cond: float = 1.0,
    x_cond: float = 1.0,
    noise: float = 0.1,
    label_shift: float = 0.0,
    shift_inside: float = 0.5,
    shift_channels: Sequence[int] | None = None,
    covariate_scale: float = 1.0,
    covariate_cond: float = 1.0,
) -> DeepLinearInstance:
    r"""A random instance realising the seed's assumptions on purpose.

    * Weights $W_i = P_i\operatorname{diag}(\sigma)Q_i^\top$ with Haar factors and singular
      values log-spaced in $[1/\kappa, 1]$, $\kappa$ = ``weight_cond``; with $\kappa=1$ and
      non-increasing $d_0\ge\dots\ge d_{\ell-1}$, non-decreasing $d_\ell\le\dots\le d_L$ the
      products $\underline W_{\ell-1}$, $\overline W_{\ell+1}$ are co-isometries/isometries.
    * $\Sigma_x^{(\mathrm i)} = Q\operatorname{diag}(\lambda)Q^\top$, $\lambda$ log-spaced in
      $[1/\kappa_x, 1]$; $\Sigma_\epsilon = $ ``noise``$^2 I_q$.
    * **Realisable** ($B^{(\mathrm i)} = \overline W_{\ell+1}\tilde B\underline W_{\ell-1}$,
      Theorem F.8): $\tilde B = W_\ell+\tilde\Delta$ where $\tilde\Delta$ has rank
      ``residual_rank``, singular values ``residual_scale``$\cdot$``residual_decay``$^{j}$
      (decay $<1$ gives the eigengap of Assumption F.3), and rows supported on ``channels``
      ($S_0$, default the first ``residual_rank``); with ``delta`` $>0$ the rows off $S_0$
      get a random part rescaled so that the Assumption F.4 ratio is exactly $\delta^2$ when
      $\overline W_{\ell+1}$ has full column rank. ``realisable=False`` adds
      ``outside_scale`` times a generic $q\times p$ matrix to $D$.
    * **Label shift**: $B^{(\mathrm o)} = B^{(\mathrm i)}+H$, $\|H\Sigma_x^{1/2}\|_F$ =
      ``label_shift``; a fraction ``shift_inside`` of $\|H\Sigma_x^{1/2}\|_F^2$ lies in the
      span of $\overline W_{\ell+1}U_{S'}$, $S'$ = ``shift_channels`` (default ``channels``),
      the rest orthogonal to it (so the $\varepsilon$ of Assumption 4.1 is set by it).
    * **Covariate shift**: $\Sigma_x^{(\mathrm o)} = c^2\,\Sigma_x^{1/2}R\,\Sigma_x^{1/2}$ with
      $c$ = ``covariate_scale`` and $R$ random with eigenvalues in $[1/\kappa_R,\kappa_R]$,
      $\kappa_R$ = ``covariate_cond`` ($c=\kappa_R=1$: no shift, Assumption F.5).

    Args:
        seed: integer seed (the instance's sampling seed too) or a ``jax.random`` key.
        dims: $(d_0=p, d_1, \dots, d_L=q)$.
        ell: the layer the structure refers to.

    Returns:
        The instance; ``info`` records ``ell``, ``S0``, ``delta`` and the other settings.
    """
    dims = tuple(check_int(d, f"dims[{i}]", lo=1) for i, d in enumerate(dims))
    if len(dims) < 2:
        raise ValueError("dims needs at least (p, q)")
    L = len(dims) - 1
    ell = check_int(ell, "ell", lo=1, hi=L)
    d, dp = dims[ell], dims[ell - 1]
    residual_rank = check_int(residual_rank, "residual_rank", lo=0, hi=min(d, dp))
    if channels is None:
        channels = tuple(range(max(residual_rank, 1)))
    channels = _check_channels(channels, d)
    if residual_rank > len(channels):
        raise ValueError(f"residual_rank {residual_rank} > |channels| = {len(channels)}")
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    if not 0.0 <= shift_inside <= 1.0:
        raise ValueError(f"shift_inside must be in [0, 1], got {shift_inside}")
    base = _key(seed)
    keys = jax.random.split(base, L + 8)
    sv = lambda m, n: np.logspace(0, -math.log10(weight_cond), min(m, n))  # noqa: E731
    ws = [_with_spectrum(keys[i], dims[i + 1], dims[i], sv(dims[i + 1], dims[i])) for i in range(L)]
    p, q = dims[0], dims[-1]
    qx = _orth(keys[L], p, p)
    sig = (qx * np.logspace(0, -math.log10(x_cond), p)[None, :]) @ qx.T
    tmp = DeepLinearInstance(
        tuple(ws), np.zeros((q, p)), np.zeros((q, p)), sig, sig, np.eye(q), np.eye(q)
    )
    wbar, wlow = tmp.above(ell), tmp.below(ell)
    # residual on S0 rows
    dt = np.zeros((d, dp))
    if residual_rank > 0:
        svals = residual_scale * residual_decay ** np.arange(residual_rank)
        core = _with_spectrum(keys[L + 1], len(channels), dp, svals)
        dt[list(channels), :] = core
    if delta > 0:
        off = [a for a in range(d) if a not in channels]
        if not off:
            raise ValueError("delta > 0 needs channels outside S0")
        noise_rows = np.asarray(jax.random.normal(keys[L + 2], (len(off), dp), dtype=jnp.float64))
        rs = psd_root(sig)[0]
        on = np.sum((dt @ wlow @ rs) ** 2)
        offn = np.sum((noise_rows @ wlow @ rs) ** 2)
        t = math.sqrt(delta**2 * on / ((1 - delta**2) * offn)) if offn > 0 else 0.0
        dt[off, :] = t * noise_rows
    b_in = tmp.w_pre + wbar @ dt @ wlow
    if not realisable:
        b_in = b_in + outside_scale * np.asarray(
            jax.random.normal(keys[L + 3], (q, p), dtype=jnp.float64)
        ) / math.sqrt(p)
    # label shift
    b_out = b_in.copy()
    if label_shift > 0:
        sch = channels if shift_channels is None else _check_channels(shift_channels, d)
        phi = col_basis(wbar[:, list(sch)])
        rs, rs_pinv, _, _ = psd_root(sig)
        h1 = np.asarray(jax.random.normal(keys[L + 4], (q, p), dtype=jnp.float64))
        h2 = np.asarray(jax.random.normal(keys[L + 5], (q, p), dtype=jnp.float64))
        inside = phi @ (phi.T @ h1)
        outside = h2 - phi @ (phi.T @ h2)
        parts = []
        for part, frac in ((inside, shift_inside), (outside, 1 - shift_inside)):
            nrm = np.linalg.norm(part)
            parts.append(part * (math.sqrt(frac) * label_shift / nrm) if nrm > 0 else 0 * part)
        hs = parts[0] + parts[1]  # this is H Sigma^{1/2}
        b_out = b_in + hs @ rs_pinv
    # covariate shift
    sig_out = sig
    if covariate_scale != 1.0 or covariate_cond != 1.0:
        qr_ = _orth(keys[L + 6], p, p)
        lam = np.logspace(-math.log10(covariate_cond), math.log10(covariate_cond), p)
        rmat = (qr_ * lam[None, :]) @ qr_.T
        rs = psd_root(sig)[0]
        sig_out = covariate_scale**2 * rs @ rmat @ rs
    info = {
        "ell": ell,
        "S0": tuple(channels),
        "delta": delta,
        "residual_rank": residual_rank,
        "realisable": realisable,
        "label_shift": label_shift,
        "covariate_scale": covariate_scale,
        "covariate_cond": covariate_cond,
    }
    return DeepLinearInstance(
        tuple(ws),
        b_in,
        b_out,
        sig,
        sig_out,
        noise**2 * np.eye(q),
        noise**2 * np.eye(q),
        seed=int(seed) if isinstance(seed, int | np.integer) else 0,
        info=info,
    )


def with_label_shift_epsilon(
    instance: DeepLinearInstance, ell: int, S: Sequence[int], epsilon: float, seed: int = 0
) -> DeepLinearInstance:
    r"""$B^{(\mathrm o)}$ set so that Assumption 4.1/F.5 holds with **equality** for ``epsilon``.

    $B^{(\mathrm o)} = B^{(\mathrm i)} + tH$ with $H\Sigma_x^{1/2}$ inside the span of
    $\overline W_{\ell+1}U_S$ (random direction) and $t>0$ the root of
    $t^2\|H\Sigma^{1/2}\|_F^2 = \varepsilon^2\|(D+tH)\Sigma^{1/2}\|_F^2$ (needs $\varepsilon<1$).
    Requires no covariate shift.
    """
    ell = instance.check_layer(ell)
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1) for an in-span shift, got {epsilon}")
    if not np.allclose(instance.sigma_x_in, instance.sigma_x_out):
        raise ValueError("Assumption F.5 needs Sigma_x^(i) = Sigma_x^(o)")
    us = selection_matrix(S, instance.dims[ell])
    phi = col_basis(instance.above(ell) @ us)
    rs, rs_pinv, _, _ = psd_root(instance.sigma_x_in)
    h = phi @ (
        phi.T
        @ np.asarray(
            jax.random.normal(jax.random.key(seed), (instance.q, instance.p), dtype=jnp.float64)
        )
    )
    hs = h / np.linalg.norm(h)  # H Sigma^{1/2}, unit norm
    ds = (instance.b_in - instance.w_pre) @ rs
    a, b, e = (
        1.0 - epsilon**2,
        -2 * epsilon**2 * float(np.sum(ds * hs)),
        -(epsilon**2) * float(np.sum(ds**2)),
    )
    t = (-b + math.sqrt(b * b - 4 * a * e)) / (2 * a)
    info = dict(instance.info, epsilon=epsilon, shift_channels=tuple(int(x) for x in S))
    return instance.replace(b_out=instance.b_in + t * hs @ rs_pinv, info=info)


def channel_selector(
    instance: DeepLinearInstance,
    ell: int,
    s: int,
    strategy: Literal["random", "weight", "activation", "product", "gradient"] = "random",
    *,
    largest: bool = True,
    key: Array | None = None,
    n_calibration: int = 64,
) -> tuple[int, ...]:
    r"""S²FT channel selection (Section 3.2 / Appendix D) for the rows of $W_\ell$.

    Scores of channel $a$ (row $a$ of $W_\ell$), on a calibration set of ``n_calibration``
    in-distribution samples $x_i$ with inputs $z_i = \underline W_{\ell-1}x_i$:

    * ``"random"`` (S²FT-R): a uniformly random subset (``largest`` ignored);
    * ``"weight"`` (S²FT-W): $\|W_\ell[a,:]\|_2$;
    * ``"activation"`` (S²FT-A): $\big(\frac1n\sum_i (W_\ell z_i)_a^2\big)^{1/2}$;
    * ``"product"`` (S²FT-S): $\sum_j |W_\ell[a,j]|\,\|z_{\cdot j}\|_2$ (weight times input
      activation magnitude, Wanda-style);
    * ``"gradient"`` (S²FT-G): $\|\nabla_{W_\ell}\hat{\mathcal R}_n(f^{\mathrm{pre}})[a,:]\|_2$
      with $\nabla = -\frac2n\overline W_{\ell+1}^\top(Y-W^{\mathrm{pre}}X)X^\top
      \underline W_{\ell-1}^\top$.

    Returns the ``s`` channels with the largest (or smallest) scores, sorted.
    """
    ell = instance.check_layer(ell)
    d = instance.dims[ell]
    s = check_int(s, "s (number of channels)", lo=1, hi=d)
    key = jax.random.key(instance.seed + 7919) if key is None else key
    if strategy == "random":
        perm = np.asarray(jax.random.permutation(key, d))
        return tuple(sorted(int(a) for a in perm[:s]))
    w = instance.weights[ell - 1]
    if strategy == "weight":
        score = np.linalg.norm(w, axis=1)
    else:
        data = sample(instance, n_calibration, key, "in")
        z = instance.below(ell) @ data.x
        if strategy == "activation":
            score = np.sqrt(np.mean((w @ z) ** 2, axis=1))
        elif strategy == "product":
            score = np.abs(w) @ np.linalg.norm(z, axis=1)
        elif strategy == "gradient":
            res = data.y - instance.w_pre @ data.x
            grad = -2.0 / data.n * instance.above(ell).T @ res @ z.T
            score = np.linalg.norm(grad, axis=1)
        else:
            raise ValueError(
                f"unknown strategy {strategy!r}; one of random, weight, activation, product, gradient"
            )
    order = np.argsort(-score if largest else score, kind="stable")
    return tuple(sorted(int(a) for a in order[:s]))
