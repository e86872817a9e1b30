"""Unit, bad-input and cross-check tests of lowrank_theory.lora.relu (seed 000, Cases 2-3)."""

import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import lowrank_theory as lt
from lowrank_theory.lora import theorem5_bound, uniform_partition

ROOT = Path(__file__).resolve().parents[1]


def _net(seed, d, n_layers, scale=1.0):
    ks = jax.random.split(jax.random.key(seed), 2 * n_layers)
    ws = [np.eye(d) + 0.3 * np.asarray(jax.random.normal(k, (d, d))) for k in ks[:n_layers]]
    bs = [0.1 * np.asarray(jax.random.normal(k, (d,))) for k in ks[n_layers:]]
    return ws, bs


def _relu_ref(ws, bs, x):
    z = np.asarray(x, float)
    for w, b in zip(ws, bs, strict=True):
        z = np.maximum(z @ np.asarray(w).T + b, 0.0)
    return z


def _cube(seed, n, d):
    return np.asarray(jax.random.uniform(jax.random.key(seed), (n, d), minval=-1.0, maxval=1.0))


def test_relu_fnn_matches_numpy_reference_single_and_batch():
    ws, bs = _net(0, 5, 3)
    x = _cube(1, 7, 5)
    np.testing.assert_allclose(lt.relu_fnn(ws, bs, x), _relu_ref(ws, bs, x), atol=1e-14)
    np.testing.assert_allclose(lt.relu_fnn(ws, bs, x[0]), _relu_ref(ws, bs, x[:1])[0], atol=1e-14)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_lemma9_construction_identity_and_exactness(n_layers):
    d = 6
    ws, bs = _net(2, d, n_layers)
    wbar, bbar = np.asarray(jax.random.normal(jax.random.key(3), (d, d))), np.ones(d)
    x = _cube(4, 50, d)
    e = wbar - np.linalg.multi_dot([*reversed(ws), np.eye(d)])
    for r in range(1, d + 1):
        c = lt.relu_adapters(ws, bs, wbar, bbar, r, x)
        assert all(np.linalg.matrix_rank(np.asarray(a), tol=1e-9) <= r for a in c.adapters)
        u, s, vt = np.linalg.svd(e)
        k = min(r * n_layers, d)
        eff = wbar - (u[:, k:] * s[k:]) @ vt[k:]
        np.testing.assert_allclose(c(x), _relu_ref([eff], [bbar], x), atol=1e-8)
        if r >= math.ceil(d / n_layers):
            np.testing.assert_allclose(c(x), _relu_ref([wbar], [bbar], x), atol=1e-8)


def test_lemma9_biases_are_the_smallest_that_linearise_the_ball():
    # every ReLU of layers < L is active on the ball, and some input on the sphere makes each
    # pre-activation exactly 0: the offsets are computed from B, not guessed
    d, n_layers, radius = 4, 3, 2.0
    ws, bs = _net(5, d, n_layers)
    wbar = np.asarray(jax.random.normal(jax.random.key(6), (d, d)))
    c = lt.relu_adapters(ws, bs, wbar, np.zeros(d), 1, radius)
    p = np.eye(d)
    off = np.zeros(d)
    for w, b in zip(c.weights[:-1], c.biases[:-1], strict=True):
        p = np.asarray(w) @ p
        off = np.asarray(w) @ off + np.asarray(b)
        worst = -radius * p / np.linalg.norm(p, axis=1, keepdims=True)  # argmin_j on the sphere
        pre = np.einsum("jk,jk->j", p, worst) + off
        np.testing.assert_allclose(pre, 0.0, atol=1e-9 * np.abs(off).max())


def test_inputs_outside_the_bound_are_reported():
    d = 3
    ws, bs = _net(7, d, 2)
    c = lt.relu_adapters(ws, bs, np.eye(d), np.zeros(d), 1, 1.0)
    x = np.array([[0.1, 0.2, 0.3], [2.0, 0.0, 0.0]])
    assert np.asarray(c.outside(x)).tolist() == [False, True]
    with pytest.raises(ValueError, match="outside the ball"):
        c(x)
    with pytest.warns(UserWarning, match="outside the ball"):
        c(x, on_outside="warn")
    assert c(x, on_outside="allow").shape == (2, 3)


