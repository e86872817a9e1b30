r"""The Appendix F.2 objects of seed 002 for one fine-tuned layer, as one frozen dataclass.

:func:`notation` computes them once per (instance, $\ell$, $S$, moments); the minimum-norm
solutions (:mod:`lowrank_theory.s2ft.solutions`), the bounds (:mod:`lowrank_theory.s2ft.bounds`)
and the gradient dynamics read them from the :class:`Notation` it returns.

Conventions (the seed's F.2 rendering is garbled; see :mod:`lowrank_theory.s2ft.instance`):
$D = B^{(\mathrm i)}-W^{\mathrm{pre}}$, $\Sigma=\Sigma_x^{(\mathrm i)}$, $C = D\Sigma$ in the
population and $\hat C = \hat D\hat\Sigma_x = \frac1n(Y-W^{\mathrm{pre}}X)X^\top$ with $n$ samples;
$G^{(\mathrm{i,o})}_{\ell-1} = (\underline W_{\ell-1}\Sigma_x^{(\mathrm i)1/2})^\dagger
\underline W_{\ell-1}\Sigma_x^{(\mathrm o)1/2}$ (read from its uses in the proofs of Theorems F.11
and F.15: it makes $\Sigma^{(\mathrm i)1/2}\underline W^\top(A^\dagger)^2\underline W\Sigma^{(\mathrm o)1/2}
= \Sigma^{(\mathrm i)1/2}G$ and $\|A^\dagger\underline W\Sigma^{(\mathrm o)1/2}\|_{op}=\|G\|_{op}$).
Ranks, $\Phi_*$ and pseudo-inverses use the one rank rule of :mod:`lowrank_theory.core.linalg`
with the tolerances :data:`~lowrank_theory.s2ft.instance.PSD_RTOL` (eigenvalues) and
:func:`~lowrank_theory.s2ft.instance.svd_rtol` (singular values).

References:
    Yang et al., *S²FT*, NeurIPS 2024 (seed ``002_6b1767d2fe2301ea.txt``), Appendix F.1
    (notation), F.2 (setup), F.3 (assumptions), Lemmas F.9 and F.12 (where $\hat A$, $\hat M$,
    $\Phi'$, $\Phi''_S$ appear), proofs of Theorems F.10, F.11, F.13, F.15.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from jax import Array

from ..core.linalg import orth_np, pinv_np, psd_roots
from .instance import (
    PSD_RTOL,
    DeepLinearInstance,
    Moments,
    Sample,
    moments,
    selection_matrix,
    svd_rtol,
)

__all__ = ["Notation", "notation"]


@dataclass(frozen=True, eq=False)
class Notation:
    r"""The Appendix F.2 objects for layer $\ell$ (and channels $S$) of one instance.

    Fields marked *(moments)* are computed from the in-distribution second moments: the
    population ones when ``n`` is ``None``, else the sample ones of $n$ draws (the seed's hatted
    $\hat C$, $\hat A$, $\hat M$ of Lemmas F.9/F.12). All other fields are population objects of
    the instance. Channel fields are ``None`` when no $S$ was given.

    Attributes:
        ell: the fine-tuned layer $\ell$ (1-indexed).
        n: sample size of the moments (``None``: population, $n\to\infty$).
        S: the channels $S$ (0-indexed), or ``None``.
        D: $D = B^{(\mathrm i)}-W^{\mathrm{pre}}$ ($q\times p$), Section F.2.
        W_above: $\overline W_{\ell+1} = W_L\cdots W_{\ell+1}$ ($q\times d_\ell$), (4).
        W_below: $\underline W_{\ell-1} = W_{\ell-1}\cdots W_1$ ($d_{\ell-1}\times p$), (4).
        W_above_pinv: $\overline W_{\ell+1}^\dagger$ (Lemma F.9's closed form, Assumption F.4).
        Sigma_x: $\Sigma_x^{(\mathrm i)}$ or $\hat\Sigma_x^{(\mathrm i)} = XX^\top/n$ *(moments)*.
        C: $D\Sigma_x^{(\mathrm i)}$ or $\hat D\hat\Sigma_x^{(\mathrm i)}$ ($q\times p$) *(moments)*.
        CW: $C\underline W_{\ell-1}^\top$ ($q\times d_{\ell-1}$), the data term of (15), (19),
            (25) *(moments)*.
        Sigma_half, Sigma_half_pinv: $\Sigma_x^{(\mathrm i)1/2}$ and its pseudo-inverse.
        Sigma_out_half: $\Sigma_x^{(\mathrm o)1/2}$ (Theorems F.11, F.15).
        A, A_pinv, A2_pinv: $A = (\underline W_{\ell-1}\Sigma_x\underline W_{\ell-1}^\top)^{1/2}$,
            $A^\dagger$, $(A^2)^\dagger$ (Section F.2; $\hat A$ with sample moments) *(moments)*.
        rank_A: $\operatorname{rank}A$ *(moments)*.
        Phi1, P1: $\Phi' = \Phi_*(\overline W_{\ell+1})$ and the projector $P' = \Phi'\Phi'^\top$
            onto the range of $\overline W_{\ell+1}$ (Lemma F.9).
        M: $M = P'C\underline W_{\ell-1}^\top A^\dagger$ (Assumption F.3, Lemma F.9; $\hat M$ with
            sample moments) *(moments)*.
        Pi: $\Pi = \Sigma^{1/2}\underline W_{\ell-1}^\top(A^2)^\dagger\underline W_{\ell-1}\Sigma^{1/2}$,
            the projector onto the row space of $\underline W_{\ell-1}\Sigma^{1/2}$ (Lemma F.17).
        G: $G^{(\mathrm{i,o})}_{\ell-1}$ (module docstring; Theorems F.11, F.15).
        Sigma_f: $\Sigma_f^{(\mathrm i)} = D\Sigma D^\top$ (Section F.3).
        E_pre: $\mathcal E^{(\mathrm i)}(f^{\mathrm{pre}}) = \|D\Sigma^{1/2}\|_F^2 =
            \operatorname{tr}\Sigma_f^{(\mathrm i)}$ (Section F.3).
        U_S: $U_S = [e_{a_1},\dots,e_{a_s}]$ ($d_\ell\times s$), (6).
        Phi2, P2: $\Phi''_S = \Phi_*(\overline W_{\ell+1}U_S)$ and $P''_S = \Phi''_S\Phi''^\top_S$
            (Lemma F.12, Theorem F.13, Assumption F.5).
        WS_pinv: $(\overline W_{\ell+1}U_S)^\dagger$ ($s\times q$), the closed form (19).
    """

    ell: int
    n: int | None
    S: tuple[int, ...] | None
    D: np.ndarray
    W_above: np.ndarray
    W_below: np.ndarray
    W_above_pinv: np.ndarray
    Sigma_x: np.ndarray
    C: np.ndarray
    CW: np.ndarray
    Sigma_half: np.ndarray
    Sigma_half_pinv: np.ndarray
    Sigma_out_half: np.ndarray
    A: np.ndarray
    A_pinv: np.ndarray
    A2_pinv: np.ndarray
    rank_A: int
    Phi1: np.ndarray
    P1: np.ndarray
    M: np.ndarray
    Pi: np.ndarray
    G: np.ndarray
    Sigma_f: np.ndarray
    E_pre: float
    U_S: np.ndarray | None = None
    Phi2: np.ndarray | None = None
    P2: np.ndarray | None = None
    WS_pinv: np.ndarray | None = None

    #: the keys of the dict that ``notation`` returned before it was a dataclass
    OLD_KEYS: ClassVar[frozenset[str]] = frozenset(
        "D W_above W_below Sigma_half Sigma_half_pinv Sigma_out_half A A_pinv A2_pinv rank_A "
        "Phi1 P1 M Pi G Sigma_f E_pre Phi2 P2 U_S".split()
    )

    def __getitem__(self, key: str):
        """``nt["M"]``, the dict access of earlier releases: deprecated, use ``nt.M``."""
        if key not in self.OLD_KEYS:
            raise KeyError(key)
        warnings.warn(
            f"Notation[{key!r}] is deprecated; use the attribute Notation.{key}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, key)


def notation(
    instance: DeepLinearInstance,
    ell: int,
    S: Sequence[int] | None = None,
    *,
    n: int | None = None,
    key: Array | None = None,
    data: Sample | None = None,
    mom: Moments | None = None,
) -> Notation:
    r"""The :class:`Notation` of layer $\ell$ (and channels $S$) of ``instance``.

    With no ``n``, ``data`` or ``mom`` the *(moments)* fields are the population ones; with
    ``n``/``key``/``data`` (:func:`~lowrank_theory.s2ft.instance.moments`) or precomputed
    ``mom`` they are the sample ones.

    Raises:
        ValueError: bad ``ell`` or ``S``, or $\underline W_{\ell-1}\Sigma_x\underline W_{\ell-1}^\top = 0$
            (fine-tuning layer $\ell$ cannot change the output; Section F.3 excludes it).
    """
    ell = instance.check_layer(ell)
    if mom is None:
        mom = moments(instance, n, key=key, data=data)
    wbar, wlow = instance.above(ell), instance.below(ell)
    sig = instance.sigma_x_in
    rs, rs_pinv, _, _ = psd_roots(sig, PSD_RTOL)
    rs_o = psd_roots(instance.sigma_x_out, PSD_RTOL).root
    d = instance.b_in - instance.w_pre
    pop = psd_roots(wlow @ sig @ wlow.T, PSD_RTOL)
    hat = pop if mom.n is None else psd_roots(wlow @ mom.sxx @ wlow.T, PSD_RTOL)
    if hat.rank == 0:
        raise ValueError(
            "W_below Sigma_x W_below^T = 0: fine-tuning this layer cannot change the output "
            "(Section F.3 excludes it)"
        )
    phi1 = orth_np(wbar, svd_rtol(wbar.shape))
    p1 = phi1 @ phi1.T
    cw = mom.cross @ wlow.T
    ws = wlow @ rs
    chans = _channels(instance, ell, S, wbar)
    return Notation(
        ell=ell,
        n=mom.n,
        S=None if S is None else tuple(int(a) for a in S),
        D=d,
        W_above=wbar,
        W_below=wlow,
        W_above_pinv=pinv_np(wbar, svd_rtol(wbar.shape)),
        Sigma_x=mom.sxx,
        C=mom.cross,
        CW=cw,
        Sigma_half=rs,
        Sigma_half_pinv=rs_pinv,
        Sigma_out_half=rs_o,
        A=hat.root,
        A_pinv=hat.root_pinv,
        A2_pinv=hat.pinv,
        rank_A=hat.rank,
        Phi1=phi1,
        P1=p1,
        M=p1 @ cw @ hat.root_pinv,
        Pi=rs @ wlow.T @ pop.pinv @ wlow @ rs,
        G=pinv_np(ws, svd_rtol(ws.shape)) @ wlow @ rs_o,
        Sigma_f=d @ sig @ d.T,
        E_pre=float(np.sum((d @ rs) ** 2)),
        **chans,
    )


def _channels(instance: DeepLinearInstance, ell: int, S, wbar: np.ndarray) -> dict:
    if S is None:
        return {}
    us = selection_matrix(S, instance.dims[ell])
    g = wbar @ us
    phi2 = orth_np(g, svd_rtol(g.shape))
    return {"U_S": us, "Phi2": phi2, "P2": phi2 @ phi2.T, "WS_pinv": pinv_np(g, svd_rtol(g.shape))}
