"""Deep matrix completion at scale (lowrank_theory.dmf.large_completion): packed entries only,
the compression setup from the sparse gradient, compressed GD, exact errors from factors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.dmf import large_completion as lc
from lowrank_theory.dmf import masked_products as mp
from lowrank_theory.dmf.compression import compress_from_gradient, run_compressed
from lowrank_theory.dmf.factorization import loss_and_gradients

NATIVE = lt.native_status()["available"]
BACKENDS = ["native", "jax"] if NATIVE else ["jax"]


def _haar(key, d):
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, d)))
    return q * jnp.sign(jnp.diag(r))[None, :]


def _dense_mask(problem):
    e = problem.entries
    nnz = e.nnz
    return jnp.zeros(e.shape, bool).at[e.rows[:nnz], e.cols[:nnz]].set(True)


def _dense_reference(problem, comp, eps, depth, *, d):
    """The Section 2.3 recipe on the d x d (padded) full-width problem whose W_l(0) are Haar
    with end-to-end product eps^L O (O = comp.init): (compressed factors, mask, padded truth)."""
    ka, kb = jax.random.split(jax.random.key(99))
    qa, qb = _haar(ka, d), _haar(kb, d)
    o = comp.init.dense()
    assert depth == 3
    ws = (eps * qa, eps * qb, eps * o @ qa.T @ qb.T)
    d1, d2 = problem.shape
    phi = jnp.zeros((d, d)).at[:d1, :d2].set(problem.truth.dense())
    mask = jnp.zeros((d, d), bool).at[:d1, :d2].set(_dense_mask(problem))
    g1 = loss_and_gradients(ws, jnp.where(mask, phi, 0.0), mask)[1][0]
    comp_d = compress_from_gradient(ws, g1, comp.width)
    return dataclasses.replace(comp_d, target=phi), mask, phi


def _proj(v):
    q = jnp.linalg.qr(v)[0]
    return q @ q.T


@pytest.mark.parametrize("shape", [(40, 40), (24, 44), (44, 24)])
def test_sparse_path_equals_the_dense_recipe_and_its_gd(shape):
    """The subspaces from the sparse gradient (block subspace iteration on [E; E^T O]) equal
    compress_from_gradient's on a full-width d x d initialisation with end-to-end eps^3 O, and
    compressed GD on the packed entries (native kernel and pure-JAX path) gives run_compressed's
    iterates; a rectangular problem is the top-left block of the padded square one."""
    d1, d2 = shape
    d, r, eps, depth = max(shape), 2, 0.1, 3
    prob = lc.sparse_completion_instance(jax.random.key(0), shape, r, int(0.4 * d1 * d2))
    comp = lc.compress_sparse(jax.random.key(1), prob, r, depth=depth, eps=eps, tol=1e-14,
                              max_iter=1000)  # fmt: skip
    assert comp.residual <= 1e-13 and comp.width == 2 * r
    ref, mask, phi = _dense_reference(prob, comp, eps, depth, d=d)
    u_ref, v_ref = ref.u[:d1], ref.v[:d2]
    np.testing.assert_allclose(_proj(comp.v), _proj(v_ref), atol=1e-10)
    np.testing.assert_allclose(comp.u @ comp.v.T, u_ref @ v_ref.T, atol=1e-10)
    lr, gamma, steps = lc.lr_for_sampling(shape, prob.n_obs, 0.4), 0.2, 30
    res = run_compressed(ref, lr=lr, steps=steps, gamma=gamma, mask=mask, truth=phi)
    f_ref = (res.weights[-1] @ lt.end_to_end(res.weights[1:-1]) @ res.weights[0])[:d1, :d2]
    for backend in BACKENDS:
        run = lc.run_sparse_compressed(comp, prob, lr=lr, steps=steps, gamma=gamma,
                                       record_every=10, backend=backend)  # fmt: skip
        f = run.u @ lt.end_to_end(run.weights) @ run.v.T
        assert float(jnp.linalg.norm(f - f_ref) / jnp.linalg.norm(f_ref)) < 1e-10, backend
        exact = jnp.linalg.norm(f - prob.truth.dense()) / jnp.linalg.norm(prob.truth.dense())
        assert abs(run.recovery[-1] - float(exact)) <= 1e-12


@pytest.mark.skipif(not NATIVE, reason="native kernel unavailable")
@pytest.mark.parametrize("shape", [(300, 2600), (2300, 200)])
def test_pure_jax_packed_path_gives_the_native_iterates(shape):
    """The accelerator path (gather + scatter-add, forced on CPU) and the native kernel give the
    same GD iterates to <= 1e-12 relative, on problems with several 512-column blocks and
    thread slots, wide and tall; the products also equal the dense formulation."""
    prob = lc.sparse_completion_instance(jax.random.key(3), shape, 3, 40000, block=512)
    comp = lc.compress_sparse(jax.random.key(4), prob, 3, eps=1e-2, tol=1e-9)
    lr = lc.lr_for_sampling(shape, prob.n_obs, 0.4)
    runs = {
        b: lc.run_sparse_compressed(
            comp, prob, lr=lr, steps=60, gamma=0.2, record_every=30, backend=b
        )
        for b in ("native", "jax")
    }
    a, b = runs["native"], runs["jax"]
    for x, y in [(a.u, b.u), (a.v, b.v), *zip(a.weights, b.weights, strict=True)]:
        assert float(jnp.linalg.norm(x - y) / jnp.linalg.norm(x)) <= 1e-12
    np.testing.assert_allclose(a.recovery, b.recovery, rtol=1e-12)
    key = jax.random.split(jax.random.key(5))
    u = jax.random.normal(key[0], (shape[0], 6))
    p = jax.random.normal(key[1], (6, shape[1]))
    dense = mp.masked_lowrank_products(u, p, _dense_mask(prob), prob.truth.dense(), backend="xla")
    for out in (mp.entry_products(u, p, prob.entries, backend="jax"),
                mp.entry_products(u, p, prob.entries, backend="native")):  # fmt: skip
        for x, y in zip(out, dense, strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(y))))


def test_backend_choice():
    assert mp.packed_backend(10, backend="jax") == "jax"
    assert mp.packed_backend(40) == "jax"  # wider than the kernel takes
    assert mp.packed_backend(10) == ("native" if NATIVE else "jax")
    with pytest.raises(ValueError, match="backend"):
        mp.packed_backend(10, backend="gpu")
    with pytest.raises(ValueError, match=r"1 <= k <= 32|unavailable"):
        mp.packed_backend(40, backend="native")


def test_rectangular_completion_converges():
    """A 60 x 140 rank-2 problem, 35 % observed, reaches relative error 1e-6 (error from factors
    equals the dense error)."""
    shape, r = (60, 140), 2
    prob = lc.sparse_completion_instance(jax.random.key(7), shape, r, int(0.35 * 60 * 140))
    comp = lc.compress_sparse(jax.random.key(8), prob, r, eps=1e-2)
    lr = lc.lr_for_sampling(shape, prob.n_obs, 0.4)
    run = lc.run_sparse_compressed(comp, prob, lr=lr, steps=6000, gamma=0.2, tol=1e-6,
                                   record_every=100)  # fmt: skip
    assert run.reached is not None and run.recovery[-1] <= 1e-6
    f = run.u @ lt.end_to_end(run.weights) @ run.v.T
    phi = prob.truth.dense()
    assert abs(float(jnp.linalg.norm(f - phi) / jnp.linalg.norm(phi)) - run.recovery[-1]) < 1e-12


def test_recovery_error_from_factors_has_no_cancellation():
    """At a relative error of ~1e-9 the factor formula matches the dense error to 1e-5 relative
    (squared-norm differences would lose it to rounding at ~1e-8)."""
    truth = lc.low_rank_truth(jax.random.key(0), (70, 50), 3)
    u = jnp.concatenate([truth.left, jnp.zeros((70, 1))], axis=1)
    v = jnp.concatenate([truth.right, jnp.ones((50, 1))], axis=1)
    a = jnp.eye(4).at[0, 0].add(1e-9).at[3, 3].set(0.0)
    err = float(lc.factor_recovery_error(u, a, v, truth))
    dense = jnp.linalg.norm(u @ a @ v.T - truth.dense()) / jnp.linalg.norm(truth.dense())
    assert err == pytest.approx(float(dense), rel=1e-5) and 1e-10 < err < 1e-8


@pytest.mark.parametrize(("shape", "n"), [(30, 500), (3000, 1000), (5000, 2000)])
def test_sample_observed(shape, n):
    """Exactly n distinct in-range coordinates, row-major, deterministic given the key (both the
    direct draw and the rejection rounds used for sparse problems)."""
    rows, cols = lc.sample_observed(jax.random.key(1), (shape, shape), n)
    lin = rows.astype(np.int64) * shape + cols
    assert rows.dtype == np.int32 and lin.size == n and np.all(np.diff(lin) > 0)
    assert rows.min() >= 0 and rows.max() < shape and cols.max() < shape
    again = lc.sample_observed(jax.random.key(1), (shape, shape), n)
    assert np.array_equal(again[0], rows) and np.array_equal(again[1], cols)
    other = lc.sample_observed(jax.random.key(2), (shape, shape), n)
    assert not np.array_equal(other[1], cols)


def test_sampling_is_uniform_in_distribution():
    """Rows and columns of 60000 draws from a 1000 x 3000 grid (rejection rounds): bin counts
    consistent with uniform (chi-squared well within its 1e-6 tail)."""
    rows, cols = lc.sample_observed(jax.random.key(4), (1000, 3000), 60000)
    for x, d in ((rows, 1000), (cols, 3000)):
        counts = np.bincount(x * 20 // d, minlength=20)
        chi2 = float(np.sum((counts - 3000.0) ** 2 / 3000.0))
        assert chi2 < 60.0  # 19 degrees of freedom: P(chi2 > 60) ~ 4e-6


def test_no_dense_array_anywhere():
    """150000 x 100000 (1.5e10 entries, 120 GB dense): instance, setup and GD steps run."""
    shape = (150000, 100000)
    prob = lc.sparse_completion_instance(jax.random.key(0), shape, 2, 300000)
    assert prob.entries.ptr.size <= prob.n_obs + shape[0] + 1
    comp = lc.compress_sparse(jax.random.key(1), prob, 2, max_iter=2)
    run = lc.run_sparse_compressed(comp, prob, lr=1.0, steps=4, record_every=2)
    assert run.u.shape == (shape[0], 4) and run.v.shape == (shape[1], 4)
    assert np.all(np.isfinite(run.recovery))


def test_bad_inputs():
    prob = lc.sparse_completion_instance(jax.random.key(0), (20, 30), 2, 200)
    with pytest.raises(ValueError, match="2r"):
        lc.compress_sparse(jax.random.key(0), prob, 10)
    with pytest.raises(ValueError, match="eps"):
        lc.compress_sparse(jax.random.key(0), prob, 2, eps=0.0)
    with pytest.raises(ValueError, match="method"):
        lc.compress_sparse(jax.random.key(0), prob, 2, method="svd")
    with pytest.raises(ValueError, match="depth"):
        lc.compress_sparse(jax.random.key(0), prob, 2, depth=1)
    comp = lc.compress_sparse(jax.random.key(0), prob, 2)
    with pytest.raises(ValueError, match="lr"):
        lc.run_sparse_compressed(comp, prob, lr=-1.0, steps=5)
    with pytest.raises(ValueError, match="steps"):
        lc.run_sparse_compressed(comp, prob, lr=1.0, steps=0)
    other = lc.sparse_completion_instance(jax.random.key(0), (30, 20), 2, 200)
    with pytest.raises(ValueError, match="comp has factors"):
        lc.run_sparse_compressed(comp, other, lr=1.0, steps=5)
    with pytest.raises(ValueError, match="n_obs"):
        lc.sample_observed(jax.random.key(0), (5, 5), 26)
    with pytest.raises(ValueError, match="shape"):
        lc.sample_observed(jax.random.key(0), (5,), 3)
    with pytest.raises(ValueError, match="rank"):
        lc.low_rank_truth(jax.random.key(0), (5, 8), 6)
    with pytest.raises(ValueError, match="scale"):
        lc.low_rank_truth(jax.random.key(0), (5, 8), 2, scale="big")


def test_pack_entries_checks_and_layout():
    """Any order of coordinates packs to pack_observed's layout (256-column blocks); duplicates,
    out-of-range coordinates, NaN values and bad shapes are refused with named errors."""
    rng = np.random.default_rng(0)
    mask = rng.random((40, 600)) < 0.3
    target = rng.standard_normal((40, 600))
    rows, cols = np.nonzero(mask)
    perm = rng.permutation(rows.size)
    a = mp.pack_observed(mask, target)
    b = mp.pack_entries(rows[perm], cols[perm], target[rows, cols][perm], (40, 600), block=256)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="duplicate"):
        mp.pack_entries([0, 1, 0], [2, 2, 2], [1.0, 2.0, 3.0], (3, 3))
    with pytest.raises(ValueError, match="cols must lie"):
        mp.pack_entries([0], [3], [1.0], (3, 3))
    with pytest.raises(ValueError, match="rows must lie"):
        mp.pack_entries([-1], [0], [1.0], (3, 3))
    with pytest.raises(ValueError, match="NaN"):
        mp.pack_entries([0], [0], [np.nan], (3, 3))
    with pytest.raises(ValueError, match="integers"):
        mp.pack_entries([0.5], [0], [1.0], (3, 3))
    with pytest.raises(ValueError, match="1-D of one length"):
        mp.pack_entries([0, 1], [0], [1.0], (3, 3))
    with pytest.raises(ValueError, match="shape"):
        mp.pack_entries([0], [0], [1.0], (3, 0))
    with pytest.raises(ValueError, match="block"):
        mp.pack_entries([0], [0], [1.0], (3, 3), block=0)
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda r: mp.pack_entries(r, r, r * 1.0, (3, 3)))(jnp.zeros(1, int))