def test_lemma9_bad_input():
    d = 3
    ws, bs = _net(8, d, 2)
    wbar, bbar = np.eye(d), np.zeros(d)
    with pytest.raises(ValueError, match="length 2; it must be D = 3"):
        lt.relu_adapters(ws, [bs[0], bs[1][:2]], wbar, bbar, 1, 1.0)
    with pytest.raises(ValueError, match="need 2 bias vectors"):
        lt.relu_adapters(ws, bs[:1], wbar, bbar, 1, 1.0)
    with pytest.raises(ValueError, match="target_b has length"):
        lt.relu_adapters(ws, bs, wbar, np.zeros(4), 1, 1.0)
    with pytest.raises(ValueError, match="rank"):
        lt.relu_adapters(ws, bs, wbar, bbar, 0, 1.0)
    with pytest.raises(ValueError, match="rank"):
        lt.relu_adapters(ws, bs, wbar, bbar, 4, 1.0)
    with pytest.raises(ValueError, match="non-negative radius"):
        lt.relu_adapters(ws, bs, wbar, bbar, 1, -1.0)
    with pytest.raises(ValueError, match="sample of shape"):
        lt.relu_adapters(ws, bs, wbar, bbar, 1, np.ones((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        lt.relu_adapters(ws, bs, wbar * np.nan, bbar, 1, 1.0)
    with pytest.raises(ValueError, match="singular"):
        lt.relu_adapters([np.diag([1.0, 1.0, 0.0]), ws[1]], bs, wbar, bbar, 1, 1.0)


def test_uniform_partition_and_bad_partition():
    assert uniform_partition(4, 2) == [[1, 2], [3, 4]]  # the seed's Example 1
    assert uniform_partition(5, 2) == [[1, 2], [3, 4, 5]]
    assert uniform_partition(3, 3) == [[1], [2], [3]]
    with pytest.raises(ValueError, match="L >= L_bar"):
        uniform_partition(2, 3)
    with pytest.raises(ValueError, match="L >= L_bar"):
        lt.theorem5_bound([np.eye(2)], [np.eye(2)] * 2, [np.zeros(2)] * 2, 1, np.eye(2))


def test_theorem5_bound_by_hand():
    d = 3
    ws, _ = _net(9, d, 4)
    tws = [np.asarray(jax.random.normal(k, (d, d))) for k in jax.random.split(jax.random.key(1), 2)]
    tbs = [np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.0, 0.1])]
    sig = np.diag([1.0, 2.0, 3.0])
    t = theorem5_bound(ws, tws, tbs, 1, sig)
    m = 2
    e = [
        scipy.linalg.svdvals(tws[0] - ws[1] @ ws[0])[m],
        scipy.linalg.svdvals(tws[1] - ws[3] @ ws[2])[m],
    ]
    np.testing.assert_allclose(t.e, e, rtol=1e-12)
    f = [np.linalg.norm(w) for w in tws]
    b = [np.linalg.norm(v) for v in tbs]
    alpha = max(f[0] + e[0], f[1] + e[1])
    rf, rt = math.sqrt(np.linalg.norm(sig)), math.sqrt(np.trace(sig))
    # as written: i=1: rf f1 + b1 ; i=2: rf f1 f2 + (prod_{k=2}^{1} = 1) b1 + b2
    beta = max(rf * f[0] + b[0], rf * f[0] * f[1] + b[0] + b[1], rf)
    # corrected: i=0: rt ; i=1: rt f1 + b1
    beta_c = max(rt, rt * f[0] + b[0])
    assert t.alpha == pytest.approx(alpha) and t.beta == pytest.approx(beta)
    assert t.beta_corrected == pytest.approx(beta_c)
    assert t.bound == pytest.approx(beta * (alpha * e[0] + e[1]))


def test_theorem5_as_written_fails_on_a_small_analytic_instance():
    # L = Lbar = 1, W_bar = 0, b_bar = 0, frozen W_1 = diag(1, .99, .98, .97), x = 2 e_J, J uniform:
    # f = ReLU(diag(0, .99, .98, .97) x), E||f - fbar|| = (1.98+1.96+1.94)/4 = 1.47 while the
    # seed's bound is sqrt(||I||_F) sigma_2(E) = sqrt(2) * .99 = 1.40; tr-corrected: 2 * .99
    w = np.diag([1.0, 0.99, 0.98, 0.97])
    x = 2.0 * np.eye(4)
    c = lt.theorem5_construction([w], [np.zeros(4)], [np.zeros((4, 4))], [np.zeros(4)], 1, x)
    lhs = float(np.mean(np.linalg.norm(np.asarray(c(x)), axis=1)))
    t = theorem5_bound([w], [np.zeros((4, 4))], [np.zeros(4)], 1, x.T @ x / 4)
    assert lhs == pytest.approx(1.47)
    assert t.bound == pytest.approx(math.sqrt(2) * 0.99) and lhs > t.bound
    assert t.bound_corrected == pytest.approx(2 * 0.99) and lhs <= t.bound_corrected


def test_lemma9_mse_as_written_fails_and_trace_version_is_tight():
    # L = 1, W_1 = I, E = W_bar - I = -diag(1, s, s): Sigma = I on x = sqrt(3) e_J; active biases
    d, s = 3, 0.5
    wbar = np.diag([0.0, 1 - s, 1 - s])
    x = math.sqrt(3) * np.eye(d)
    bbar = 10 * np.ones(d)
    c = lt.relu_adapters([np.eye(d)], [np.zeros(d)], wbar, bbar, 1, x)
    lhs = float(np.mean(np.sum((np.asarray(c(x)) - _relu_ref([wbar], [bbar], x)) ** 2, axis=1)))
    sig = x.T @ x / d
    assert lhs == pytest.approx(2 * s**2)  # (E - E')x = -s x on coordinates 2, 3
    assert lhs > np.linalg.norm(sig) * s**2  # sqrt(3) s^2: the seed's bound fails
    assert lhs <= np.trace(sig) * s**2  # 3 s^2


def test_theorem5_construction_exact_when_rm_covers_d_and_covers_target_intermediates():
    d = 4
    ws, bs = _net(10, d, 4)
    tws = [np.asarray(jax.random.normal(k, (d, d))) for k in jax.random.split(jax.random.key(2), 2)]
    tbs = [np.ones(d), -np.ones(d)]
    x = _cube(11, 40, d)
    c = lt.theorem5_construction(ws, bs, tws, tbs, 2, x)  # R M = 4 = D: every block exact
    np.testing.assert_allclose(c(x), _relu_ref(tws, tbs, x), atol=1e-7)
    zbar1 = _relu_ref(tws[:1], tbs[:1], x)
    assert c.block_bounds[1] >= np.linalg.norm(zbar1, axis=1).max()


def test_train_lora_respects_rank_and_decreases_loss():
    d = 4
    ws, bs = _net(12, d, 2)
    tws, tbs = [np.asarray(jax.random.normal(jax.random.key(13), (d, d)))], [np.ones(d)]
    x = _cube(14, 32, d)
    y = lt.relu_fnn(tws, tbs, x)
    out = lt.train_lora(ws, bs, x, y, 1, jax.random.key(0), seeds=3, steps=60)
    assert out["adapters"].shape == (3, 2, d, d) and out["curve"].shape == (3, 60)
    assert bool(jnp.all(out["curve"][:, -1] < out["curve"][:, 0]))
    for dw in out["adapters"].reshape(-1, d, d):
        assert np.linalg.matrix_rank(np.asarray(dw), tol=1e-10) <= 1
    assert not np.allclose(out["loss"][0], out["loss"][1])  # seeds differ
    fixed = lt.train_lora(ws, bs, x, y, 1, jax.random.key(0), seeds=1, steps=5, tune_biases=False)
    np.testing.assert_array_equal(fixed["biases"][0], np.stack(bs))
    with pytest.raises(ValueError, match="x and y"):
        lt.train_lora(ws, bs, x, y[:, :2], 1, jax.random.key(0))


def _run_script(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    env.pop("FULL", None)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / name),
            "--quick",
            "--out",
            str(tmp_path),
            "--no-cache",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
