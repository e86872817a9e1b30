"""Unit tests, cross-checks and bad-input tests for seed 004's deep factorization modules.

Cross-checks: gradients against autodiff, rho against a direct loop, subspaces from the two
methods against each other (principal angles), compressed vs full trajectories (Prop. 2.2
identity), the k x k path against the dense path, padded vs narrow runs, one vs four devices.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_theory import EPS
from lowrank_theory.core.linalg import principal_angles, random_with_spectrum
from lowrank_theory.dmf.completion import (
    completion_instance,
    first_below,
    padded_narrow_init,
    run_gd_batch,
)
from lowrank_theory.dmf.compression import (
    compress,
    compress_from_gradient,
    invariant_subspaces,
    run_compressed,
    run_narrow,
)
from lowrank_theory.dmf.factorization import (
    end_to_end,
    factorization_loss,
    loss_and_gradients,
    lr_from_mean_loss,
    nonlinear_factorization,
    nonlinear_gradient,
    orthogonal_init,
    run_completion,
    run_factorization,
    run_gd,
)
from lowrank_theory.dmf.spectra import (
    numerical_rank_fig7,
    rank_fig7_from_singular_values,
    rho_sequence,
)

ROOT = Path(__file__).resolve().parents[1]


def _problem(d=10, r=2, depth=3, eps=1e-2, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    ws = orthogonal_init(k1, d, depth, eps)
    phi = random_with_spectrum(k2, d, d, np.linspace(1.0, 0.5, r))
    return ws, phi


# ------------------------------------------------------------------------------ init
def test_orthogonal_init_scales_and_shapes():
    ws = orthogonal_init(jax.random.key(1), 6, 3, [1e-3, 0.5, 2.0])
    for w, e in zip(ws, [1e-3, 0.5, 2.0], strict=True):
        np.testing.assert_allclose(w @ w.T, e**2 * np.eye(6), atol=50 * EPS * e**2)
        np.testing.assert_allclose(w.T @ w, e**2 * np.eye(6), atol=50 * EPS * e**2)
    rect = orthogonal_init(jax.random.key(2), [7, 3, 3, 7], 3, 0.1)
    assert [w.shape for w in rect] == [(3, 7), (3, 3), (7, 3)]
    np.testing.assert_allclose(rect[0] @ rect[0].T, 0.01 * np.eye(3), atol=1e-15)
    np.testing.assert_allclose(rect[2].T @ rect[2], 0.01 * np.eye(3), atol=1e-15)


@pytest.mark.parametrize(
    "args, match",
    [
        ((4, 0, 1.0), "depth"),
        ((4, 2, 0.0), "eps"),
        ((4, 2, -1.0), "eps"),
        ((4, 2, [1.0, 2.0, 3.0]), "per-layer"),
        ((4, 2, float("nan")), "eps"),
        (([4, 4], 2, 1.0), "d_0..d_L"),
    ],
)
def test_orthogonal_init_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        orthogonal_init(jax.random.key(0), *args)


# ------------------------------------------------------------------------------ gradients / GD
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_gradients_match_autodiff(depth):
    ws, phi = _problem(d=5, depth=depth, eps=0.7)
    mask = jax.random.uniform(jax.random.key(3), (5, 5)) < 0.6
    for m in (None, mask):
        loss, g = loss_and_gradients(ws, phi, m)
        ref = jax.grad(lambda w, m=m: factorization_loss(w, phi, m))(ws)
        assert abs(float(loss) - float(factorization_loss(ws, phi, m))) < 1e-14
        for a, b in zip(g, ref, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-14)


def test_run_gd_records_and_matches_python_loop():
    ws, phi = _problem(d=6, depth=3, eps=0.3)
    res = run_factorization(ws, phi, lr=0.2, steps=12, weight_decay=0.01, record_every=4,
                            record=("loss", "singular_values", "end_to_end"))  # fmt: skip
    w = list(ws)
    losses = []
    for t in range(13):
        if t % 4 == 0:
            losses.append(float(factorization_loss(w, phi)))
        _, g = loss_and_gradients(tuple(w), phi, None)
        w = [(1 - 0.2 * 0.01) * a - 0.2 * b for a, b in zip(w, g, strict=True)]
    np.testing.assert_allclose(res.records["loss"], losses, rtol=1e-12)
    assert list(res.steps) == [0, 4, 8, 12]
    assert res.records["singular_values"][0].shape == (4, 6)
    np.testing.assert_allclose(res.records["end_to_end"][-1], end_to_end(res.weights))


def test_run_gd_bad_input():
    ws, phi = _problem(d=4, depth=2)
    with pytest.raises(ValueError, match="NaN"):
        run_gd(ws, phi.at[0, 0].set(jnp.nan), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="shape"):
        run_completion(ws, phi, np.ones((3, 4)), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="no entry"):
        run_completion(ws, phi, np.zeros((4, 4)), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="0/1"):
        run_completion(ws, phi, 2 * np.ones((4, 4)), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="multiple"):
        run_gd(ws, phi, lr=0.1, steps=5, record_every=2)
    with pytest.raises(ValueError, match="unknown record"):
        run_gd(ws, phi, lr=0.1, steps=2, record=("nope",))
    with pytest.raises(ValueError, match="learning rate"):
        run_gd(ws, phi, lr=-0.1, steps=2)
    with pytest.raises(ValueError, match="undefined"):
        run_gd([np.ones((3, 4)), np.ones((4, 4))], np.ones((4, 4)), lr=0.1, steps=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        run_gd(ws, 1e3 * phi, lr=10.0, steps=200)


def test_lr_mapping_reproduces_mean_loss_gd():
    """GD with eta_ref on the 1/2-mean loss equals GD with eta_ref/d^2 on our 1/2-sum loss."""
    ws, phi = _problem(d=5, depth=2, eps=0.5)
    lr_ref = 3.0
    w = ws
    for _ in range(5):
        g = jax.grad(lambda v: factorization_loss(v, phi) / 25)(w)
        w = tuple(a - lr_ref * b for a, b in zip(w, g, strict=True))
    ours = run_gd(ws, phi, lr=lr_from_mean_loss(lr_ref, 5), steps=5).weights
    for a, b in zip(w, ours, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-14)


# ------------------------------------------------------------------------------ rho
def test_rho_sequence_matches_direct_loop_and_edges():
    eps = [0.3, 0.05, 1.0]
    rho = rho_sequence(eps, 0.4, 0.1, 20)
    r = np.array(eps)
    for t in range(1, 21):
        r = np.array([r[l] * (1 - 0.04 - 0.4 * np.prod(np.delete(r, l) ** 2)) for l in range(3)])
        np.testing.assert_allclose(rho[t], r, rtol=1e-14)
    # L = 1: the empty product is 1
    np.testing.assert_allclose(rho_sequence(0.5, 0.1, 0.0, 1, depth=1)[1], [0.45])
    with pytest.raises(ValueError, match="diverges"):
        rho_sequence(1.0, 2.5, 0.0, 5, depth=2)
    with pytest.raises(ValueError, match="eps"):
        rho_sequence(0.0, 0.1, 0.0, 5, depth=2)
    with pytest.raises(ValueError, match="depth"):
        rho_sequence(0.1, 0.1, 0.0, 5, depth=0)


def test_full_gd_warns_when_rho_diverges():
    ws, phi = _problem(d=4, depth=2, eps=1.0)
    with pytest.warns(RuntimeWarning, match="rho recursion"), pytest.raises(FloatingPointError):
        run_factorization(ws, phi, lr=2.5, steps=400)


# ------------------------------------------------------------------------------ subspaces
def test_invariant_subspaces_methods_agree_and_report_gap():
    ws, phi = _problem(d=12, r=2, depth=3, eps=1e-2)
    ex = invariant_subspaces(ws, phi)
    gr = invariant_subspaces(ws, phi, method="gradient")
    assert ex.width == gr.width == 4 and ex.decided == "largest-gap"
    assert ex.gap > 1e10 and gr.gap > 1e3
    assert float(principal_angles(ex.v2(1), gr.v2(1)).max()) < 1e-10
    for l in range(2):
        np.testing.assert_allclose(ex.v[l + 1], ex.u[l], atol=1e-15)


@pytest.mark.parametrize("top", [[1.0, 0.7], [1.0, 1e-4]], ids=["well-conditioned", "cond-1e4"])
def test_gradient_subspaces_match_the_thin_svd(top, monkeypatch):
    """The eigh(M^T M) route of subspaces_from_gradient gives the thin SVD's subspace and values
    to rounding; an ill-conditioned kept block (sigma_1/sigma_k > 100) takes the SVD itself."""
    from lowrank_theory.dmf.compression import subspaces_from_gradient

    d, eps = 40, 1e-2
    ws = orthogonal_init(jax.random.key(3), d, 3, eps)
    g = random_with_spectrum(jax.random.key(4), d, d, np.array(top))
    svd_calls = []
    real_svd = jnp.linalg.svd
    monkeypatch.setattr(jnp.linalg, "svd", lambda *a, **k: svd_calls.append(1) or real_svd(*a, **k))
    sub = subspaces_from_gradient(ws, g)
    monkeypatch.undo()
    # which route ran: eigh alone when well conditioned, the SVD fallback otherwise
    assert bool(svd_calls) == (top[1] < 1e-2)
    m = jnp.concatenate([g, g.T @ ws[0] / eps], axis=0)
    _, s, vt = np.linalg.svd(np.asarray(m), full_matrices=False)
    k = sub.width
    assert k == 4 and sub.decided == "largest-gap"
    assert float(principal_angles(sub.v[0][:, :k], vt[:k].T).max()) < 1e3 * EPS
    np.testing.assert_allclose(sub.singular_values[:k], s[:k], rtol=1e3 * EPS)


def test_invariant_subspaces_errors():
    ws, phi = _problem(d=8, depth=2)
    with pytest.raises(ValueError, match=r"m = d - 2r > 0"):
        invariant_subspaces(ws, phi, rank=4)
    full = random_with_spectrum(jax.random.key(5), 8, 8, np.linspace(1, 0.5, 8))
    with pytest.raises(ValueError, match="no spectral gap"):
        invariant_subspaces(ws, full)
    sub = invariant_subspaces(ws, full, rank=1)  # given: no decision needed
    assert sub.decided == "given" and sub.width == 2
    bad = (ws[0] + 1e-3, ws[1])
    with pytest.raises(ValueError, match="scaled orthogonal"):
        invariant_subspaces(bad, phi)
    with pytest.raises(ValueError, match="square"):
        invariant_subspaces(orthogonal_init(jax.random.key(0), [8, 4, 8], 2, 0.1), phi)
    with pytest.raises(ValueError, match="method"):
        invariant_subspaces(ws, phi, method="svd")
    with pytest.raises(ValueError, match="NaN"):
        invariant_subspaces(ws, phi.at[1, 1].set(jnp.inf))


def test_gradient_recipe_fails_at_eps_one():
    """Edge of dmf.construction: at eps = 1 the recipe's cluster is not below the signal."""
    ws, phi = _problem(d=12, r=2, depth=3, eps=1.0)
    sub = invariant_subspaces(ws, phi, rank=2, method="gradient")
    ex = invariant_subspaces(ws, phi, rank=2)
    assert float(principal_angles(ex.v2(1), sub.v2(1)).max()) > 1e-3


