"""Unit, cross-check and bad-input tests for lowrank_theory.s2ft (seed 002)."""

import math
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import lowrank_theory as lt
from lowrank_theory.core.linalg import low_rank_approx_np
from lowrank_theory.core.precision import tolerance
from lowrank_theory.s2ft import (
    DeepLinearInstance,
    build_instance,
    channel_permutation,
    channel_selector,
    channel_sparsity_delta,
    excess_risk,
    excess_risk_mc,
    full_ft,
    gd_lora,
    gd_s2ft,
    label_shift_epsilon,
    lemma_f14,
    lora_eigengap,
    min_norm_lora,
    min_norm_s2ft,
    moments,
    permute_coupled,
    pretrained,
    risk,
    s2ft_dense_update,
    s2ft_sparse_update,
    sample,
    selection_matrix,
    sparsity_level,
    theorem_42,
    variance_bounds,
    variance_terms,
    with_label_shift_epsilon,
)
from lowrank_theory.s2ft.notation import notation

ROOT = Path(__file__).resolve().parents[1]
DIMS, ELL = (6, 5, 4, 6), 2


@pytest.fixture(scope="module")
def inst():
    return build_instance(
        3, DIMS, ELL, residual_rank=3, residual_decay=0.6, channels=(0, 1, 2), delta=0.2,
        weight_cond=2.0, x_cond=3.0, label_shift=1.0,
    )  # fmt: skip


def test_sparsity_level_matches_parameter_count():
    assert sparsity_level(2, 4, 5) == 3  # floor(2 * 9 / 5)
    for r, d, dp in [(1, 8, 8), (3, 10, 7), (2, 4, 16)]:
        s = sparsity_level(r, d, dp)
        assert s * dp <= r * (d + dp) < (s + 1) * dp


def test_structure_products(inst):
    w = inst.weights
    assert np.allclose(inst.above(2), w[2])
    assert np.allclose(inst.below(2), w[0])
    assert np.allclose(inst.above(3), np.eye(6)) and np.allclose(inst.below(1), np.eye(6))
    assert np.allclose(inst.w_pre, w[2] @ w[1] @ w[0])


def test_builder_realises_assumptions(inst):
    nt = notation(inst, ELL, (0, 1, 2))
    ds = nt.D @ nt.Sigma_half
    # realisable: the residual lies in range(W_above) and in the layer's input space
    assert np.linalg.norm((np.eye(6) - nt.P1) @ ds) < 1e-12
    assert np.linalg.norm(ds @ (np.eye(6) - nt.Pi)) < 1e-12
    # Assumption F.4 with exactly the chosen delta (W_above has full column rank here)
    assert channel_sparsity_delta(inst, ELL, (0, 1, 2)) == pytest.approx(0.2, rel=1e-12)
    # exact label-shift epsilon
    i2 = with_label_shift_epsilon(inst, ELL, (0, 1, 2), 0.35, seed=1)
    assert label_shift_epsilon(i2, ELL, (0, 1, 2)) == pytest.approx(0.35, rel=1e-10)
    # label-shift size
    assert np.linalg.norm((inst.b_out - inst.b_in) @ nt.Sigma_half) == pytest.approx(1.0)
    # covariate shift by a scale c: Sigma_out = c^2 Sigma_in
    i3 = build_instance(0, DIMS, ELL, covariate_scale=3.0)
    assert np.allclose(i3.sigma_x_out, 9 * i3.sigma_x_in)


def test_eigengap_from_geometric_spectrum():
    i = build_instance(0, DIMS, ELL, residual_rank=3, residual_decay=0.5)
    assert lora_eigengap(i, ELL, 1) == pytest.approx(2.0, rel=1e-10)  # 1/(1-0.5)
    flat = build_instance(0, DIMS, ELL, residual_rank=3, residual_decay=1.0)
    assert lora_eigengap(flat, ELL, 1) > 1e10
    with pytest.raises(ValueError, match="not unique"):
        min_norm_lora(flat, ELL, 1)


def _vectorised_min_norm(left, right, target):
    k = np.kron(right.T, left)
    z = scipy.linalg.lstsq(k, target.reshape(-1, order="F"), lapack_driver="gelsd")[0]
    return z.reshape(left.shape[1], right.shape[0], order="F")


