"""Unit tests of lowrank_theory.lin.ntk: exactness of every NTK path, KRR against scipy, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

import lowrank_theory as lt
import lowrank_theory.lin as lin
from lowrank_theory.lin import linearization, lipschitz, models, ntk
from lowrank_theory.lin.models import (
    MLP,
    LayerSubset,
    LoRALayer,
    layer_masked_ntk,
    mlp_init,
    pretrained_task,
)
from lowrank_theory.lin.ntk import (
    check_kernel,
    eta,
    flat_grad_fn,
    krr_residual,
    krr_risk,
    naive_ntk,
    pad_blocks,
    theorem6_bounds,
    theorem7_interval,
)

P = mlp_init(jax.random.key(0), (5, 7, 6, 1))
X = jax.random.normal(jax.random.key(1), (11, 5))


def _rel(a, b):
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


@pytest.mark.parametrize("method", ["structured", "jacobian", "ntvp"])
def test_ntk_paths_match_naive(method):
    k0 = naive_ntk(MLP(), P, X)
    k = lt.empirical_ntk(MLP(), P, X, method=method, block_size=4)
    assert _rel(k, k0) < 1e-13


def test_ntk_cross_kernel_and_blocks_not_dividing_n():
    x2 = X[:5]
    ks = lt.empirical_ntk(MLP(), P, X, x2)
    for m in ("jacobian", "ntvp"):
        k = lt.empirical_ntk(MLP(), P, X, x2, method=m, block_size=3)
        assert k.shape == (11, 5)
        assert _rel(k, ks) < 1e-13


def test_ntk_against_explicit_jacobian_of_plain_function():
    # a function without structure: generic path; Jacobian by jax.jacrev of the batched model
    def f(p, x):
        return jnp.sin(p["w"] @ x) * p["c"]

    p = {"w": jnp.arange(5.0) / 5, "c": jnp.array(1.5)}
    j = jax.jacrev(lambda q: jax.vmap(lambda x: f(q, x))(X))(p)
    jm = jnp.concatenate([j["c"][:, None], j["w"]], axis=1)
    assert _rel(lt.empirical_ntk(f, p, X), jm @ jm.T) < 1e-13


def test_subset_and_lora_structured_paths():
    sub = LayerSubset(P, (0, 2))
    assert _rel(lt.empirical_ntk(sub, sub.init(), X), naive_ntk(sub, sub.init(), X)) < 1e-13
    lo = LoRALayer(P, 1, 2)
    ab = lo.init(jax.random.key(3), b_scale=1.0)
    assert _rel(lt.empirical_ntk(lo, ab, X), naive_ntk(lo, ab, X)) < 1e-13
    # layer kernels add up to the full kernel (Theorem 6's K + S decomposition)
    parts = sum(
        lt.empirical_ntk(LayerSubset(P, (i,)), LayerSubset(P, (i,)).init(), X) for i in range(3)
    )
    assert _rel(parts, lt.empirical_ntk(MLP(), P, X)) < 1e-13


def test_layer_masked_ntk_is_the_subset_kernel():
    # mask entries weight the layers: 0/1 gives the subset's kernel, all ones the full one
    mask = jnp.array([1.0, 0.0, 1.0])
    sub = LayerSubset(P, (0, 2))
    assert _rel(layer_masked_ntk(P, X, X, mask), naive_ntk(sub, sub.init(), X)) < 1e-13
    assert (
        _rel(layer_masked_ntk(P, X, X[:4], jnp.ones(3)), lt.empirical_ntk(MLP(), P, X, X[:4]))
        < 1e-13
    )


def test_flat_grad_fn_and_pad_blocks():
    theta, _ = ravel_pytree(P)
    g = flat_grad_fn(MLP(), P)
    j = jax.vmap(g, in_axes=(None, 0))(theta, X)
    assert _rel(j @ j.T, naive_ntk(MLP(), P, X)) < 1e-13
    xb = pad_blocks(X, 4)  # 11 rows -> 3 blocks of 4, the last padded with row 0
    assert xb.shape == (3, 4, 5)
    assert jnp.array_equal(xb.reshape(12, 5)[:11], X) and jnp.array_equal(xb[2, 3], X[0])
    with pytest.raises(ValueError, match="scalar"):
        flat_grad_fn(lambda p, x: jnp.ones(2), P)(theta, X[0])


def test_pretrained_task_rejects_unknown_tasks():
    with pytest.raises(ValueError, match="task must be one of"):
        pretrained_task(
            jax.random.key(0), "mnist", hidden=(4,), n_pre=8, n_train=4, n_test=2, pre_steps=1
        )


def test_lin_package_reexports_every_public_name():
    for mod in (linearization, lipschitz, models, ntk):
        for name in mod.__all__:
            assert getattr(lin, name) is getattr(mod, name), (mod.__name__, name)


def _kernel(n=6, seed=0):
    g = np.asarray(jax.random.normal(jax.random.key(seed), (n, n)))
    return g @ g.T + 0.1 * np.eye(n), np.asarray(jax.random.normal(jax.random.key(seed + 1), (n,)))


def test_krr_against_scipy():
    k, y = _kernel()
    a = lt.krr_fit(k, y, 0.3)
    ref = scipy.linalg.solve(k + 0.3 * np.eye(6), y, assume_a="pos")
    assert np.allclose(a, ref, rtol=1e-12, atol=0)
    r = krr_residual(k, y, 0.3)
    assert np.allclose(r, y - k @ ref, rtol=1e-10, atol=1e-12)
    assert krr_risk(k, y, 0.3, reduction="mean") == pytest.approx(float(r @ r) / 6, rel=1e-12)


@pytest.mark.parametrize(("sigma", "n"), [(0.3, 6), (2.5, 4), (1e-3, 9)])
def test_krr_risk_by_an_independent_route(sigma, n):
    """The sum and mean risks against the residual computed from scipy's solve (not from
    ``krr_residual``), and the residual's closed form sigma (K + sigma I)^{-1} y."""
    k, y = _kernel(n, seed=n)
    ref = scipy.linalg.solve(k + sigma * np.eye(n), y, assume_a="pos")
    res = y - k @ ref
    assert np.allclose(krr_residual(k, y, sigma), sigma * ref, rtol=1e-9, atol=1e-12)
    assert krr_risk(k, y, sigma) == pytest.approx(float(res @ res), rel=1e-9)
    assert krr_risk(k, y, sigma, reduction="mean") == pytest.approx(float(res @ res) / n, rel=1e-9)
    with pytest.raises(ValueError, match="reduction"):
        krr_risk(k, y, sigma, reduction="total")


