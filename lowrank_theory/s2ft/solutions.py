r"""Minimum-norm LoRA, S²FT and full fine-tuning of one layer, and their excess risks.

Seed 002 (Yang et al., *S²FT*, NeurIPS 2024), Section 4.1 and Appendix F.5-F.7: the closed forms
of Lemmas F.9 (LoRA, (15)), F.12 (S²FT, (19)/(25)) and Section F.7 (full fine-tuning of layer
$\ell$), written in the Appendix F.2 objects of :func:`~lowrank_theory.s2ft.notation.notation`;
the excess risks of Section F.2; S²FT's channel selection (Section 3.2 / Appendix D).

``n=None`` means the population solution ($n\to\infty$, (15), (25)); an integer ``n`` draws $n$
in-distribution samples with ``key`` (default: derived from the instance's ``seed`` and ``n``),
or pass ``data=`` (a :class:`~lowrank_theory.s2ft.instance.Sample`). Every fit also accepts a
precomputed ``nt=`` (:class:`~lowrank_theory.s2ft.notation.Notation`) so that a caller that
already holds the notation does not compute it again. The risk is the **squared** error
$\mathcal R^{(k)}(f) = \mathbb E\|y-f(x)\|^2$ and
$\mathcal E^{(k)}(f) = \mathcal R^{(k)}(f) - \operatorname{tr}\Sigma_\epsilon^{(k)}$.

References:
    Yang et al., *S²FT*, NeurIPS 2024 (seed ``002_6b1767d2fe2301ea.txt``), Section 4.1,
    eq. (3)-(7), Lemmas F.9, F.12, F.17, Section 3.2, Appendix D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jax
import numpy as np
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.linalg import rank_threshold
from ..core.validation import as_matrix, check_int
from .instance import (
    DeepLinearInstance,
    Sample,
    Task,
    check_task,
    sample,
    selection_matrix,
    svd_rtol,
)
from .notation import Notation, notation

__all__ = [
    "FineTuned",
    "channel_selector",
    "excess_risk",
    "excess_risk_mc",
    "full_ft",
    "lora_eigengap",
    "min_norm_lora",
    "min_norm_s2ft",
    "pretrained",
    "risk",
]


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


def _fitted(inst, method, ell, delta, u, v, n, channels=None, nt=None) -> FineTuned:
    wbar, wlow = (inst.above(ell), inst.below(ell)) if nt is None else (nt.W_above, nt.W_below)
    e2e = inst.w_pre + wbar @ delta @ wlow
    return FineTuned(method, ell, delta, u, v, e2e, n, channels)


def _notation(instance, ell, S, n, key, data, nt: Notation | None) -> Notation:
    """``nt`` checked against the request, or the notation computed now."""
    if nt is None:
        return notation(instance, ell, S, n=n, key=key, data=data)
    if nt.ell != ell or (S is not None and nt.S != tuple(int(a) for a in S)):
        raise ValueError(f"nt is for ell = {nt.ell}, S = {nt.S}; asked for ell = {ell}, S = {S}")
    if n is not None or key is not None or data is not None:
        raise ValueError("pass either nt or n/key/data, not both")
    return nt


def pretrained(instance: DeepLinearInstance, ell: int = 1) -> FineTuned:
    r"""$f^{\mathrm{pre}}$ as a :class:`FineTuned` with $\Delta=0$."""
    ell = instance.check_layer(ell)
    d, dp = instance.dims[ell], instance.dims[ell - 1]
    return _fitted(
        instance, "pretrained", ell, np.zeros((d, dp)), np.zeros((d, 0)), np.zeros((dp, 0)), None
    )


def lora_eigengap(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    n: int | None = None,
    *,
    key: Array | None = None,
    data: Sample | None = None,
    nt: Notation | None = None,
) -> float:
    r"""$C_g = \lambda_r(M)/(\lambda_r(M)-\lambda_{r+1}(M))$ of Assumption F.3 (``inf`` if no gap).

    ``n``/``key``/``data``/``nt`` as in :func:`min_norm_lora` (then $\hat M$).
    """
    ell = instance.check_layer(ell)
    nt = _notation(instance, ell, None, n, key, data, nt)
    s = np.linalg.svd(nt.M, compute_uv=False)
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
    nt: Notation | None = None,
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
        key, data, nt: see the module docstring.

    Raises:
        ValueError: bad ``ell``/``r``, or $\lambda_r(\hat M)=\lambda_{r+1}(\hat M)>0$ (the
            rank-$r$ minimiser is not unique; Assumption F.3 fails).
    """
    ell = instance.check_layer(ell)
    d, dp = instance.dims[ell], instance.dims[ell - 1]
    r = check_int(r, "r (LoRA rank)", lo=1, hi=min(d, dp))
    nt = _notation(instance, ell, None, n, key, data, nt)
    uu, s, vt = np.linalg.svd(nt.M, full_matrices=False)
    tau = rank_threshold(s, nt.M.shape, svd_rtol(nt.M.shape))
    if r < s.size and s[r - 1] > tau:
        if s[r - 1] - s[r] <= tau:
            raise ValueError(
                f"lambda_r(M) = lambda_(r+1)(M) = {s[r - 1]:.6g}: the rank-{r} LoRA minimiser is "
                "not unique (eigengap Assumption F.3 fails)"
            )
    mr = (uu[:, :r] * s[None, :r]) @ vt[:r, :]
    delta = nt.W_above_pinv @ mr @ nt.A_pinv
    u, v = _balanced(delta, r)
    return _fitted(instance, "lora", ell, delta, u, v, nt.n, nt=nt)