@pytest.mark.parametrize("n", [None, 30, 500])
def test_s2ft_and_full_match_least_squares_on_raw_data(inst, n):
    key = jax.random.key(11)
    if n is None:
        x = lt.linalg.psd_sqrt(inst.sigma_x_in)
        res = (inst.b_in - inst.w_pre) @ np.asarray(x)
        data = None
    else:
        data = sample(inst, n, key)
        x, res = data.x / math.sqrt(n), (data.y - inst.w_pre @ data.x) / math.sqrt(n)
    wx = inst.below(ELL) @ np.asarray(x)
    S = (0, 2, 3)
    us = selection_matrix(S, 4)
    ref_s = us @ _vectorised_min_norm(inst.above(ELL) @ us, wx, res)
    ref_f = _vectorised_min_norm(inst.above(ELL), wx, res)
    got_s = min_norm_s2ft(inst, ELL, S, data=data).delta
    got_f = full_ft(inst, ELL, data=data).delta
    assert np.linalg.norm(got_s - ref_s) <= 1e-10 * np.linalg.norm(ref_s)
    assert np.linalg.norm(got_f - ref_f) <= 1e-10 * np.linalg.norm(ref_f)


def test_lora_closed_form_beats_or_matches_lbfgs(inst):
    """scipy L-BFGS on (U, V) with a vanishing ridge reaches the closed form's risk and product."""
    data = sample(inst, 200, jax.random.key(5))
    r = 2
    fit = min_norm_lora(inst, ELL, r, data=data)
    wb, wl = inst.above(ELL), inst.below(ELL)
    x, res = data.x / math.sqrt(data.n), (data.y - inst.w_pre @ data.x) / math.sqrt(data.n)
    wx = wl @ x
    d, dp = 4, 5

    def f(theta, lam):
        u, v = theta[: d * r].reshape(d, r), theta[d * r :].reshape(dp, r)
        e = res - wb @ u @ v.T @ wx
        g = -2 * wb.T @ e @ wx.T
        val = np.sum(e**2) + lam * (np.sum(u**2) + np.sum(v**2))
        return val, np.concatenate([(g @ v + 2 * lam * u).ravel(), (g.T @ u + 2 * lam * v).ravel()])

    theta = np.random.default_rng(0).standard_normal(d * r + dp * r) * 0.1
    for lam in (1e-4, 1e-7, 1e-10):
        theta = scipy.optimize.minimize(
            f,
            theta,
            args=(lam,),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20000, "gtol": 1e-14, "ftol": 1e-16},
        ).x
    u, v = theta[: d * r].reshape(d, r), theta[d * r :].reshape(dp, r)
    risk_opt = f(theta, 0.0)[0]
    risk_cf = np.sum((res - wb @ fit.delta @ wx) ** 2)
    assert risk_cf <= risk_opt + 1e-12
    assert np.linalg.norm(u @ v.T - fit.delta) <= 1e-4 * np.linalg.norm(fit.delta)
    # balanced factors: ||U||_F^2 + ||V||_F^2 = 2 ||Delta||_*
    nuc = np.sum(np.linalg.svd(fit.delta, compute_uv=False))
    assert np.sum(fit.u**2) + np.sum(fit.v**2) == pytest.approx(2 * nuc, rel=1e-12)


def test_excess_risk_trace_direct_and_monte_carlo(inst):
    fit = min_norm_lora(inst, ELL, 1)
    for k in ("in", "out"):
        tr = excess_risk(inst, fit, k)
        di = excess_risk(inst, fit, k, method="direct")
        assert abs(tr - di) <= tolerance(risk(inst, fit, k), n=12)
        mc, se = excess_risk_mc(inst, fit, k, 40000, jax.random.key(1))
        assert abs(mc - tr) <= 5 * se, (mc, tr, se)
    assert excess_risk(inst, inst.b_in, "in") == 0.0


def test_rademacher_sampling_has_the_covariance(inst):
    d = sample(inst, 20000, jax.random.key(2), distribution="rademacher")
    emp = d.x @ d.x.T / d.n
    assert np.linalg.norm(emp - inst.sigma_x_in) <= 0.05 * np.linalg.norm(inst.sigma_x_in)