# ------------------------------------------------------------------------------ compression
def test_compression_tracks_full_run_prop22_identity_over_many_steps():
    """||f - f_C||_F = sqrt(m) prod rho_l(t) to rounding over 300 steps (error growth reported)."""
    d, r, eps, lr, lam = 10, 2, [1e-2, 0.1, 0.3], 0.15, 0.01
    ws, phi = _problem(d=d, r=r, depth=3, eps=eps)
    full = run_factorization(ws, phi, lr=lr, steps=300, weight_decay=lam, record_every=100,
                             record=("end_to_end", "loss"))  # fmt: skip
    comp = compress(ws, phi, r)
    for w, e in zip(comp.weights, eps, strict=True):
        np.testing.assert_allclose(w, e * np.eye(2 * r), atol=1e-15)
    small = run_compressed(comp, lr=lr, steps=300, weight_decay=lam, record_every=100,
                           record=("weights", "loss"))  # fmt: skip
    assert small.info["path"] == "k x k"
    rho = rho_sequence(eps, lr, lam, 300)
    errs = []
    for i, t in enumerate(full.steps):
        fc = comp.end_to_end([small.records["weights"][l][i] for l in range(3)])
        dn = float(jnp.linalg.norm(full.records["end_to_end"][i] - fc))
        errs.append(abs(dn - np.sqrt(d - 2 * r) * np.prod(rho[t])))
    assert max(errs) < 1e-12, errs
    # losses differ by exactly 1/2 m prod rho^2 (the cross term vanishes by Lemma E.1's C, D)
    gap = 0.5 * (d - 2 * r) * np.prod(rho[full.steps] ** 2, axis=1)
    np.testing.assert_allclose(full.records["loss"] - small.records["loss"], gap, atol=1e-14)
    # the dense (L+2)-layer path with frozen outer factors gives the same trajectory
    dense = run_compressed(comp, lr=lr, steps=300, weight_decay=lam, record_every=100,
                           mask=np.ones((d, d), bool), record=("loss",))  # fmt: skip
    np.testing.assert_allclose(dense.records["loss"], small.records["loss"], rtol=1e-10)


