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
    sec42_gradients,
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


def test_sec42_gradient_routes_agree_but_are_independent(inst):
    """The Section 4.2 gradient by autodiff in V, the seed's closed form, central differences
    and the mixed-basis lstsq agree to rounding, yet not bit for bit (independent routes)."""
    S = (3, 1)
    v = 0.1 * np.random.default_rng(2).standard_normal((5, 2))
    data = sample(inst, 16, jax.random.key(5))
    g = sec42_gradients(inst, ELL, S, v, data, rotation_seed=1)
    gv = g["grad_v"]
    assert gv.shape == (5, 2) and np.linalg.norm(gv) > 1e-3
    for k in ("closed_form", "finite_diff", "lstsq"):
        err = np.linalg.norm(gv - g[k])
        assert 0 < err <= 1e-11 * np.linalg.norm(gv), (k, err)
    # the dense-W gradient restricted to the rows S, in the order of S
    assert np.allclose(g["projected"], g["grad_w"][[3, 1], :].T, rtol=0, atol=0)
    with pytest.raises(ValueError, match="shape"):
        sec42_gradients(inst, ELL, S, v.T, data)


@pytest.mark.parametrize(
    "target, bug",
    [
        # a dropped factor 2 in the back-propagated error of the closed form
        ("_seed_gradient", lambda f: lambda *a: 0.5 * f(*a)),
        # the risk summed instead of averaged over the n samples (autodiff route)
        ("_risk_v_jax", lambda f: lambda *a: a[3].shape[1] * f(*a)),
        # the update scattered into the wrong rows (S shifted by one channel)
        ("_risk_v_jax", lambda f: lambda *a: f(*a[:5], (a[5] + 1) % 4, a[6])),
    ],
    ids=["closed-form-factor-2", "risk-sum-not-mean", "rows-off-by-one"],
)
def test_sec42_gradient_claim_catches_planted_errors(monkeypatch, target, bug):
    from lowrank_theory.claims import get
    from lowrank_theory.s2ft import dynamics

    claim = get("s2ft.sec42.gradient")
    p = _sec42_params()
    assert claim.run(p).holds
    monkeypatch.setattr(dynamics, target, bug(getattr(dynamics, target)))
    assert not claim.run(p).holds


def _sec42_params():
    return {
        "shape": "funnel", "r": 2, "s": 3, "residual_rank": 2, "decay": 1.0, "weight_cond": 3.0,
        "x_cond": 1.0, "delta": 0.0, "label_shift": 1.0, "covariate": 1.0, "n": None, "seed": 7,
    }  # fmt: skip


def test_fits_use_the_sample_they_are_given_and_say_what_they_are(inst):
    """n/key, data and a precomputed nt give the same sample fit (not the population one), and
    every fit labels itself (method, layer, n, channels, factors). Kills the mutmut survivors
    that dropped ``n``/``key``/``nt`` or a field of the returned :class:`FineTuned`."""
    S, n, k = (0, 2), 40, jax.random.key(11)
    data = sample(inst, n, k)
    fits = {
        "lora": (min_norm_lora, (2,), None),
        "s2ft": (min_norm_s2ft, (S,), S),
        "full": (full_ft, (), None),
    }
    for method, (fit, args, chans) in fits.items():
        nt = notation(inst, ELL, chans, data=data)
        by_n = fit(inst, ELL, *args, n, key=k)
        by_data = fit(inst, ELL, *args, data=data)
        by_nt = fit(inst, ELL, *args, nt=nt)
        pop = fit(inst, ELL, *args)
        assert pop.n is None and not np.allclose(by_n.delta, pop.delta, atol=1e-6), method
        for f in (by_n, by_data, by_nt):
            assert np.allclose(f.delta, by_data.delta, rtol=0, atol=1e-12), method
            assert (f.method, f.ell, f.n, f.channels) == (method, ELL, n, chans), method
            assert np.allclose(f.u @ f.v.T, f.delta, atol=1e-12), method
            e2e = inst.w_pre + inst.above(ELL) @ f.delta @ inst.below(ELL)
            assert np.allclose(f.end_to_end, e2e, atol=1e-12), method
        if method == "lora":
            assert by_n.u.shape == (DIMS[ELL], 2) and by_n.v.shape == (DIMS[ELL - 1], 2)
        if method == "s2ft":
            assert np.array_equal(by_n.u, selection_matrix(S, DIMS[ELL]))


def test_lora_rank_validation_and_full_rank_edge():
    """r is checked against min(d_ell, d_{ell-1}) of the layer; r = rank M gives full FT."""
    i = build_instance(0, (5, 6, 4), 2, residual_rank=4, channels=(0, 1, 2, 3))
    assert np.linalg.svd(notation(i, 2).M, compute_uv=False)[-1] > 0.1  # rank M = 4 = s.size
    full = full_ft(i, 2).delta
    assert np.allclose(min_norm_lora(i, 2, 4).delta, full, atol=1e-12)  # r = s.size
    three = min_norm_lora(i, 2, 3)  # r = s.size - 1: the eigengap test reads s[r - 1], s[r]
    assert three.u.shape == (4, 3) and np.linalg.norm(three.delta - full) > 0.1
    # a numerically tied lambda_1 = lambda_2 (relative gap ~1e-14, inside the rank rule's
    # 1000 max(m, n) eps) has no unique rank-1 minimiser; the next gap is clear
    tied = build_instance(0, (5, 6, 4), 2, residual_rank=3, residual_decay=1 - 1e-14,
                          channels=(0, 1, 2))  # fmt: skip
    with pytest.raises(ValueError, match="not unique"):
        min_norm_lora(tied, 2, 1)
    assert min_norm_lora(tied, 2, 2).u.shape == (4, 2)
    other = build_instance(1, DIMS, ELL, residual_rank=2, channels=(0, 1))
    for ell, r in ((ELL, 0), (3, 5)):  # layer 3: min(d_3, d_2) = min(6, 4) = 4 < d_1 = 5
        with pytest.raises(ValueError, match="LoRA rank"):
            min_norm_lora(other, ell, r)


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