def test_population_is_the_limit_of_finite_n(inst):
    pop = min_norm_s2ft(inst, ELL, (0, 1, 2)).delta
    big = min_norm_s2ft(inst, ELL, (0, 1, 2), 100000, key=jax.random.key(0)).delta
    assert np.linalg.norm(big - pop) <= 0.05 * np.linalg.norm(pop)
    m = moments(inst)
    assert m.n is None and np.allclose(m.cross, (inst.b_in - inst.w_pre) @ inst.sigma_x_in)


def test_gd_reaches_min_norm_solutions(inst):
    g = gd_s2ft(inst, ELL, (0, 1, 2), steps=4000)
    assert g.distance[-1] <= max(g.rate_bound, 1e-10)
    gl = gd_lora(inst, ELL, 2, steps=20000, init_scale=1e-4)
    assert gl.distance[-1] < 0.05


def test_channel_selection(inst):
    for strategy in ("random", "weight", "activation", "product", "gradient"):
        S = channel_selector(inst, ELL, 2, strategy)
        assert len(S) == 2 and len(set(S)) == 2 and list(S) == sorted(S)
        if strategy != "random":
            lo = channel_selector(inst, ELL, 2, strategy, largest=False)
            assert not set(S) & set(lo)
    # the gradient score finds the residual's channels in a clean instance
    clean = build_instance(0, DIMS, ELL, residual_rank=2, channels=(1, 3), noise=0.0)
    assert channel_selector(clean, ELL, 2, "gradient", n_calibration=256) == (1, 3)
    with pytest.raises(ValueError, match="unknown strategy"):
        channel_selector(inst, ELL, 2, "magic")


def test_coupled_permutation_and_dense_update(inst):
    ws = inst.weights
    S = (3, 1)
    perm = channel_permutation(4, S)
    assert perm.tolist() == [3, 1, 0, 2]
    x = np.random.default_rng(0).standard_normal((6, 5))

    def out(weights):
        z = x
        for w in weights:
            z = w @ z
        return z

    assert np.allclose(out(permute_coupled(ws, ELL, perm)), out(ws), atol=1e-13)
    v = np.random.default_rng(1).standard_normal((5, 2))
    sparse = list(ws)
    sparse[ELL - 1] = s2ft_sparse_update(ws[ELL - 1], S, v)
    dense = s2ft_dense_update(ws, ELL, S, v)
    assert np.allclose(out(dense), out(sparse), atol=1e-13)
    # only the leading s rows of the permuted W_ell changed
    pw = permute_coupled(ws, ELL, perm)[ELL - 1]
    assert np.allclose(dense[ELL - 1][2:], pw[2:]) and not np.allclose(dense[ELL - 1][:2], pw[:2])
    with pytest.raises(ValueError, match="permutation"):
        permute_coupled(ws, ELL, [0, 0, 1, 2])


def test_lemma_f14_order_counterexample_numbers():
    """r = 2 < rank 3 residual on S = S0 = {0,1,2} (s = 3): LoRA's bias exceeds S2FT's."""
    i = build_instance(0, DIMS, ELL, residual_rank=3, residual_decay=0.5, channels=(0, 1, 2))
    t = lemma_f14(i, ELL, 2, (0, 1, 2))
    assert t["order"].lhs == pytest.approx(0.25**2, rel=1e-10)  # sigma_3(M)^2 = 0.5^4
    assert t["order"].rhs < 1e-25


def test_theorem42_lora_adversarial_shift_gives_zero_risk():
    i = build_instance(0, DIMS, ELL, residual_rank=3, residual_decay=0.5)
    nt = notation(i, ELL)
    tail = (nt.M - low_rank_approx_np(nt.M, 1)) @ nt.A_pinv @ nt.W_below
    j = i.replace(b_out=i.b_in - tail)
    t = theorem_42(j, ELL, 1, (0,), which="lora")
    assert t.lhs < 1e-25 and t.rhs > 0.3


def test_variance_terms_decay(inst):
    small = variance_terms(inst, ELL, 2, (0, 1, 2), 100, key=jax.random.key(0))
    big = variance_terms(inst, ELL, 2, (0, 1, 2), 10000, key=jax.random.key(0))
    assert big["T_var_lora"] < small["T_var_lora"] and big["T_var_s2ft"] < small["T_var_s2ft"]
    for v in (small, big):
        for m in ("lora", "s2ft"):
            assert math.sqrt(v[f"E_{m}"]) <= v[f"T_bias_{m}"] + v[f"T_var_{m}"] + 1e-12
    vb_small = variance_bounds(inst, ELL, 2, (0, 1, 2), 100)
    vb_big = variance_bounds(inst, ELL, 2, (0, 1, 2), 10000)
    for m in ("lora", "s2ft"):
        assert 0 < vb_big[f"bound_{m}"] < vb_small[f"bound_{m}"] < math.inf