def test_compress_refuses_and_reusable_piece():
    ws, phi = _problem(d=8, depth=3)
    with pytest.raises(ValueError, match="rank >= d/2"):
        compress(ws, phi, 4)
    g1 = loss_and_gradients(ws, phi, None)[1][0]
    c = compress_from_gradient(ws, g1, 3)
    assert c.u.shape == (8, 3) and c.v.shape == (8, 3)
    for w in c.weights:
        np.testing.assert_allclose(w, 1e-2 * np.eye(3), atol=1e-15)


def test_compressed_completion_gamma_helps():
    d = 30
    phi, mask = completion_instance(jax.random.key(4), d, 1, 0.5)
    ws = orthogonal_init(jax.random.key(5), d, 3, 1e-2)
    target = jnp.where(mask, phi, 0.0)
    comp = compress(ws, target, 1, mask=mask)
    rec = {}
    for g in (0.0, 0.05):
        rc = run_compressed(comp, lr=0.6, steps=1000, gamma=g, mask=mask, truth=phi,
                            record=("recovery",))  # fmt: skip
        rec[g] = float(rc.records["recovery"][-1])
    assert rec[0.05] < 0.5 * rec[0.0]
    with pytest.raises(ValueError, match="gamma"):
        run_compressed(comp, lr=0.1, steps=1, gamma=-1.0, mask=mask)


