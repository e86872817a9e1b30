"""Property tests of the shared numerics against NumPy/SciPy references.

Hypothesis draws structure (sizes, ranks, log condition numbers) and a seed; arrays are built
from ``jax.random.key(seed)``. Tolerances: ``tolerance(scale, n)`` = 100·n·eps·scale.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import assume, given
from hypothesis import strategies as st

from lowrank_theory import EPS, tolerance
from lowrank_theory.core import linalg

SIZES = st.sampled_from([1, 2, 3, 5, 8, 13])


@st.composite
def spectra(draw):
    m, n = draw(SIZES), draw(SIZES)
    k = min(m, n)
    rank = draw(st.integers(0, k))
    log_cond = draw(st.sampled_from([0.0, 1.0, 3.0, 6.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    s = np.logspace(0, -log_cond, rank) if rank else np.zeros(0)
    a = linalg.random_with_spectrum(jax.random.key(seed), m, n, s)
    return a, np.concatenate([s, np.zeros(k - rank)]), rank


@given(spectra())
def test_random_with_spectrum_has_that_spectrum(data):
    a, s, _ = data
    got = np.asarray(linalg.singular_values(a))
    assert np.max(np.abs(got - s)) <= tolerance(1.0, n=max(a.shape))


@given(spectra(), st.integers(1, 15))
def test_sigma_is_one_indexed_and_zero_beyond(data, k):
    a, s, _ = data
    expected = s[k - 1] if k <= s.shape[0] else 0.0
    assert abs(linalg.sigma(a, k) - expected) <= tolerance(1.0, n=max(a.shape))


@given(spectra(), st.integers(0, 14))
def test_low_rank_approx_is_eckart_young(data, r):
    a, s, _ = data
    lr = np.asarray(linalg.low_rank_approx(a, r))
    k = min(r, s.shape[0])
    assert np.linalg.matrix_rank(lr, tol=tolerance(1.0, n=max(a.shape))) <= k
    tol = tolerance(1.0, n=max(a.shape))
    # spectral error is sigma_{r+1}, Frobenius error is the tail norm
    assert abs(np.linalg.norm(np.asarray(a) - lr, 2) - (s[k] if k < s.shape[0] else 0)) <= tol
    assert abs(np.linalg.norm(np.asarray(a) - lr) - np.linalg.norm(s[k:])) <= tol


@given(spectra())
def test_numerical_rank_matches_construction(data):
    a, _, rank = data
    assert linalg.numerical_rank(a) == rank
    assert linalg.numerical_rank(a) == np.linalg.matrix_rank(np.asarray(a))


def test_rank_gap_reports_clear_and_unclear_decisions():
    a = np.diag([1.0, 0.5, 1e-17])
    assert linalg.numerical_rank(a) == 2
    assert linalg.rank_gap(a) > 1e15
    assert math.isinf(linalg.rank_gap(np.eye(3)))


@given(spectra(), st.sampled_from([1e-8, 1e-4, 1.0]))
def test_rank_on_the_problems_scale(data, size):
    """A matrix computed as a small difference of O(1) terms carries rounding of the terms'
    size: decided on its own sigma_1 that noise counts as rank, on the problem's scale not."""
    a, s, _ = data
    cut = max(a.shape) * EPS  # the default rtol times the problem's scale 1
    assume(not np.any((size * s > cut / 4) & (size * s < 4 * cut)))  # a clear-cut decision
    noise = 0.5 * EPS * np.asarray(linalg.random_with_spectrum(jax.random.key(1), *a.shape, [1.0]))
    b = size * np.asarray(a) + noise
    k = int(np.sum(size * s >= 4 * cut))
    assert linalg.numerical_rank(b, scale=1.0) == k
    assert (
        linalg.rank_from_singular_values(np.linalg.svd(b, compute_uv=False), b.shape, scale=1.0)
        == k
    )
    # orth, projector, pinv and rank_gap take the same scale
    assert np.asarray(linalg.orth(b, scale=1.0)).shape[1] == k
    assert abs(np.trace(np.asarray(linalg.projector(b, scale=1.0))) - k) <= tolerance(
        1.0, n=max(b.shape)
    )
    assert np.linalg.matrix_rank(np.asarray(linalg.pinv(b, scale=1.0)), tol=1.0) <= k
    assert linalg.rank_gap(b, scale=1.0) >= 1.0


def test_rank_threshold_scale():
    s = np.array([3.4e-3, 4.8e-5, 2.7e-17])
    assert linalg.rank_threshold(s, (32, 32)) == pytest.approx(32 * EPS * 3.4e-3)
    assert linalg.rank_threshold(s, (32, 32), scale=1.0) == pytest.approx(32 * EPS)
    assert linalg.rank_from_singular_values(s, (32, 32)) == 3
    assert linalg.rank_from_singular_values(s, (32, 32), scale=1.0) == 2
    with pytest.raises(ValueError, match="scale"):
        linalg.rank_threshold(s, (3, 3), scale=-1.0)