def test_risk_bounds_sandwich_and_kappa():
    k, y = _kernel()
    rb = lt.risk_bounds(k, y, 0.5)
    ev = np.linalg.eigvalsh(k)
    assert rb["lower"] <= rb["risk"] <= rb["upper"]
    assert rb["kappa"] == pytest.approx((ev[-1] + 0.5) / (ev[0] + 0.5), rel=1e-12)
    assert lt.regularized_condition_number(k, 0.5) == pytest.approx(rb["kappa"], rel=1e-12)
    rm = lt.risk_bounds(k, y, 0.5, reduction="mean")
    assert rm["risk"] == pytest.approx(rb["risk"] / 6, rel=1e-12)


def test_eta_and_theorem6_theorem7():
    k, _ = _kernel()
    s = 0.25 * k
    assert eta(k, s) == pytest.approx(0.25, rel=1e-10)
    t6 = theorem6_bounds(k, s)
    assert np.allclose(t6["eig_KS"], t6["upper"], rtol=1e-10)  # tight for S = eta K
    _, y = _kernel()
    r = theorem7_interval(k, 0.1 * k, y, 0.5)
    assert r["lower"] <= r["ratio"] <= r["upper"] and r["eta_ok"]
    rows = lt.layer_selection(k, {"a": 0.1 * k, "b": 0.5 * k}, y, 0.5)
    assert [row["name"] for row in rows] == ["b", "a"]  # larger S -> smaller risk ratio


def test_bad_inputs():
    k, y = _kernel()
    with pytest.raises(ValueError, match="sigma"):
        lt.krr_fit(k, y, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        lt.risk_bounds(k, y, -1.0)
    with pytest.raises(ValueError, match="shape"):
        lt.krr_fit(k, y[:3], 1.0)
    ka = k.copy()
    ka[0, 1] += 1e-3
    with pytest.raises(ValueError, match="not symmetric"):
        lt.risk_bounds(ka, y, 1.0)
    with pytest.raises(ValueError, match="positive semidefinite"):
        check_kernel(-k)
    kn = k.copy()
    kn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lt.krr_fit(kn, y, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        lt.krr_fit(k, np.where(np.arange(6) == 2, np.nan, y), 1.0)
    with pytest.raises(ValueError, match="positive definite"):
        eta(np.diag([1.0, 0.0]), np.eye(2))
    with pytest.raises(ValueError, match="input shape"):
        lt.empirical_ntk(MLP(), P, X, X[:, :3])
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        lt.empirical_ntk(MLP(), P, X[0])