def test_narrow_and_padded_batch_agree():
    phi, mask = completion_instance(jax.random.key(0), 12, 2, 0.5)
    key = jax.random.key(9)
    narrow = run_narrow(key, phi, 4, 3, 0.1, lr=0.5, steps=40, mask=mask, record_every=20,
                        record=("recovery",))  # fmt: skip
    padded = padded_narrow_init(key, 12, 4, 3, 0.1, pad_to=8)
    wb = tuple(w[None] for w in padded)
    rec = run_gd_batch(wb, phi[None], mask[None], None, lr=0.5, steps=40, record_every=20)
    np.testing.assert_allclose(rec["recovery"][0], narrow.records["recovery"], rtol=1e-12)
    assert first_below(np.array([1.0, 0.1, 0.01]), np.array([0, 10, 20]), 0.05) == 20.0
    assert first_below(np.array([1.0]), np.array([0]), 0.05) == np.inf


_MULTI = """
import json, jax, jax.numpy as jnp
import lowrank_theory
from lowrank_theory.dmf.completion import completion_instance, padded_narrow_init, run_gd_batch
phi, mask = completion_instance(jax.random.key(0), 10, 2, 0.5)
ws = [padded_narrow_init(jax.random.key(w), 10, w, 3, 0.1, pad_to=8) for w in (2, 4, 6, 8, 3)]
wb = tuple(jnp.stack([w[l] for w in ws]) for l in range(3))
rec = run_gd_batch(wb, jnp.stack([phi] * 5), jnp.stack([mask] * 5), None, lr=0.5, steps=30,
                   record_every=10)
print(json.dumps({"n": len(jax.devices()), "rec": rec["recovery"].tolist()}))
"""