# --- bad input ----------------------------------------------------------------------------------
def _ok_parts():
    i = build_instance(0, (3, 2, 3), 1)
    return dict(
        weights=i.weights, b_in=i.b_in, b_out=i.b_out, sigma_x_in=i.sigma_x_in,
        sigma_x_out=i.sigma_x_out, sigma_eps_in=i.sigma_eps_in, sigma_eps_out=i.sigma_eps_out,
    )  # fmt: skip


@pytest.mark.parametrize(
    "change, match",
    [
        ({"weights": (np.ones((2, 3)), np.ones((3, 4)))}, "dimension mismatch"),
        ({"weights": ()}, "non-empty"),
        ({"b_in": np.ones((2, 2))}, "b_in must have shape"),
        ({"sigma_x_in": np.diag([1.0, 1.0, 0.0])}, "singular"),
        ({"sigma_x_out": np.diag([1.0, -1.0, 1.0])}, "positive semi-definite"),
        ({"sigma_eps_in": np.array([[1.0, 2.0, 0], [0, 1.0, 0], [0, 0, 1.0]])}, "symmetric"),
        ({"sigma_eps_out": -np.eye(3)}, "positive semi-definite"),
        ({"b_out": np.full((3, 3), np.nan)}, "NaN"),
    ],
)
def test_instance_rejects_bad_input(change, match):
    parts = _ok_parts()
    parts.update(change)
    with pytest.raises(ValueError, match=match):
        DeepLinearInstance(**parts)


def test_api_rejects_bad_arguments(inst):
    with pytest.raises(ValueError, match="ell"):
        min_norm_lora(inst, 0, 1)
    with pytest.raises(ValueError, match="ell"):
        full_ft(inst, 4)
    with pytest.raises(ValueError, match="r \\(LoRA rank\\)"):
        min_norm_lora(inst, ELL, 5)
    with pytest.raises(ValueError, match="repeated"):
        min_norm_s2ft(inst, ELL, (1, 1))
    with pytest.raises(ValueError, match="out of range"):
        min_norm_s2ft(inst, ELL, (0, 4))
    with pytest.raises(ValueError, match="at least one"):
        min_norm_s2ft(inst, ELL, ())
    with pytest.raises(ValueError, match="s \\(number of channels\\)"):
        channel_selector(inst, ELL, 5)
    with pytest.raises(ValueError, match='k must be "in" or "out"'):
        excess_risk(inst, pretrained(inst, ELL), "test")
    with pytest.raises(ValueError, match="shape"):
        excess_risk(inst, np.ones((2, 2)), "in")
    with pytest.raises(ValueError, match="samples"):
        min_norm_lora(inst, ELL, 1, 10, data=sample(inst, 12))
    with pytest.raises(ValueError, match="S ⊇ S0"):
        lemma_f14(inst, ELL, 1, (0,), (0, 1))
    with pytest.raises(ValueError, match="cannot change the output"):
        zero = inst.replace(weights=(np.zeros((5, 6)), *inst.weights[1:]))
        min_norm_lora(zero, ELL, 1)


# --- figures and README section -------------------------------------------------------------------


def test_notation_dict_access_of_earlier_releases_warns_and_agrees():
    """``notation(...)["M"]`` (the 17-key dict of earlier releases) still works, deprecated."""
    inst = lt.build_instance(0, dims=(5, 4, 3, 5), ell=2, residual_rank=2)
    nt = notation(inst, 2, (0, 1))
    assert len(nt.OLD_KEYS) == 20  # the 17 keys, plus Phi2, P2, U_S when S is given
    for key in sorted(nt.OLD_KEYS):
        with pytest.warns(DeprecationWarning, match=f"Notation.{key}"):
            value = nt[key]
        assert value is getattr(nt, key)
    with pytest.raises(KeyError):
        nt["CW"]  # a new field: attribute access only
