r"""Claims on S²FT's training dynamics and structure (seed 002, Sections 3.1-3.2, 4.1, 4.2): the
Section 4.2 gradient identities, the implicit bias of gradient descent and the co-permutation
invariance of coupled layers; the maths is in :mod:`lowrank_theory.s2ft.dynamics`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ...core.precision import tolerance
from ...s2ft import (
    channel_permutation,
    gd_lora,
    gd_s2ft,
    permute_coupled,
    s2ft_dense_update,
    s2ft_sparse_update,
    sample,
    sec42_gradients,
    selection_matrix,
)
from ..base import CheckResult, combine, compare
from .instances import base_params, build, counterexample, data_for, reg, scale


# --- Section 4.2, implicit bias, permutation ------------------------------------------------
def check_sec42_gradient(b: dict[str, Any]) -> CheckResult:
    r"""Section 4.2's gradient by three independent routes (see the claim's ``convention``).

    The magnitude ``mag`` of the terms the gradient sums,
    $\frac2n\|\underline W_{\ell-1}X\|_F\|\overline W_{\ell+1}\|_2(\|Y\|_F
    +\|\overline W_{\ell+1}\|_2\|W_\ell+U_SV^\top\|_2\|\underline W_{\ell-1}X\|_F)$, scales
    the rounding tolerance of the autodiff/closed-form/least-squares comparisons; the finite
    differences' tolerance scales with $\|(|\hat{\mathcal R}^+|+|\hat{\mathcal R}^-|)/(2h)\|_F$.
    """
    inst, ell, S = b["inst"], b["ell"], b["S"]
    seed = b["params"]["seed"]
    rng = np.random.default_rng(seed)
    data = sample(inst, 32, jax.random.key(seed))
    v = 0.1 * rng.standard_normal((inst.dims[ell - 1], len(S)))
    g = sec42_gradients(inst, ell, S, v, data, rotation_seed=seed)
    z = inst.below(ell) @ data.x
    wbar = inst.above(ell)
    w = inst.weights[ell - 1] + selection_matrix(S, inst.dims[ell]) @ v.T
    nb = float(np.linalg.norm(wbar, 2))
    mag = (2.0 / data.n) * float(np.linalg.norm(z)) * nb
    mag *= float(np.linalg.norm(data.y)) + nb * float(np.linalg.norm(w, 2) * np.linalg.norm(z))
    n_ops = sum(inst.dims) + data.n
    tol = tolerance(mag, n=n_ops)
    fd_scale = float(np.linalg.norm(g["fd_rounding"])) + mag
    routes = [  # (route, tolerance, scale, what jax.grad in V is compared with)
        ("closed_form", tol, mag, "seed's closed form sum_i (W_low x_i) g_i^T U_S"),
        ("finite_diff", tolerance(fd_scale, n=n_ops), fd_scale, "central differences"),
        ("lstsq", tol, mag, "argmin ||U_S G_V^T - G||_F (lstsq, mixed basis)"),
    ]
    resid = {k: float(np.linalg.norm(g["grad_v"] - g[k])) for k, _, _, _ in routes}
    details = {f"residual_{k}": r for k, r in resid.items()}
    return combine(
        [
            compare(resid[k], 0.0, "==", t, scale=sc, what=f"jax.grad in V == {what}", **details)
            for k, t, sc, what in routes
        ],
        primary=0,
    )


def check_sec42(b: dict[str, Any], part: str) -> CheckResult:
    """The single-layer GD step of Section 4.2 (``part``: ``as_written`` or ``corrected``)."""
    if part == "gradient":
        return check_sec42_gradient(b)
    inst, ell, S = b["inst"], b["ell"], b["S"]
    rng = np.random.default_rng(b["params"]["seed"])
    dp = inst.dims[ell - 1]
    v = 0.1 * rng.standard_normal((dp, len(S)))
    # one GD step on V for a single layer f(x) = (W + U_S V^T) x, loss 1/2 ||y - f(x)||^2
    d = inst.dims[ell]
    w = inst.weights[ell - 1]
    x = rng.standard_normal(dp)
    y = rng.standard_normal(d)
    us = selection_matrix(S, d)
    lr = 0.01
    gbar = -(y - (w + us @ v.T) @ x)  # dL/df
    v_new = v - lr * np.outer(x, gbar @ us)
    df = us @ (v_new - v).T @ x
    pred = (
        -lr * (us @ us.T @ gbar) * float(x @ x)
        if part == "corrected"
        else -lr * gbar * float(x @ x)
    )
    sc2 = lr * float(np.linalg.norm(gbar)) * float(x @ x)
    return compare(
        float(np.linalg.norm(df - pred)),
        0.0,
        "==",
        tolerance(sc2, n=d + dp),
        scale=sc2,
        s=len(S),
        d_ell=d,
    )


def check_implicit_s2ft(b: dict[str, Any]) -> CheckResult:
    r"""Relative distance of GD's $V_t$ to the minimum-norm $V^{S^2FT}$ against the linear rate.

    Rounding floor (a documented bound): GD is a contraction by $\rho=1-\mu/L$ per step, and
    each step adds rounding of its three terms ($V$, $\eta\nabla^2V$, $\eta\,b$, each of size
    $\lesssim\|V^\star\|$), so its fixed point is reached to
    $\approx 3\,n\varepsilon\|V^\star\|/(1-\rho)=3\,n\varepsilon\,\kappa_H\|V^\star\|$,
    $\kappa_H=L/\mu\le$ ``scale(b)``: ``tolerance(scale(b), n=3 * sum(dims))``.
    """
    inst, ell, S = b["inst"], b["ell"], b["S"]
    res = gd_s2ft(inst, ell, S, b["n"], data=data_for(b), steps=3000)
    floor = tolerance(scale(b), n=3 * sum(inst.dims))
    return compare(
        float(res.distance[-1]),
        max(float(res.rate_bound), floor),
        "<=",
        0.0,
        steps=res.steps,
        lr=res.lr,
        rate_bound=res.rate_bound,
        rounding_floor=floor,
    )


def check_implicit_lora(b: dict[str, Any]) -> CheckResult:
    inst, ell, r = b["inst"], b["ell"], b["r"]
    res = gd_lora(inst, ell, r, b["n"], data=data_for(b), steps=20000, init_scale=1e-4)
    return compare(
        float(res.distance[-1]),
        0.05,
        "<=",
        0.0,
        steps=res.steps,
        lr=res.lr,
        init_scale=1e-4,
        distance_mid=float(res.distance[res.steps // 2]),
        criterion="relative distance ||UV^T - Delta_LoRA||_F / ||Delta_LoRA||_F after 20000 GD "
        "steps from N(0, 1e-4^2) is <= 0.05",
    )


def _is_involution(perm: np.ndarray) -> bool:
    return bool(np.array_equal(perm[perm], np.arange(perm.size)))


def long_cycle_permutation(rng: np.random.Generator, d: int) -> np.ndarray:
    """A uniformly random permutation of ``range(d)`` that is one ``d``-cycle (Sattolo's
    algorithm); for ``d >= 3`` never an involution, so it differs from its inverse."""
    perm = np.arange(d)
    for i in range(d - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    assert d < 3 or not _is_involution(perm), "a d-cycle with d >= 3 is not an involution"
    return perm


def channels_not_involutive(rng: np.random.Generator, d: int, s: int) -> tuple[int, ...]:
    """``s`` distinct channels in random order whose :func:`channel_permutation` (``S`` first)
    is not an involution (by rejection; an assertion if none is found)."""
    for _ in range(1000):
        chans = tuple(int(a) for a in rng.permutation(d)[:s])
        if not _is_involution(channel_permutation(d, chans)):
            return chans
    raise AssertionError(f"no {s} of {d} channels with a non-involutive channel permutation")


def check_permutation(b: dict[str, Any]) -> CheckResult:
    r"""Co-permutation invariance and the dense update of the permuted leading block.

    The instance's channel set $S$ is sorted and starts with the residual's channels
    $0,1,\dots$, so its permutation is often the identity or an involution ($P=P^{-1}$), on
    which a permutation used where its inverse is meant cannot show. Hence both sub-checks also
    run with permutations that are not involutions (asserted): (0) a random $d_\ell$-cycle
    besides the instance's channel permutation; (1) a random ordered channel set $S'$ of the
    same size whose channel permutation is not an involution, besides $S$.
    """
    inst, ell, S = b["inst"], b["ell"], b["S"]
    if ell >= inst.n_layers:
        ell = 1  # the coupled pair needs a following layer
        S = tuple(a for a in S if a < inst.dims[1]) or (0,)
    ws = list(inst.weights)
    rng = np.random.default_rng(b["params"]["seed"])
    v = rng.standard_normal((inst.dims[ell - 1], len(S)))
    x = rng.standard_normal((inst.p, 8))
    d = inst.dims[ell]
    assert d >= 3, "the coupled layer needs >= 3 channels for a non-involutive permutation"
    cycle = long_cycle_permutation(rng, d)
    s_prime = channels_not_involutive(rng, d, len(S))

    def out(weights):
        z = x
        for w in weights:
            z = w @ z
        return z

    base = out(ws)

    def sparse_out(chans):
        sparse = list(ws)
        sparse[ell - 1] = s2ft_sparse_update(ws[ell - 1], chans, v)
        return out(sparse)

    sparse_s, sparse_p = sparse_out(S), sparse_out(s_prime)
    sc = max(float(np.linalg.norm(sparse_s)), float(np.linalg.norm(sparse_p)))
    sc += float(np.linalg.norm(base))
    tol = tolerance(sc, n=sum(inst.dims))
    invariance = max(
        float(np.linalg.norm(out(permute_coupled(ws, ell, perm)) - base))
        for perm in (channel_permutation(d, S), cycle)
    )
    dense = max(
        float(np.linalg.norm(out(s2ft_dense_update(ws, ell, chans, v)) - sp))
        for chans, sp in ((S, sparse_s), (s_prime, sparse_p))
    )
    return combine(
        [
            compare(invariance, 0.0, "==", tol, scale=sc, what="co-permutation invariance"),
            compare(dense, 0.0, "==", tol, scale=sc, what="dense block update = sparse update"),
        ],
        primary=0,  # the co-permutation invariance (the dense update is checked too)
        cycle=cycle.tolist(),
        channels_prime=list(s_prime),
    )


reg(
    "s2ft.sec42.gradient",
    "Section 4.2",
    r"\partial\mathcal L/\partial V^{S^2FT}=(U_S^\top G)^\top,\ \arg\min_{G_V}\|U_SG_V^\top-G\|_F=U_S^\top G",
    lambda: base_params(),
    build,
    lambda b: check_sec42(b, "gradient"),
    convention=(
        "Empirical risk (1/n) sum_i ||y_i - f(x_i)||^2 on n = 32 samples at W_ell + U_S V^T, V "
        "random; three independent routes are compared with jax.grad of the risk written directly "
        "in V (V^T scattered into the rows S): (0, primary) the seed's closed form "
        "sum_i (W_low x_i) g_i^T U_S with g_i = -(2/n) W_above^T (y_i - f(x_i)), sample by "
        "sample in numpy; (1) central differences of the risk evaluated layer by layer in numpy "
        "(exact up to rounding: the risk is quadratic in V); (2) argmin_{G_V} ||U_S G_V^T - G||_F "
        "for G = jax.grad in the dense W_ell, solved by numpy lstsq in a randomly mixed basis "
        "U_S Q, Q invertible (a dense solve; on U_S itself lstsq is exact by construction). Tolerances: "
        "rounding of the summed terms' magnitude, and of the perturbed risks / 2h for (1)."
    ),
    test_examples=3,
)
reg(
    "s2ft.sec42.gradient[update_as_written]",
    "Section 4.2",
    r"\Delta f_{\ell,t}(x)=-\eta U_SU_S^\top\overline G^\top\|x\|^2=-\eta\overline G^\top\|x\|^2",
    lambda: base_params(),
    build,
    lambda b: check_sec42(b, "as_written"),
    expected="fails",
    counterexample=counterexample(),
    corrected="U_S has orthonormal columns (U_S^T U_S = I_s) but U_S U_S^T is the projector onto the s selected channels, not I (unless s = d_ell): Delta f = -eta U_S U_S^T G^T ||x||^2 (s2ft.sec42.gradient[update_corrected]).",
    convention="single layer f(x) = (W + U_S V^T)x, loss 1/2||y - f(x)||^2, one GD step on V.",
    test_examples=4,
)
reg(
    "s2ft.sec42.gradient[update_corrected]",
    "Section 4.2 (corrected)",
    r"\Delta f_{\ell,t}(x)=-\eta U_SU_S^\top\overline G^\top\|x\|^2",
    lambda: base_params(),
    build,
    lambda b: check_sec42(b, "corrected"),
    test_examples=6,
)
reg(
    "s2ft.implicit_bias",
    "Section 4.1 (min-norm motivated by implicit regularisation)",
    r"\text{GD on }V\text{ from }V_0=0\to V^{S^2FT}\text{ (min-norm)}:\ \|V_t-V^{S^2FT}\|_F\le(1-\mu/L)^t\|V^{S^2FT}\|_F",
    lambda: base_params(n_choices=(None, 200)),
    build,
    check_implicit_s2ft,
    convention="step 1/L, 3000 steps; the linear-rate bound is the rhs.",
    test_examples=4,
)
reg(
    "s2ft.implicit_bias[lora]",
    "Section 4.1",
    r"\text{GD on }(U,V)\text{ from small init}\to U^{LoRA}V^{LoRA\top}",
    lambda: base_params(shapes=("funnel", "first"), n_choices=(None, 200)).map(
        lambda p: {**p, "decay": 0.5}
    ),
    build,
    check_implicit_lora,
    expected="empirical",
    convention="empirical: init N(0, 1e-4^2), 20000 steps; 'holds' when the relative distance ||UV^T - Delta_LoRA||_F/||Delta_LoRA||_F <= 0.05.",
    test_examples=2,
)
reg(
    "s2ft.permutation_invariance",
    "Section 3.1-3.2",
    r"W_{\ell+1}P^\top PW_\ell=W_{\ell+1}W_\ell\ \text{and the dense update of the permuted leading block equals }W_\ell+U_SV^\top",
    lambda: base_params(),
    build,
    check_permutation,
    convention="Reported (primary): the co-permutation invariance, for the channel permutation "
    "of S and for a random d_ell-cycle (not an involution, so P != P^-1); the dense update of "
    "the permuted block = the sparse update is checked too, for S and for a random ordered "
    "channel set S' whose channel permutation is not an involution.",
    test_examples=6,
)
