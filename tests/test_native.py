"""The masked low-rank products: native CPU kernel vs the dense formulation, and GD through it."""

import dataclasses
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lowrank_theory as lt
from lowrank_theory.dmf import factorization
from lowrank_theory.dmf import masked_products as mp
from lowrank_theory.dmf import native_kernel as nk
from lowrank_theory.dmf.factorization import factorization_loss, gd_step, loss_and_gradients

HAVE_CXX = nk.find_compiler() is not None
NATIVE_OFF = nk.native_disabled()


def _problem(seed, m, n, k, frac):
    ks = jax.random.split(jax.random.key(seed), 4)
    u = jax.random.normal(ks[0], (m, k))
    p = jax.random.normal(ks[1], (k, n))
    mask = jax.random.uniform(ks[2], (m, n)) < frac
    target = jax.random.normal(ks[3], (m, n))
    return u, p, mask, target


def _numpy_reference(u, p, mask, target):
    u, p, m, t = (np.asarray(x, dtype=np.float64) for x in (u, p, mask, target))
    e = np.where(m > 0, u @ p - t, 0.0)
    return 0.5 * np.sum(e * e), e @ p.T, u.T @ e


def _close(a, b, rtol=1e-12):
    """Agreement to rounding: |a - b| <= rtol * (scale of the products) elementwise-max."""
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        scale = max(np.max(np.abs(y)), 1.0)
        np.testing.assert_allclose(x, y, rtol=0, atol=rtol * scale)


@pytest.fixture(autouse=True)
def _force_native_path(monkeypatch):
    """The tests here check the paths themselves, so "auto" takes the kernel whatever this
    host's timing decided (LOWRANK_THEORY_NATIVE=1); test_calibration_* unset it."""
    if not NATIVE_OFF:
        monkeypatch.setenv("LOWRANK_THEORY_NATIVE", "1")


def test_native_kernel_builds_where_a_compiler_exists():
    """If this machine has a C++ compiler the kernel must build (no silent fallback in CI)."""
    status = lt.native_status()
    if NATIVE_OFF:
        assert not status["available"] and "LOWRANK_THEORY_NATIVE" in status["reason"]
    elif HAVE_CXX:
        assert status["available"], status["reason"]
    else:
        assert not status["available"] and "compiler" in status["reason"]


needs_native = pytest.mark.skipif(
    not lt.native_status()["available"], reason=f"native kernel: {lt.native_status()['reason']}"
)


@needs_native
@given(
    seed=st.integers(0, 2**16),
    m=st.integers(1, 70),
    n=st.integers(1, 70),
    k=st.integers(1, 32),
    frac=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
)
def test_native_equals_dense_formulation(seed, m, n, k, frac):
    """loss, E P^T, U^T E agree with the dense formulation, from the mask-scanning handler and
    from entries packed once (pack_observed) (edge cases: empty mask, full mask, widths not a
    multiple of 4, n not a multiple of 8, one row/column, rows with fewer than four entries)."""
    u, p, mask, target = _problem(seed, m, n, k, frac)
    dense = mp.masked_lowrank_products(u, p, mask, target, backend="xla")
    native = jax.jit(lambda *a: mp.masked_lowrank_products(*a, backend="native"))(
        u, p, mask, target
    )
    _close(native, dense)
    packed = mp.pack_observed(mask, target)
    assert packed.nnz == int(mask.sum()) and packed.shape == (m, n)
    _close(jax.jit(nk.native_packed_products)(u, p, packed), dense)