@given(spectra())
def test_pinv_matches_numpy(data):
    a, _, _ = data
    ref = np.linalg.pinv(np.asarray(a), rcond=max(a.shape) * EPS)
    assert np.max(np.abs(np.asarray(linalg.pinv(a)) - ref)) <= tolerance(
        max(1.0, np.abs(ref).max()) * 1e6, n=max(a.shape)
    )


@given(spectra())
def test_projector_is_orthogonal_projection_onto_range(data):
    a, _, rank = data
    p = np.asarray(linalg.projector(a))
    tol = tolerance(1.0, n=max(a.shape))
    assert np.max(np.abs(p @ p - p)) <= tol and np.max(np.abs(p - p.T)) <= tol
    assert abs(np.trace(p) - rank) <= tol
    if rank:
        assert np.max(np.abs(p @ np.asarray(a) - np.asarray(a))) <= tol


@given(st.sampled_from([1, 2, 4, 7]), st.sampled_from([0.0, 2.0, 5.0]), st.integers(0, 2**31 - 1))
def test_psd_sqrt_squares_back(n, log_cond, seed):
    q = linalg.random_orthogonal(jax.random.key(seed), n)
    w = np.logspace(0, -log_cond, n)
    a = (q * jnp.asarray(w)[None, :]) @ q.T
    r = np.asarray(linalg.psd_sqrt(a))
    assert np.max(np.abs(r @ r - np.asarray(a))) <= tolerance(1.0, n=n)
    ri = np.asarray(linalg.psd_sqrt(a, inverse=True))
    assert np.max(np.abs(ri @ np.asarray(a) @ ri - np.eye(n))) <= tolerance(10**log_cond, n=n)


def test_psd_sqrt_rejects_bad_input():
    with pytest.raises(ValueError, match="symmetric"):
        linalg.psd_sqrt(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        linalg.psd_sqrt(np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="singular"):
        linalg.psd_sqrt(np.diag([1.0, 0.0]), inverse=True)
    with pytest.raises(ValueError, match="NaN"):
        linalg.psd_sqrt(np.array([[np.nan]]))


@given(
    st.sampled_from([4, 6, 9]),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2**31 - 1),
)
def test_principal_angles_match_scipy(n, p, q, seed):
    ka, kb = jax.random.split(jax.random.key(seed))
    a = jax.random.normal(ka, (n, p))
    b = jax.random.normal(kb, (n, q))
    ours = np.sort(np.asarray(linalg.principal_angles(a, b)))
    ref = np.sort(scipy.linalg.subspace_angles(np.asarray(a), np.asarray(b)))
    assert np.max(np.abs(ours - ref)) <= 1e-10


def test_principal_angles_small_angles_are_accurate():
    t = 1e-9
    a = np.array([[1.0], [0.0]])
    b = np.array([[np.cos(t)], [np.sin(t)]])
    assert abs(float(linalg.principal_angles(a, b)[0]) - t) <= 1e-20 + 10 * EPS * t


@given(st.sampled_from([1, 3, 8]), st.integers(0, 2**31 - 1))
def test_random_orthogonal_is_orthogonal(n, seed):
    q = np.asarray(linalg.random_orthogonal(jax.random.key(seed), n))
    assert np.max(np.abs(q.T @ q - np.eye(n))) <= tolerance(1.0, n=n)


def test_condition_number():
    assert linalg.condition_number(np.diag([4.0, 2.0])) == 2.0
    assert math.isinf(linalg.condition_number(np.diag([1.0, 0.0])))


@pytest.mark.parametrize(
    ("fn", "arg", "match"),
    [
        (linalg.sigma, (np.eye(2), 0), "k must be >= 1"),
        (linalg.low_rank_approx, (np.eye(2), -1), "r must be >= 0"),
        (linalg.numerical_rank, (np.ones(3),), "2 dimension"),
        (linalg.singular_values, (np.array([[np.inf]]),), "NaN or inf"),
        (linalg.random_with_spectrum, (jax.random.key(0), 2, 2, [1.0, 1.0, 1.0]), "at most"),
        (linalg.random_with_spectrum, (jax.random.key(0), 2, 2, [-1.0]), "non-negative"),
    ],
)
def test_bad_input_is_named(fn, arg, match):
    with pytest.raises(ValueError, match=match):
        fn(*arg)


def test_float64_policy():
    assert jnp.zeros(1).dtype == jnp.float64
    assert linalg.singular_values(np.eye(2, dtype=np.float32)).dtype == jnp.float64
