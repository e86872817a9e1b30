"""Unit tests of lowrank_theory.lin.linearization / lipschitz, figure smoke runs, README doctest."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import lowrank_theory as lt
from lowrank_theory.lin.linearization import (
    flow_loss_derivative,
    theorem2_bound,
    theorem4_threshold,
    theorem4_time,
)
from lowrank_theory.lin.lipschitz import sampled_lipschitz, two_layer_lipschitz
from lowrank_theory.lin.models import MLP, mlp_init

ROOT = pathlib.Path(__file__).resolve().parents[1]
P = mlp_init(jax.random.key(0), (3, 6, 1))
X = jax.random.normal(jax.random.key(1), (5, 3))
Y = jax.random.normal(jax.random.key(2), (5,))


def test_linearize_is_first_order_taylor():
    fbar = lt.linearize(MLP(), P)
    d = jax.tree.map(lambda a: 1e-3 * jnp.ones_like(a), P)
    q = jax.tree.map(lambda a, b: a + b, P, d)
    x = X[0]
    lin = fbar(q, x)
    exact = MLP()(q, x)
    g = ravel_pytree(jax.grad(MLP())(P, x))[0]
    assert float(lin) == pytest.approx(float(MLP()(P, x) + g @ ravel_pytree(d)[0]), rel=1e-13)
    assert abs(float(lin - exact)) < 1e-4  # second-order remainder


def test_finetune_matches_python_loop_and_records():
    tr = lt.regularized_finetune(MLP(), P, X, Y, lam=2.0, lr=1e-2, steps=5)
    th0, unravel = ravel_pytree(P)
    th = th0
    for _ in range(5):
        g = jax.grad(lambda t: jnp.sum((jax.vmap(lambda x: MLP()(unravel(t), x))(X) - Y) ** 2))(th)
        th = th0 + (1 - 2.0 * 1e-2) * (th - 1e-2 * g - th0)  # Lemma 3 split update
    assert np.allclose(ravel_pytree(tr.params)[0], th, rtol=1e-12, atol=1e-14)
    assert tr.loss.shape == (6,) and tr.dist[0] == 0 and tr.gap[0] == 0
    assert float(tr.dist[-1]) == pytest.approx(float(jnp.linalg.norm(th - th0)), rel=1e-12)


def test_linearized_finetune_converges_to_krr():
    # regularised fine-tuning of the linearised model (plain GD) -> KRR with sigma = lam / 2
    lam = 1.0
    tr = lt.regularized_finetune(MLP(), P, X, Y, lam=lam, lr=2e-2, steps=3000, update="joint")
    k = np.asarray(lt.empirical_ntk(MLP(), P, X))
    f0 = np.asarray(jax.vmap(lambda x: MLP()(P, x))(X))
    pred = f0 + k @ np.asarray(lt.krr_fit((k + k.T) / 2, np.asarray(Y) - f0, lam / 2))
    assert np.allclose(tr.lin_pred, pred, atol=1e-8)


def test_selective_scheme_switches_and_flow_is_monotone():
    tr = lt.regularized_finetune(MLP(), P, X, Y, lam=1.0, lr=1e-3, steps=200, selective=True)
    assert set(np.unique(np.asarray(tr.lam))) <= {0.0, 1.0}
    fl = lt.gradient_flow(MLP(), P, X, Y, lam=1.0, t_end=1.0, n_steps=100, selective=True)
    assert np.all(np.diff(np.asarray(fl.loss)) <= 1e-12)  # Theorem 1
    d, _s = flow_loss_derivative(MLP(), P, fl.params, X, Y, lam_t=0.0)
    assert d <= 0


def test_theorem2_bound_piecewise_integral():
    t = np.linspace(0, 2, 201)
    lam = np.full(201, 0.5)
    b = theorem2_bound(1.0, 1.0, t, lam)
    assert np.allclose(b, 2 * (1 - np.exp(-0.5 * t)) / 0.5, rtol=1e-12)
    assert theorem2_bound(1.0, 1.0, t, 0 * lam)[-1] == pytest.approx(4.0)
    lo = theorem4_threshold(1.0, 2.0, 0.5)
    assert lo == 8.0 and theorem4_time(10.0, lo) == np.inf
    assert theorem4_time(4.0, lo) == pytest.approx(np.log(2) / 4)


def test_certified_lipschitz_dominates_samples():
    for r in (0.1, 1.0):
        c = two_layer_lipschitz(P, X, r)
        s = sampled_lipschitz(MLP(), P, X, r, jax.random.key(3), n_samples=32)
        assert c.certified and not s.certified
        assert s.lip_f <= c.lip_f and s.lip_grad <= c.lip_grad


def test_bad_inputs():
    with pytest.raises(ValueError, match="lam"):
        lt.regularized_finetune(MLP(), P, X, Y, lam=-1.0, lr=1e-2, steps=3)
    with pytest.raises(ValueError, match="y must have shape"):
        lt.regularized_finetune(MLP(), P, X, Y[:3], lam=1.0, lr=1e-2, steps=3)
    with pytest.raises(ValueError, match="NaN"):
        lt.regularized_finetune(MLP(), P, X, Y.at[0].set(jnp.nan), lam=1.0, lr=1e-2, steps=3)
    with pytest.raises(ValueError, match="lr"):
        lt.regularized_finetune(MLP(), P, X, Y, lam=1.0, lr=0.0, steps=3)
    with pytest.raises(ValueError, match="two_layer"):
        two_layer_lipschitz(mlp_init(jax.random.key(0), (3, 4, 4, 1)), X, 1.0)