@needs_native
@pytest.mark.parametrize(
    ("m", "n", "k", "threads"),
    [(300, 600, 13, 3), (257, 777, 32, 2), (130, 513, 1, 2), (1000, 300, 10, 16)],
)
def test_native_threads_and_column_blocks(m, n, k, threads):
    """Several threads (private H buffers, partial row ranges) and several 256-column blocks
    (n > 256), checked against NumPy; repeated calls give identical bits."""
    u, p, mask, target = _problem(7, m, n, k, 0.25)
    got = mp.masked_lowrank_products(u, p, mask, target, backend="native", threads=threads)
    _close(got, _numpy_reference(u, p, mask, target))
    again = mp.masked_lowrank_products(u, p, mask, target, backend="native", threads=threads)
    assert all(bool(jnp.all(x == y)) for x, y in zip(got, again, strict=True))


@needs_native
def test_native_ignores_unobserved_target_entries_and_vmaps():
    u, p, mask, target = _problem(0, 200, 150, 10, 0.2)
    poisoned = jnp.where(mask, target, jnp.nan)  # unobserved entries are never read
    out = mp.masked_lowrank_products(u, p, mask, poisoned, backend="native")
    _close(out, _numpy_reference(u, p, mask, target))
    # vmap: "native" loops the kernel over the batch; "auto" takes the batched dense
    # formulation (its custom_vmap rule), also with unbatched arguments
    batch = [_problem(s, 90, 80, 6, 0.3) for s in range(3)]
    stacked = [jnp.stack(x) for x in zip(*batch, strict=True)]
    native = jax.jit(jax.vmap(partial(mp.masked_lowrank_products, backend="native")))
    auto = jax.jit(jax.vmap(mp.masked_lowrank_products))
    assert "lowrank_theory_masked_lowrank" in native.lower(*stacked).as_text()
    assert "lowrank_theory_masked_lowrank" not in auto.lower(*stacked).as_text()
    for fn in (native, auto):
        got = fn(*stacked)
        for i, b in enumerate(batch):
            _close([x[i] for x in got], _numpy_reference(*b))
    shared = jax.vmap(mp.masked_lowrank_products, in_axes=(0, 0, None, None))
    got = shared(stacked[0], stacked[1], batch[0][2], batch[0][3])
    for i, b in enumerate(batch):
        _close([x[i] for x in got], _numpy_reference(b[0], b[1], batch[0][2], batch[0][3]))


@needs_native
@pytest.mark.parametrize("frac", [0.2, 0.7])
def test_auto_switches_by_density_and_is_differentiable(frac):
    """ "auto" takes the kernel up to DENSE_ABOVE_FRACTION observed and the dense formulation
    above (a run-time switch, same numbers either way); jax.grad goes through the dense one."""
    u, p, mask, target = _problem(11, 120, 140, 5, frac)
    assert bool(mp.dense_preferred(mask)) == (frac > mp.DENSE_ABOVE_FRACTION)
    fn = jax.jit(mp.masked_lowrank_products)
    assert "lowrank_theory_masked_lowrank" in fn.lower(u, p, mask, target).as_text()
    _close(fn(u, p, mask, target), _numpy_reference(u, p, mask, target))

    def loss(u, p, backend):
        return mp.masked_lowrank_products(u, p, mask, target, backend=backend)[0]

    g_auto = jax.grad(loss, argnums=(0, 1))(u, p, "auto")
    g_dense = jax.grad(loss, argnums=(0, 1))(u, p, "xla")
    _close(g_auto, g_dense)
    # and the gradient is (E P^T, U^T E), the products themselves
    _, g, h = _numpy_reference(u, p, mask, target)
    _close(g_auto, (g, h))