def test_multi_device_sharding_gives_same_numbers(capsys):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    p = subprocess.run([sys.executable, "-c", _MULTI], env=env, cwd=ROOT, capture_output=True,
                       text=True, check=True)  # fmt: skip
    four = json.loads(p.stdout.strip().splitlines()[-1])
    exec(compile(_MULTI, "<multi>", "exec"), {})  # the same code on this process's one device
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert four["n"] == 4 and one["n"] == len(jax.devices())
    np.testing.assert_allclose(four["rec"], one["rec"], rtol=1e-13)


# ------------------------------------------------------------------------------ nonlinear, rank
def test_nonlinear_gradient_matches_seed_formula():
    ws = orthogonal_init(jax.random.key(0), 7, 3, 0.5)
    phi = random_with_spectrum(jax.random.key(1), 7, 7, [1.0, 0.5])
    relu = jax.nn.relu
    e = nonlinear_factorization(ws) - phi
    h = (ws[1] @ relu(ws[0]) > 0).astype(float)
    ref = (h * (ws[2].T @ e)) @ relu(ws[0]).T
    np.testing.assert_allclose(nonlinear_gradient(ws, phi, 2), ref, atol=1e-15)


def test_numerical_rank_fig7():
    a = np.diag([1.0, 1e-3, 1e-9, 0.0])
    assert numerical_rank_fig7(a) == 2
    b = np.diag([1e9, 1e-3, 0.0, 0.0])  # d*sigma1*eps = 8.9e-7 > 1e-8
    assert numerical_rank_fig7(b) == 2


def test_one_fig7_rank_rule():
    """The Fig. 7 rule is one implementation: the float64 reading of Deep LoRA's numerical
    rank equals numerical_rank_fig7, and the cut-off is exactly max(1e-8, d sigma_1 eps)."""
    from lowrank_theory.dmf import deep_lora

    rng = np.random.default_rng(0)
    for scale in (1e-9, 1e-3, 1.0, 1e9):
        a = scale * rng.standard_normal((7, 5)) @ np.diag([1, 1e-4, 1e-8, 1e-12, 0]) @ np.eye(5)
        assert deep_lora.numerical_rank(a, machine_eps=EPS) == numerical_rank_fig7(a)
        s = np.linalg.svd(a, compute_uv=False)
        for eps in (EPS, deep_lora.FLOAT32_EPS):
            tau = max(1e-8, 7 * s[0] * eps)
            assert rank_fig7_from_singular_values(s, a.shape, eps) == int(np.sum(s > tau))
    assert rank_fig7_from_singular_values([], (3, 3)) == 0


# ------------------------------------------------------------------------------ figures, README
# The six figure scripts (experiments/fig_dmf_*.py, fig_dmc_*.py, fig_nonlinear_gradient.py) are
# smoke-run with --quick by the generic tests/test_experiments_io.py on main (every fig_*.py);
# a second run here would double their CI cost.


@pytest.mark.parametrize("modname", ["factorization", "compression", "spectra"])
def test_module_docstring_examples(modname):
    import doctest
    import importlib

    mod = importlib.import_module(f"lowrank_theory.dmf.{modname}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0


def test_lemma_e2_edges():
    """Outside Lemma E.2's assumptions: eps > 1 breaks the lower bound; L = 1 breaks it too
    (the registered counterexample); L >= 2 with eps <= 1 holds."""
    from lowrank_theory.claims.dmf.factorization import build_sandwich, check_sandwich

    base = {"lam": 0.0, "lr_frac": 0.5, "T": 50}
    assert not check_sandwich(build_sandwich({**base, "L": 2, "eps": 1.5}, assume=False)).holds
    assert not check_sandwich(build_sandwich({**base, "L": 1, "eps": 0.5})).holds
    assert check_sandwich(build_sandwich({**base, "L": 1, "eps": 0.5}, corrected=True)).holds
    assert check_sandwich(build_sandwich({**base, "L": 3, "eps": 0.9})).holds