def _balanced(delta: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    uu, s, vt = np.linalg.svd(delta, full_matrices=False)
    root = np.sqrt(s[:r])
    return uu[:, :r] * root[None, :], vt[:r, :].T * root[None, :]


def min_norm_s2ft(
    instance: DeepLinearInstance,
    ell: int,
    S: Sequence[int],
    n: int | None = None,
    *,
    key: Array | None = None,
    data: Sample | None = None,
    nt: Notation | None = None,
) -> FineTuned:
    r"""The minimum-norm S²FT solution (6)/(25), closed form (19) of Lemma F.12.

    $$U_SV^{\mathrm{S^2FT}\top} = U_S(\overline W_{\ell+1}U_S)^\dagger\hat D\hat\Sigma_x
    \underline W_{\ell-1}^\top(\hat A^\dagger)^2.$$

    Args:
        instance: the task.
        ell: fine-tuned layer.
        S: the $s$ distinct trainable channels (rows of $W_\ell$), 0-indexed, in $[0,d_\ell)$.
        n, key, data, nt: as in :func:`min_norm_lora`.
    """
    ell = instance.check_layer(ell)
    selection_matrix(S, instance.dims[ell])  # validates S before any work
    nt = _notation(instance, ell, S, n, key, data, nt)
    if nt.U_S is None:
        raise ValueError("nt was computed without channels S")
    vt = nt.WS_pinv @ nt.CW @ nt.A2_pinv
    return _fitted(instance, "s2ft", ell, nt.U_S @ vt, nt.U_S, vt.T, nt.n, nt.S, nt=nt)


def full_ft(
    instance: DeepLinearInstance,
    ell: int,
    n: int | None = None,
    *,
    key: Array | None = None,
    data: Sample | None = None,
    nt: Notation | None = None,
) -> FineTuned:
    r"""Full fine-tuning of layer $\ell$ (Section F.7): the minimum-norm minimiser
    $\Delta^{\mathrm{full}}_\ell = \overline W_{\ell+1}^\dagger D\Sigma_x\underline W_{\ell-1}^\top(A^2)^\dagger$.

    With ``n`` (or ``data``) the same with sample moments (least squares on the data).
    """
    ell = instance.check_layer(ell)
    nt = _notation(instance, ell, None, n, key, data, nt)
    delta = nt.W_above_pinv @ nt.CW @ nt.A2_pinv
    u, v = _balanced(delta, min(delta.shape))
    return _fitted(instance, "full", ell, delta, u, v, nt.n, nt=nt)


# --- risks -------------------------------------------------------------------------------------
def _end_to_end(instance: DeepLinearInstance, model) -> np.ndarray:
    if isinstance(model, FineTuned):
        return model.end_to_end
    w = np.asarray(as_matrix(model, "model (q x p end-to-end matrix)"), dtype=np.float64)
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
        >>> from lowrank_theory.s2ft import build_instance
        >>> inst = build_instance(0, dims=(3, 2, 3), ell=1, residual_rank=1)
        >>> round(excess_risk(inst, inst.b_in, "in"), 12)
        0.0
    """
    k = check_task(k)
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
    k = check_task(k)
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


# --- channel selection (Section 3.2 / Appendix D) ----------------------------------------
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
