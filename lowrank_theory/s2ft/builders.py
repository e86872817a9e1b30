r"""Random S²FT instances that realise the seed's assumptions on purpose (seed 002, Appendix F).

:func:`build_instance` draws a pre-trained deep linear network and its in/out tasks with a
chosen residual (rank, spectrum, channels: Assumptions F.3, F.4), label shift (Assumption
4.1/F.5) and covariate shift; :func:`with_label_shift_epsilon` sets the label shift so that
Assumption F.5 holds with equality. The draws are reproducible: the same seed gives the same
matrices (:func:`~lowrank_theory.core.linalg.random_orthonormal`,
:func:`~lowrank_theory.core.linalg.random_with_spectrum_thin`).

References:
    Yang et al., *S²FT*, NeurIPS 2024 (seed ``002_6b1767d2fe2301ea.txt``), Section 4.1,
    Theorem 4.2 / F.8, Assumptions 4.1, F.3-F.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..core.linalg import orth_np, psd_roots, random_orthonormal, random_with_spectrum_thin
from ..core.validation import check_float, check_int
from .instance import PSD_RTOL, DeepLinearInstance, check_channels, selection_matrix, svd_rtol

__all__ = ["build_instance", "with_label_shift_epsilon"]


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

    ``seed``: integer (the instance's sampling seed too) or a ``jax.random`` key; ``dims``:
    $(d_0=p, d_1, \dots, d_L=q)$; ``ell``: the layer the structure refers to. The returned
    instance's ``info`` records ``ell``, ``S0``, ``delta`` and the other settings.
    """
    dims, ell, residual_rank, channels = _check_structure(
        dims, ell, residual_rank, channels, delta, shift_inside
    )
    check_float(residual_decay, "residual_decay", lo=0.0)
    check_float(residual_scale, "residual_scale", lo=0.0)
    L, d, dp = len(dims) - 1, dims[ell], dims[ell - 1]
    keys = _split_seed(seed, L + 8)
    tmp = _pretrained(keys, dims, weight_cond, x_cond)
    (sig, q, p), wbar, wlow = (tmp.sigma_x_in, dims[-1], dims[0]), tmp.above(ell), tmp.below(ell)
    dt = _layer_residual(keys[L + 1], keys[L + 2], (d, dp), channels, residual_rank,
                         residual_scale * residual_decay ** np.arange(residual_rank), delta,
                         wlow, psd_roots(sig, PSD_RTOL).root)  # fmt: skip
    b_in = tmp.w_pre + wbar @ dt @ wlow
    if not realisable:
        b_in = b_in + outside_scale * _gaussian(keys[L + 3], (q, p)) / math.sqrt(p)
    b_out = b_in.copy()
    if label_shift > 0:
        sch = channels if shift_channels is None else check_channels(shift_channels, d)
        b_out = b_in + _label_shift(keys[L + 4], keys[L + 5], wbar[:, list(sch)], sig,
                                    label_shift, shift_inside)  # fmt: skip
    sig_out = sig
    if covariate_scale != 1.0 or covariate_cond != 1.0:
        sig_out = _covariate_shift(keys[L + 6], sig, covariate_scale, covariate_cond)
    info = dict(ell=ell, S0=tuple(channels), delta=delta, residual_rank=residual_rank,
                realisable=realisable, label_shift=label_shift, covariate_scale=covariate_scale,
                covariate_cond=covariate_cond)  # fmt: skip
    se, seed = noise**2 * np.eye(q), int(seed) if _is_int(seed) else 0
    return tmp.replace(b_in=b_in, b_out=b_out, sigma_x_out=sig_out, sigma_eps_in=se,
                       sigma_eps_out=se, seed=seed, info=info)  # fmt: skip


def _split_seed(seed, n: int):
    """``n`` keys from an integer seed or a ``jax.random`` key (anything else is refused)."""
    try:
        return jax.random.split(jax.random.key(int(seed)) if _is_int(seed) else seed, n)
    except TypeError as e:
        raise ValueError(f"seed must be an integer or a jax.random key, got {seed!r}") from e


def _check_structure(dims, ell, residual_rank, channels, delta, shift_inside):
    """Validated ``(dims, ell, residual_rank, channels)`` of :func:`build_instance`."""
    dims = tuple(check_int(d, f"dims[{i}]", lo=1) for i, d in enumerate(dims))
    if len(dims) < 2:
        raise ValueError("dims needs at least (p, q)")
    ell = check_int(ell, "ell", lo=1, hi=len(dims) - 1)
    d, dp = dims[ell], dims[ell - 1]
    residual_rank = check_int(residual_rank, "residual_rank", lo=0, hi=min(d, dp))
    if channels is None:
        channels = tuple(range(max(residual_rank, 1)))
    channels = check_channels(channels, d)
    if residual_rank > len(channels):
        raise ValueError(f"residual_rank {residual_rank} > |channels| = {len(channels)}")
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    if not 0.0 <= shift_inside <= 1.0:
        raise ValueError(f"shift_inside must be in [0, 1], got {shift_inside}")
    return dims, ell, residual_rank, channels


