"""Closed-form checks of the KRR / Theorem 5-7 helpers in ``lowrank_theory.lin.ntk`` that a
mutation run (mutmut over ``lin/ntk.py``) showed untested: the exact values of Theorem 5's two
sides (sum and mean), an equality case, ``theorem7_interval``'s explicit ``c``, ``eta`` with an
indefinite ``S`` and the scale-free positive-definiteness guard."""

import numpy as np
import pytest
import scipy.linalg

from lowrank_theory.lin import ntk


def _kernel(seed: int, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = scipy.linalg.qr(rng.standard_normal((n, n)))[0]
    return (q * np.linspace(0.2, 3.0, n)) @ q.T


@pytest.mark.parametrize("scale", [0.1, 1.0, 7.0])
def test_theorem5_sides_are_the_closed_forms_sum_and_mean(scale):
    """lower/upper = (s||y|| / (s + lambda_max/min))^2 for every ||y|| (a mutant dividing by
    ||y|| agrees only at ||y|| = 1); the mean reading divides both by n, the stated ones not."""
    k, sigma = _kernel(0), 0.5
    y = scale * np.random.default_rng(1).standard_normal(6)
    ev = scipy.linalg.eigvalsh(k)
    ny = scipy.linalg.norm(y)
    lo, hi = (sigma * ny / (sigma + ev[-1])) ** 2, (sigma * ny / (sigma + ev[0])) ** 2
    rb = ntk.risk_bounds(k, y, sigma)
    assert rb["lower"] == pytest.approx(lo, rel=1e-12)
    assert rb["upper"] == pytest.approx(hi, rel=1e-12)
    rm = ntk.risk_bounds(k, y, sigma, reduction="mean")
    assert rm["lower"] == pytest.approx(lo / 6, rel=1e-12)
    assert rm["upper"] == pytest.approx(hi / 6, rel=1e-12)
    assert (rm["lower_stated"], rm["upper_stated"]) == pytest.approx((lo, hi), rel=1e-12)
    assert rm["risk"] == pytest.approx(rb["risk"] / 6, rel=1e-12)


@pytest.mark.parametrize(("which", "side"), [(-1, "lower"), (0, "upper")])
def test_theorem5_is_tight_on_an_extreme_eigenvector(which, side):
    """y along the top (bottom) eigenvector of K makes the lower (upper) side an equality."""
    k, sigma = _kernel(2), 0.3
    u = scipy.linalg.eigh(k)[1][:, which]
    rb = ntk.risk_bounds(k, 3.0 * u, sigma)
    assert rb["risk"] == pytest.approx(rb[side], rel=1e-10)


def test_theorem7_interval_with_an_explicit_c():
    """a = c / (1 - eta)^2 with the c given (c >= kappa), and c below kappa is refused."""
    k = _kernel(3)
    s = 0.1 * _kernel(4)
    y = np.random.default_rng(5).standard_normal(6)
    base = ntk.theorem7_interval(k, s, y, 0.5)
    kap, e = base["kappa"], base["eta"]
    out = ntk.theorem7_interval(k, s, y, 0.5, c=2 * kap)
    assert out["a"] == pytest.approx(2 * kap / (1 - e) ** 2, rel=1e-12)
    assert base["a"] == pytest.approx(kap / (1 - e) ** 2, rel=1e-12)
    with pytest.raises(ValueError, match="must be >= kappa"):
        ntk.theorem7_interval(k, s, y, 0.5, c=0.5 * kap)


def test_eta_takes_an_indefinite_s():
    """eta = ||K^{-1/2} S K^{-1/2}||_2 for any symmetric S (Theorem 6 adds a layer's kernel
    change, which need not be PSD)."""
    assert ntk.eta(np.eye(3), np.diag([1.0, -2.0, 0.0])) == pytest.approx(2.0, rel=1e-14)
    k = np.diag([4.0, 1.0, 0.25])
    assert ntk.eta(k, np.diag([-1.0, 0.5, 0.1])) == pytest.approx(0.5, rel=1e-14)


@pytest.mark.parametrize("c", [1e-6, 1.0, 1e6])
def test_eta_positive_definite_guard_is_scale_free(c):
    """K is refused when lambda_min <= 100 n eps lambda_max, at every scale of K, and a
    well-conditioned (if small) K is accepted; K = 0 is refused."""
    with pytest.raises(ValueError, match="positive definite"):
        ntk.eta(c * np.diag([2e-14, 1e-3, 1.0]), np.eye(3))
    assert np.isfinite(ntk.eta(c * np.diag([1e-10, 1e-3, 1.0]), np.eye(3)))


def test_eta_refuses_the_zero_kernel():
    with pytest.raises(ValueError):
        ntk.eta(np.zeros((2, 2)), np.eye(2))
