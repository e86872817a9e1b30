"""Lemma 1 (seed 000, Case 1): construction, optimal error, minimal rank, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.claims.lora.linear import build_lemma1
from lowrank_theory.lora import (
    adapter_rank,
    lemma1_construction,
    problem_scale,
    train_linear_lora,
)


def _instance(d, n_layers, seed=0, rank_e=None, e_scale=2.0, spectrum="decaying"):
    p = {
        "D": d,
        "L": n_layers,
        "R": 1,
        "rank_e": d if rank_e is None else rank_e,
        "spectrum": spectrum,
        "log10_cond": 0.5,
        "e_scale": e_scale,
        "seed": seed,
    }
    inst = build_lemma1(p)
    return inst["frozen"], inst["target"]


@pytest.mark.parametrize(("seed", "spectrum"), [(0, "flat"), (1, "flat"), (2, "decaying")])
def test_construction_error_equals_sigma_to_1e9_at_d64_l4(seed, spectrum):
    """Issue 2's acceptance figure: relative 1e-9 on random instances up to D = 64, L = 4.

    Relative to sigma_{RL+1}(E) itself for a flat spectrum (sigma is O(|E|)); relative to |E|_2
    for a decaying one, where sigma_{RL+1} falls to 1e-11 and rounding of size eps*|E| dominates.
    """
    frozen, target = _instance(64, 4, seed, spectrum=spectrum, rank_e=63)
    e_norm = float(jnp.linalg.norm(target - lt.lora_product(frozen, [0 * w for w in frozen]), 2))
    for r in (1, 2, 5, 11, 15):
        err = float(
            jnp.linalg.norm(
                lt.lora_product(frozen, lt.linear_adapters(frozen, target, r)) - target, 2
            )
        )
        sig = lt.linear_min_error(frozen, target, r)
        assert sig > 0
        ref = sig if spectrum == "flat" else e_norm
        assert abs(err - sig) <= 1e-9 * ref, (r, err, sig)


def test_exact_at_threshold_and_not_below():
    frozen, target = _instance(12, 3, seed=4, rank_e=7)
    r_min = lt.min_lora_rank(frozen, target)
    assert r_min == math.ceil(7 / 3)
    scale = float(jnp.linalg.norm(target, 2))
    at = lt.lora_product(frozen, lt.linear_adapters(frozen, target, r_min)) - target
    assert float(jnp.linalg.norm(at, 2)) <= 1e-12 * scale
    below = lt.lora_product(frozen, lt.linear_adapters(frozen, target, r_min - 1)) - target
    assert float(jnp.linalg.norm(below, 2)) >= 1e-3 * scale  # sigma_{(R-1)L+1}(E) > 0


def test_adapters_have_rank_at_most_r_and_seed_order():
    frozen, target = _instance(8, 3, seed=5)
    c = lemma1_construction(frozen, target, 2)
    assert len(c.adapters) == 3
    for dw in c.adapters:
        assert lt.linalg.numerical_rank(dw) <= 2
    # seed order: W_1 acts first, so the product is W_3 W_2 W_1
    np.testing.assert_allclose(
        np.asarray(lt.lora_product(frozen, [jnp.zeros((8, 8))] * 3)),
        np.asarray(frozen[2] @ frozen[1] @ frozen[0]),
        rtol=1e-13,
        atol=1e-13,
    )


def test_numpy_and_jax_inputs_agree():
    frozen, target = _instance(6, 2, seed=6)
    a = lt.linear_adapters([np.asarray(w) for w in frozen], np.asarray(target), 2)
    b = lt.linear_adapters(frozen, target, 2)
    for x, y in zip(a, b, strict=True):
        assert isinstance(x, jax.Array)
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-14)


def test_zero_error_needs_no_rank():
    w = [np.eye(3) * 2.0]
    assert lt.min_lora_rank(w, np.eye(3) * 2.0) == 0
    assert lt.linear_min_error(w, np.eye(3) * 2.0, 1) == 0.0


def test_gradient_trained_lora_never_beats_sigma():
    frozen, target = _instance(6, 2, seed=7)
    for r in (1, 2):
        trained = train_linear_lora(frozen, target, r, jax.random.key(3), starts=3, steps=600)
        for dw in trained:
            assert lt.linalg.numerical_rank(dw) <= r
        err = float(jnp.linalg.norm(lt.lora_product(frozen, trained) - target, 2))
        sig = lt.linear_min_error(frozen, target, r)
        assert err >= sig * (1 - 1e-12)
        assert err <= 1.5 * sig  # and it gets reasonably close: the bound is attainable


@pytest.mark.parametrize(
    ("frozen", "target", "rank", "match"),
    [
        ([np.ones((2, 3))], np.eye(2), 1, "square"),
        ([np.eye(2), np.eye(3)], np.eye(2), 1, "every frozen weight"),
        ([np.eye(2)], np.eye(3), 1, "target has shape"),
        ([np.eye(2)], np.eye(2), 0, "must be >= 1"),
        ([np.eye(2)], np.eye(2), 3, "must be <= 2"),
        ([np.eye(2)], np.eye(2), 1.5, "integer"),
        ([np.array([[np.nan, 0], [0, 1]])], np.eye(2), 1, "NaN"),
        ([], np.eye(2), 1, "non-empty"),
        ([np.diag([1.0, 0.0])], np.eye(2), 1, "frozen weight W_1 is singular"),
        # prod W + LR_1(E) singular: W = I, E = -e1 e1^T + 0.5 e2 e2^T, R = 1, L = 2 -> r <= 1
        ([np.eye(2), np.eye(2)], np.diag([0.0, 1.5]), 1, r"LR_1\(E\) is singular"),
    ],
)
def test_bad_input_names_the_problem(frozen, target, rank, match):
    with pytest.raises(ValueError, match=match):
        lt.linear_adapters(frozen, target, rank)


# --- issue 16: rank decisions on the problem's scale, not on a computed matrix's own sigma_1 ---
ISSUE16_D32 = {
    "D": 32,
    "L": 2,
    "R": 14,
    "rank_e": 27,
    "spectrum": "decaying",
    "log10_cond": 0.0,
    "e_scale": 0.5,
    "seed": 0,
}


def test_adapter_rank_on_the_layers_scale_d32():
    """dW_2 has 13 genuine singular values (down to ~5e-5) and rounding noise ~3e-17 that its
    own sigma_1 (3.4e-3) let through the cut-off: rank 14 or 15 > R = 14 was reported."""
    inst = build_lemma1(ISSUE16_D32)
    c = inst["construction"]
    assert c.rank_e == 27
    assert c.adapter_ranks == (14, 13)
    s = np.linalg.svd(np.asarray(c.adapters[1]), compute_uv=False)
    assert s[12] > 1e-5 and s[13] < 1e-15  # the gap the problem's scale sees
    # the rule on the adapter's own sigma_1 (3.4e-3) puts the cut-off (2.4e-17) in the noise
    assert lt.linalg.rank_threshold(s, (32, 32)) < 1e-16
    assert adapter_rank(inst["frozen"][1], c.adapters[1]) == 13  # on the layer's scale (norm 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rank_e_on_the_problems_scale_d2_l4(seed):
    """D = 2, L = 4, kappa(W_l) = 10: E = 5e-5 * (rank 1) next to a product of norm ~1. On E's own
    sigma_1 its rounding (~1e-16) counted as a second direction, and the construction built an
    adapter of pure noise (2.2e-16, 7.4e-20) that counted as rank 2 > R = 1."""
    p = {**ISSUE16_D32, "D": 2, "L": 4, "R": 1, "rank_e": 1, "spectrum": "flat"}
    p["log10_cond"] = 1.0
    inst = build_lemma1({**p, "seed": seed})
    c = inst["construction"]
    assert lt.linalg.numerical_rank(c.e) == 2  # E's own sigma_1: the noise counts
    assert c.rank_e == 1 and lt.min_lora_rank(inst["frozen"], inst["target"]) == 1
    assert c.adapter_ranks == (1, 0, 0, 0)
    assert all(float(jnp.max(jnp.abs(dw))) == 0.0 for dw in c.adapters[1:])


def test_problem_scale_and_adapter_rank_refuse_nan():
    frozen, target = _instance(4, 2, seed=7)
    assert problem_scale(frozen, target) == pytest.approx(
        float(jnp.linalg.norm(target, 2)) + math.prod(float(jnp.linalg.norm(w, 2)) for w in frozen)
    )
    with pytest.raises(ValueError, match="NaN"):
        adapter_rank(frozen[0], np.full((4, 4), np.nan))