def _gaussian(key: Array, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(jax.random.normal(key, shape, dtype=jnp.float64))


def _is_int(seed) -> bool:
    return isinstance(seed, int | np.integer)


def _pretrained(keys: Array, dims: tuple[int, ...], weight_cond: float, x_cond: float):
    r"""Weights $W_i = P_i\operatorname{diag}(\sigma)Q_i^\top$ (keys ``0..L-1``) and
    $\Sigma_x = Q\operatorname{diag}(\lambda)Q^\top$ (key ``L``); $B^{(k)}=0$, $\Sigma_\epsilon=I$."""
    L, p, q = len(dims) - 1, dims[0], dims[-1]
    sv = lambda m, n: np.logspace(0, -math.log10(weight_cond), min(m, n))  # noqa: E731
    ws = [
        random_with_spectrum_thin(keys[i], dims[i + 1], dims[i], sv(dims[i + 1], dims[i]))
        for i in range(L)
    ]
    qx = random_orthonormal(keys[L], p, p)
    sig = (qx * np.logspace(0, -math.log10(x_cond), p)[None, :]) @ qx.T
    return DeepLinearInstance(
        tuple(ws), np.zeros((q, p)), np.zeros((q, p)), sig, sig, np.eye(q), np.eye(q)
    )


def _layer_residual(
    key_core: Array,
    key_off: Array,
    shape: tuple[int, int],
    channels: tuple[int, ...],
    rank: int,
    svals: np.ndarray,
    delta: float,
    wlow: np.ndarray,
    root: np.ndarray,
) -> np.ndarray:
    r"""$\tilde\Delta$ ($d_\ell\times d_{\ell-1}$): rank ``rank`` with singular values ``svals`` on
    the rows ``channels``; with ``delta`` $>0$ a random part on the other rows, scaled so that
    the Assumption F.4 ratio (measured through $\underline W_{\ell-1}$ = ``wlow`` and
    $\Sigma^{1/2}$ = ``root``) is $\delta^2$."""
    d, dp = shape
    dt = np.zeros((d, dp))
    if rank > 0:
        dt[list(channels), :] = random_with_spectrum_thin(key_core, len(channels), dp, svals)
    if delta > 0:
        off = [a for a in range(d) if a not in channels]
        if not off:
            raise ValueError("delta > 0 needs channels outside S0")
        noise_rows = _gaussian(key_off, (len(off), dp))
        on = np.sum((dt @ wlow @ root) ** 2)
        offn = np.sum((noise_rows @ wlow @ root) ** 2)
        t = math.sqrt(delta**2 * on / ((1 - delta**2) * offn)) if offn > 0 else 0.0
        dt[off, :] = t * noise_rows
    return dt


def _label_shift(
    key_in: Array,
    key_out: Array,
    span: np.ndarray,
    sig: np.ndarray,
    size: float,
    inside: float,
) -> np.ndarray:
    r"""$H$ with $\|H\Sigma^{1/2}\|_F$ = ``size``, a fraction ``inside`` of its square in the column
    span of ``span`` ($\overline W_{\ell+1}U_{S'}$) and the rest orthogonal to it."""
    q, p = span.shape[0], sig.shape[0]
    phi = orth_np(span, svd_rtol(span.shape))
    _, rs_pinv, _, _ = psd_roots(sig, PSD_RTOL)
    h1, h2 = _gaussian(key_in, (q, p)), _gaussian(key_out, (q, p))
    parts = []
    for part, frac in ((phi @ (phi.T @ h1), inside), (h2 - phi @ (phi.T @ h2), 1 - inside)):
        nrm = np.linalg.norm(part)
        parts.append(part * (math.sqrt(frac) * size / nrm) if nrm > 0 else 0 * part)
    return (parts[0] + parts[1]) @ rs_pinv  # parts[0] + parts[1] is H Sigma^{1/2}


def _covariate_shift(key: Array, sig: np.ndarray, scale: float, cond: float) -> np.ndarray:
    r"""$c^2\Sigma^{1/2}R\Sigma^{1/2}$, $R$ random with eigenvalues log-spaced in $[1/\kappa_R,\kappa_R]$."""
    p = sig.shape[0]
    qr_ = random_orthonormal(key, p, p)
    lam = np.logspace(-math.log10(cond), math.log10(cond), p)
    rmat = (qr_ * lam[None, :]) @ qr_.T
    rs = psd_roots(sig, PSD_RTOL).root
    return scale**2 * rs @ rmat @ rs


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
    g = instance.above(ell) @ us
    phi = orth_np(g, svd_rtol(g.shape))
    rs, rs_pinv, _, _ = psd_roots(instance.sigma_x_in, PSD_RTOL)
    h = phi @ (phi.T @ _gaussian(jax.random.key(seed), (instance.q, instance.p)))
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