@needs_native
def test_native_refuses_what_it_cannot_do():
    u, p, mask, target = _problem(1, 40, 40, 33, 0.5)
    with pytest.raises(ValueError, match="1 <= k <= 32"):
        mp.masked_lowrank_products(u, p, mask, target, backend="native")
    # "auto" falls back to the dense formulation for k > 32
    fn = jax.jit(mp.masked_lowrank_products)
    assert "lowrank_theory_masked_lowrank" not in fn.lower(u, p, mask, target).as_text()
    _close(fn(u, p, mask, target), _numpy_reference(u, p, mask, target))
    # dense_only() affects "auto" only; the explicit backend still runs the kernel
    u10 = u[:, :10]
    with mp.dense_only():
        out = mp.masked_lowrank_products(u10, p[:10], mask, target, backend="native")
    _close(out, _numpy_reference(u10, p[:10], mask, target))
    with pytest.raises(ValueError, match="shape"):
        mp.masked_lowrank_products(u, p, mask[:-1], target, backend="native")
    with pytest.raises(ValueError, match="backend"):
        mp.masked_lowrank_products(u, p, mask, target, backend="gpu")


@needs_native
@pytest.mark.parametrize(
    ("m", "n", "k", "threads"),
    [(300, 600, 13, 3), (257, 777, 32, 2), (130, 513, 1, 2), (1000, 300, 10, 16)],
)
def test_packed_threads_and_column_blocks(m, n, k, threads):
    """Packed entries over several 256-column blocks and several slots, against NumPy;
    identical bits on repeated calls and the same numbers as the mask-scanning handler."""
    u, p, mask, target = _problem(8, m, n, k, 0.25)
    packed = mp.pack_observed(mask, target)
    # the layout: block-major, then row, columns ascending within a (block, row) segment
    ptr, cols = np.asarray(packed.ptr), np.asarray(packed.cols)
    n_blocks = -(-n // nk.COLUMN_BLOCK)
    assert ptr.shape == (n_blocks * m + 1,) and ptr[-1] == packed.nnz
    seg = 3 * m + 5 if n_blocks > 3 else m + 1  # some (block, row) segment
    cs = cols[ptr[seg] : ptr[seg + 1]]
    b, i = divmod(seg, m)
    assert np.array_equal(
        cs, np.flatnonzero(np.asarray(mask)[i, b * 256 : (b + 1) * 256]) + b * 256
    )
    got = nk.native_packed_products(u, p, packed, threads=threads)
    _close(got, _numpy_reference(u, p, mask, target))
    again = nk.native_packed_products(u, p, packed, threads=threads)
    assert all(bool(jnp.all(x == y)) for x, y in zip(got, again, strict=True))
    scan = mp.masked_lowrank_products(u, p, mask, target, backend="native", threads=threads)
    _close(got, scan, rtol=1e-14)


@needs_native
@pytest.mark.parametrize(
    ("m", "n", "frac", "block", "threads"),
    [(600, 40, 0.2, 7, 1), (50, 700, 0.9, 700, 2), (400, 5000, 0.01, 1024, 3), (9, 3, 1.0, 1, 1)],
)
def test_packed_entries_of_any_block_width(m, n, frac, block, threads):
    """pack_entries with column blocks of any width (the large-scale layout): narrow blocks
    (7 columns), (block, row) segments of more than 256 entries (a block as wide as the matrix,
    90 % observed), sparse wide blocks, single entries; kernel and pure-JAX path against NumPy,
    and the offsets O(|Omega| + m) for the automatic block."""
    u, p, mask, target = _problem(9, m, n, 6, frac)
    rows, cols = np.nonzero(np.asarray(mask))
    vals = np.asarray(target)[rows, cols]
    packed = mp.pack_entries(rows[::-1], cols[::-1], vals[::-1], (m, n), block=block)
    assert packed.block == block and packed.ptr.shape == (-(-n // block) * m + 1,)
    ref = _numpy_reference(u, p, mask, target)
    _close(nk.native_packed_products(u, p, packed, threads=threads), ref)
    _close(mp.jax_entry_products(u, p, packed, chunk=64), ref)
    auto = mp.pack_entries(rows, cols, vals, (m, n))
    assert auto.ptr.size <= max(len(rows), 1) // 2 + m + 1 or auto.block == nk.COLUMN_BLOCK
    _close(mp.entry_products(u, p, auto), ref)


@needs_native
def test_packed_products_vmap_and_derivatives():
    """packed_products: the kernel (checked in the HLO); under vmap and for derivatives the
    dense formulation from the mask and target it carries along."""
    u, p, mask, target = _problem(4, 60, 70, 5, 0.3)
    packed = mp.pack_observed(mask, target)
    fn = jax.jit(lambda u, p: mp.packed_products(u, p, mask, target, packed))
    assert "lowrank_theory_masked_lowrank_packed" in fn.lower(u, p).as_text()
    _close(fn(u, p), _numpy_reference(u, p, mask, target))
    us = jnp.stack([u, 2 * u, -u])
    batched = jax.jit(jax.vmap(lambda u: mp.packed_products(u, p, mask, target, packed)))
    assert "lowrank_theory_masked_lowrank" not in batched.lower(us).as_text()
    for i in range(3):
        _close([x[i] for x in batched(us)], _numpy_reference(us[i], p, mask, target))
    grad = jax.grad(lambda u, p: mp.packed_products(u, p, mask, target, packed)[0], (0, 1))
    _, g, h = _numpy_reference(u, p, mask, target)
    _close(grad(u, p), (g, h))


def test_pack_observed_refuses_bad_input():
    u, p, mask, target = _problem(2, 30, 40, 4, 0.3)
    poisoned = jnp.where(mask, target, jnp.nan)  # unobserved entries may be anything
    packed = mp.pack_observed(mask, poisoned)
    assert bool(jnp.all(jnp.isfinite(packed.vals)))
    with pytest.raises(ValueError, match="non-finite"):
        mp.pack_observed(mask, jnp.where(mask, jnp.inf, target))
    with pytest.raises(ValueError, match="one shape"):
        mp.pack_observed(mask[:, :-1], target)
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(mp.pack_observed)(mask, target)
    if lt.native_status()["available"]:
        with pytest.raises(ValueError, match="packed entries of a"):
            nk.native_packed_products(u[:-1], p, packed)
        # a packing relabelled to another shape is refused by the kernel, not read out of
        # bounds (m=300, n=400 -> 300: the same two column blocks, columns up to 399)
        u, p, mask, target = _problem(3, 300, 400, 4, 0.3)
        wrong = dataclasses.replace(mp.pack_observed(mask, target), shape=(300, 300))
        with pytest.raises(Exception, match="not in the pack_observed layout"):
            jax.block_until_ready(nk.native_packed_products(u, p[:, :300], wrong))
        # altered packings: an interior column out of its block or out of range, overlapping
        # offsets; each is refused by the slot that would read it
        packed = mp.pack_observed(mask, target)
        ptr = np.asarray(packed.ptr)
        seg = int(np.flatnonzero(np.diff(ptr) >= 3)[0])  # a (block, row) with >= 3 entries
        s0 = int(ptr[seg])
        assert seg < 300  # in column block 0: column COLUMN_BLOCK is in range, not in the block
        altered = [
            dataclasses.replace(packed, cols=packed.cols.at[s0 + 1].set(10**6)),
            dataclasses.replace(packed, cols=packed.cols.at[s0 + 1].set(nk.COLUMN_BLOCK)),
            dataclasses.replace(packed, ptr=packed.ptr.at[seg + 1].set(int(ptr[seg + 2]) + 1)),
        ]
        for bad in altered:
            with pytest.raises(Exception, match="not in the pack_observed layout"):
                jax.block_until_ready(nk.native_packed_products(u, p, bad))
        _close(nk.native_packed_products(u, p, packed), _numpy_reference(u, p, mask, target))


@needs_native
def test_gd_packs_the_observed_entries_once():
    """run_gd hands GD the packed entries when the step takes the kernel (thin last factor, at
    most PACKED_DENSE_ABOVE_FRACTION observed), and not otherwise; the runs agree with dense GD."""
    from lowrank_theory.dmf.masked_products import prepare_observed

    d, k = 80, 4
    keys = jax.random.split(jax.random.key(5), 4)
    ws = (
        jax.random.normal(keys[0], (k, d)) / np.sqrt(d),
        jnp.eye(k),
        jax.random.normal(keys[1], (d, k)) / np.sqrt(k),
    )
    target = jax.random.normal(keys[2], (d, d)) / np.sqrt(d)
    sparse = jax.random.uniform(keys[3], (d, d)) < 0.2
    dense = jax.random.uniform(keys[3], (d, d)) < 0.9
    assert isinstance(prepare_observed(ws, target, sparse), mp.PackedObserved)
    assert prepare_observed(ws, target, dense) is None  # the dense formulation is faster
    medium = jax.random.uniform(keys[3], (d, d)) < 0.6  # packed, though "auto" would go dense
    assert isinstance(prepare_observed(ws, target, medium), mp.PackedObserved)
    assert prepare_observed(ws, target, None) is None
    wide = (jnp.eye(d), jnp.eye(d))  # not thin: the dense d x d step
    assert prepare_observed(wide, target, sparse) is None
    with mp.dense_only():
        assert prepare_observed(ws, target, sparse) is None
    # the GD loop run_gd compiles calls the packed kernel
    gd_scan = factorization.gd_scan
    lrs, zeros = jnp.full(3, 0.2), jnp.zeros(3)
    static = dict(n_records=1, stride=1, names=("loss",), custom=None)
    packed = prepare_observed(ws, target, sparse)
    hlo = gd_scan.lower(ws, target, sparse, None, lrs, zeros, packed, **static).as_text()
    assert "lowrank_theory_masked_lowrank_packed" in hlo
    # another mask of the same size and density reuses the compiled loop (padded capacity)
    other = jax.random.uniform(jax.random.key(99), (d, d)) < 0.2
    packed2 = prepare_observed(ws, target, other)
    assert packed2.nnz != packed.nnz and packed2.cols.shape == packed.cols.shape
    gd_scan(ws, target, sparse, None, lrs, zeros, packed, **static)
    traces = factorization.gd_scan_traces()
    gd_scan(ws, target, other, None, lrs, zeros, packed2, **static)
    assert factorization.gd_scan_traces() == traces
    kw = dict(lr=0.2, steps=60, mask=sparse, record=("loss",), record_every=20)
    got = lt.run_gd(ws, target, **kw)
    with mp.dense_only():
        ref = lt.run_gd(ws, target, **kw)
    np.testing.assert_allclose(got.records["loss"], ref.records["loss"], rtol=1e-11)
    for a, b in zip(got.weights, ref.weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * float(jnp.max(jnp.abs(b))))


def _dense_grads(weights, target, mask):
    """Reference: gradients of 1/2 ||mask * (W_L...W_1 - target)||^2 by autodiff."""
    return jax.grad(lambda ws: factorization_loss(ws, target, mask))(weights)


@needs_native
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_thin_chain_gradients_match_autodiff(depth):
    """loss_and_gradients through the kernel for thin chains d -> k -> ... -> k -> d of every depth >= 2
    equals autodiff of the dense masked loss."""
    d, k = 90, 6
    keys = jax.random.split(jax.random.key(depth), depth + 2)
    shapes = [(k, d)] + [(k, k)] * (depth - 2) + [(d, k)]
    ws = tuple(
        jax.random.normal(kk, s) / np.sqrt(s[1]) for kk, s in zip(keys[:depth], shapes, strict=True)
    )
    mask = jax.random.uniform(keys[-2], (d, d)) < 0.3
    target = jax.random.normal(keys[-1], (d, d))
    fn = jax.jit(lambda w: loss_and_gradients(w, target, mask))
    assert "lowrank_theory_masked_lowrank" in fn.lower(ws).as_text()
    loss, grads = fn(ws)
    _close(grads, _dense_grads(ws, target, mask), rtol=1e-11)
    _close([loss], [factorization_loss(ws, target, mask)])


@needs_native
@pytest.mark.parametrize(
    ("shapes", "small"),
    [
        ([(7, 60), (5, 7), (4, 5), (60, 4)], True),  # rectangular small middle factors
        ([(9, 300), (8, 9), (6, 8), (11, 6), (260, 11)], True),  # depth 5, two column blocks
        ([(6, 60), (60, 6), (6, 60), (60, 6)], False),  # middle factors wider than MAX_WIDTH
        ([(40, 60), (5, 40), (60, 5)], False),  # a middle factor 40 wide (> MAX_WIDTH)
    ],
)
def test_thin_chain_gradients_in_small_coordinates_match_autodiff(shapes, small, monkeypatch):
    """The thin chain's gradients, contracted in the middle factors' coordinates when those are
    small (contracted_gradients, path "thin-small") or back-propagated when one is not (path
    "thin"), equal autodiff of the dense loss; the path taken is the one expected."""
    calls = []
    contracted = factorization.contracted_gradients
    monkeypatch.setattr(
        factorization, "contracted_gradients", lambda *a: calls.append(1) or contracted(*a)
    )
    keys = jax.random.split(jax.random.key(len(shapes)), len(shapes) + 2)
    ws = tuple(
        jax.random.normal(kk, s) / np.sqrt(s[1]) for kk, s in zip(keys, shapes, strict=False)
    )
    m, n = shapes[-1][0], shapes[0][1]
    mask = jax.random.uniform(keys[-2], (m, n)) < 0.3
    target = jax.random.normal(keys[-1], (m, n))
    assert mp.step_path(ws, mask) == ("thin-small" if small else "thin")
    fn = jax.jit(lambda w: loss_and_gradients(w, target, mask))
    assert "lowrank_theory_masked_lowrank" in fn.lower(ws).as_text()
    assert len(calls) == int(small)
    loss, grads = fn(ws)
    _close(grads, _dense_grads(ws, target, mask), rtol=1e-11)
    _close([loss], [factorization_loss(ws, target, mask)])
    for g, w in zip(grads, ws, strict=True):
        assert g.shape == w.shape


@needs_native
def test_compressed_completion_gd_matches_the_dense_step():
    """GD (11) on the compressed chain (V^T, W~_1..W~_3, U) goes through the native kernel and
    matches the gradients of the dense masked loss; 200 steps stay within rounding."""
    phi, mask = lt.completion_instance(jax.random.key(3), 120, 3, 0.3)
    target = jnp.where(mask, phi, 0.0)
    ws = lt.orthogonal_init(jax.random.key(4), 120, 3, 1e-2)
    comp = lt.compress(ws, target, 3, mask=mask)
    chain = (comp.v.T, *comp.weights, comp.u)
    hlo = jax.jit(lambda w: gd_step(w, target, mask, [1.0] * 5, [0.0] * 5)).lower(chain)
    assert "lowrank_theory_masked_lowrank" in hlo.as_text()
    with mp.dense_only():  # the comparison switch: traces the dense formulation
        hlo = jax.jit(lambda w: gd_step(w, target, mask, [1.0] * 5, [0.0] * 5)).lower(chain)
    assert "lowrank_theory_masked_lowrank" not in hlo.as_text()
    # one step: gradients equal autodiff of the dense loss
    _, grads = jax.jit(lambda w: loss_and_gradients(w, target, mask))(chain)
    _close(grads, _dense_grads(chain, target, mask), rtol=1e-11)
    # 200 steps vs the dense formulation
    lrs = jnp.array([0.02, 2.0, 2.0, 2.0, 0.02])
    lams = jnp.zeros(5)

    def dense_step(w):
        g = _dense_grads(w, target, mask)
        return tuple(x - lr * gx for x, gx, lr in zip(w, g, lrs, strict=True))

    run_native = jax.jit(
        lambda w: jax.lax.fori_loop(0, 200, lambda _, x: gd_step(x, target, mask, lrs, lams)[1], w)
    )
    run_dense = jax.jit(lambda w: jax.lax.fori_loop(0, 200, lambda _, x: dense_step(x), w))
    a = lt.end_to_end(run_native(chain))
    b = lt.end_to_end(run_dense(chain))
    assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) < 1e-10


@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")
@pytest.mark.parametrize("case", ["disabled", "broken-compiler"])
def test_fallback_to_dense_formulation(tmp_path, case):
    """Without the kernel (disabled, or the build fails) GD runs the dense formulation, the
    status says why, and the numbers are the same."""
    env = dict(os.environ, LOWRANK_THEORY_CACHE=str(tmp_path), JAX_PLATFORMS="cpu")
    if case == "disabled":
        env["LOWRANK_THEORY_NATIVE"] = "0"
    else:
        env["LOWRANK_THEORY_NATIVE"] = "1"
        env["CXX"] = shutil.which("false") or "/bin/false"
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        import lowrank_theory as lt
        from lowrank_theory.dmf import masked_products as mp
        s = lt.native_status()
        assert not s["available"], s
        print(s["reason"])
        ks = jax.random.split(jax.random.key(0), 4)
        u = jax.random.normal(ks[0], (50, 4)); p = jax.random.normal(ks[1], (4, 60))
        m = jax.random.uniform(ks[2], (50, 60)) < 0.3; t = jax.random.normal(ks[3], (50, 60))
        a = mp.masked_lowrank_products(u, p, m, t)
        b = mp.masked_lowrank_products(u, p, m, t, backend="xla")
        assert all(bool(jnp.all(x == y)) for x, y in zip(a, b))
        try:
            mp.masked_lowrank_products(u, p, m, t, backend="native")
        except ValueError as e:
            assert "unavailable" in str(e)
        else:
            raise AssertionError("native backend should refuse")
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    expect = "LOWRANK_THEORY_NATIVE" if case == "disabled" else "failed"
    assert expect in res.stdout


@needs_native
def test_calibration_keeps_the_faster_path_and_says_why(tmp_path, monkeypatch):
    """On first use on a host the native and dense products are timed and the faster is kept
    (fake timer here); a kernel measured slower is never chosen; the decision is cached beside
    the kernel and native_status() reports the path, why and the times."""
    monkeypatch.delenv("LOWRANK_THEORY_NATIVE", raising=False)
    monkeypatch.setenv("LOWRANK_THEORY_CACHE", str(tmp_path))
    times = {"native": 9e-3, "dense": 2e-3}  # the AVX2 host: kernel 4.5x slower
    monkeypatch.setattr(mp, "time_products", lambda path, *a, **k: times[path])
    d = mp.calibrate(refresh=True)
    assert d["path"] == "dense" and "slower" in d["why"]
    assert (d["native_s"], d["dense_s"]) == (9e-3, 2e-3)
    status = lt.native_status()
    assert status["available"] and status["path"] == "dense" and "slower" in status["why"]
    assert {"cpu_model", "vector_extensions", "compiler"} <= set(status["host"])
    u, p, mask, target = _problem(0, 60, 70, 5, 0.2)
    ws = (p, u)
    assert mp.step_path(ws, mask) == "dense" and mp.prepare_observed(ws, target, mask) is None
    hlo = jax.jit(mp.masked_lowrank_products).lower(u, p, mask, target).as_text()
    assert "lowrank_theory_masked_lowrank" not in hlo
    # cached per host and build: read back, not timed again
    (cached,) = tmp_path.glob("dispatch-*.json")
    monkeypatch.setattr(mp, "time_products", lambda *a, **k: pytest.fail("timed again"))
    assert mp.calibrate()["path"] == "dense"
    # a faster kernel is kept; the env override still decides
    times.update(native=1e-3)
    monkeypatch.setattr(mp, "time_products", lambda path, *a, **k: times[path])
    assert mp.calibrate(refresh=True)["path"] == "native"
    assert mp.step_path(ws, mask) != "dense"
    monkeypatch.setenv("LOWRANK_THEORY_NATIVE", "1")
    assert mp.calibrate()["path"] == "native" and "forced" in mp.calibrate()["why"]
    assert cached.exists()


def _is_x86_with_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return platform.machine() in ("x86_64", "AMD64") and " avx2" in flags and " fma" in flags


needs_v3 = pytest.mark.skipif(
    not (lt.native_status()["available"] and _is_x86_with_avx2()),
    reason="needs the native kernel, an x86-64 CPU with AVX2/FMA and a C++ compiler",
)


@needs_v3
def test_x86_64_v3_build_equals_the_native_build():
    """The kernel built for x86-64-v3 (every AVX2 machine; the level where the old loads went
    through the stack) gives the same bits as this host's -march=native build."""
    for seed, (m, n, k) in enumerate([(300, 600, 10), (257, 777, 32), (130, 513, 3)]):
        u, p, mask, target = _problem(seed, m, n, k, 0.25)
        packed = mp.pack_observed(mask, target)
        ref = nk.native_packed_products(u, p, packed, threads=2)
        got = nk.native_packed_products(u, p, packed, threads=2, march="x86-64-v3")
        for a, b in zip(got, ref, strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))


@needs_v3
@pytest.mark.skipif(shutil.which("objdump") is None, reason="no objdump to disassemble with")
def test_x86_64_v3_build_keeps_vectors_out_of_the_stack():
    """Symptom of issue 17: under x86-64-v3 g++ staged every 32-byte load and store through
    the stack (memcpy into an 8-byte aligned vector: ~31 ymm stack accesses per row function,
    9 ms instead of 0.4 ms per step). Now no 256-bit operand of the row functions for k <= 16
    (NV <= 4: no register pressure) touches the stack, broadcasts of the error buffer aside."""
    so = nk.build_kernel(march="x86-64-v3")
    asm = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", str(so)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    funcs = re.split(r"\n(?=[0-9a-f]+ <)", asm)
    found = set()
    for nv in (1, 2, 3, 4):
        for body in funcs:
            if re.match(rf"[0-9a-f]+ <.*rows<{nv}, ", body):
                found.add(nv)
                bad = [
                    ln
                    for ln in body.splitlines()
                    if "ymm" in ln and re.search(r"\(%r[sb]p", ln) and "broadcast" not in ln
                ]
                assert not bad, f"rows<{nv}>: {len(bad)} ymm stack accesses, e.g. {bad[:3]}"
    if not found:
        pytest.skip("the row functions are not separate symbols in this build")
    assert found == {1, 2, 3, 4}, f"row functions found for widths {sorted(found)} only"


@needs_native
def test_registration_survives_cleared_caches_and_a_new_cache_dir(tmp_path, monkeypatch):
    """JAX's FFI registry is process-wide: clearing the loader's caches (as the mutation tests
    do) and pointing ``$LOWRANK_THEORY_CACHE`` elsewhere (a second copy of the library) must
    not register the handler twice; the kernel stays available and gives the same products."""
    u, p, mask, target = _problem(3, 40, 50, 4, 0.3)
    packed = mp.pack_observed(mask, target)
    before = nk.native_packed_products(u, p, packed, threads=1)
    monkeypatch.setenv("LOWRANK_THEORY_CACHE", str(tmp_path))
    for fn in vars(nk).values():  # what the mutation tests' cache clearing does
        if callable(getattr(fn, "cache_clear", None)):
            fn.cache_clear()
    assert nk.kernel_available(), nk.native_status()["reason"]
    after = nk.native_packed_products(u, p, packed, threads=1)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
