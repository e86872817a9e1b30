"""Unit tests for lowrank_theory.dmf.deep_lora and lowrank_theory.dmf.models (seed 004, Section 4)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.dmf import deep_lora as dl
from lowrank_theory.dmf import models

ROOT = Path(__file__).resolve().parents[1]


def _params(key=0, shapes=((12, 8), (12, 12), (5, 12))):
    ks = jax.random.split(jax.random.key(key), len(shapes))
    return {
        f"layer{i}": {"w": jax.random.normal(k, s) / np.sqrt(s[1]), "b": jnp.zeros(s[0])}
        for i, (k, s) in enumerate(zip(ks, shapes, strict=True))
    }


def _loss(params, key=1, n=6):
    kx, ky = jax.random.split(jax.random.key(key))
    x = jax.random.normal(kx, (n, 8))
    y = jax.random.normal(ky, (n, 5))
    return lambda p: jnp.mean((models.mlp_apply(p, x) - y) ** 2)


TARGETS = ["layer0/w", "layer1/w", "layer2/w"]


def test_lora_init_matches_appendix_b_and_merge_is_identity_at_init():
    p = _params()
    ad = lt.lora_adapters(p, TARGETS, 4, 8.0, jax.random.key(0))
    for t in TARGETS:
        a, b = ad[t].factors
        m, n = dl.get_path(p, t).shape
        assert a.shape == (4, n) and b.shape == (m, 4)
        assert float(jnp.abs(b).max()) == 0.0
        assert ad[t].scale == 2.0
    # Gaussian with standard deviation 1 (pooled over all entries)
    big = lt.lora_adapters({"w": jnp.zeros((400, 400))}, ["w"], 50, 1.0, jax.random.key(3))
    assert abs(float(jnp.std(big["w"].factors[0])) - 1.0) < 0.01
    merged = lt.merge(p, ad)
    for t in TARGETS:
        np.testing.assert_array_equal(dl.get_path(merged, t), dl.get_path(p, t))
    np.testing.assert_array_equal(merged["layer0"]["b"], p["layer0"]["b"])


def test_merge_adds_scaled_product():
    p = _params()
    ad = lt.lora_adapters(p, ["layer1/w"], 3, 6.0, jax.random.key(0))
    b = jax.random.normal(jax.random.key(9), (12, 3))
    ad["layer1/w"] = dl.Adapter((ad["layer1/w"].factors[0], b), 2.0, (False, False), "lora")
    merged = lt.merge(p, ad)
    expect = p["layer1"]["w"] + 2.0 * b @ ad["layer1/w"].factors[0]
    np.testing.assert_allclose(merged["layer1"]["w"], expect, rtol=1e-14, atol=1e-14)


def test_orthogonal_factors_are_scaled_semi_orthogonal():
    fs = dl.orthogonal_factors(jax.random.key(0), (7, 4), 3, 1e-3)
    assert [f.shape for f in fs] == [(7, 4), (7, 7), (7, 7)]
    for f in fs:
        g = f.T @ f if f.shape[0] >= f.shape[1] else f @ f.T
        np.testing.assert_allclose(g, 1e-6 * np.eye(g.shape[0]), atol=1e-18)
    narrow = dl.orthogonal_factors(jax.random.key(1), (7, 9), 3, 0.5, width=3)
    assert [f.shape for f in narrow] == [(3, 9), (3, 3), (7, 3)]


@pytest.mark.parametrize("shape", [(12, 8), (5, 12)])
def test_compression_recipe_against_definition(shape):
    """V_11 spans span(Q_h) + span(O_1^T P_h) and U_L1 = W_{L:1}(0) V_11 / eps^L (Section 2.3)."""
    p = _params()
    path = "layer0/w" if shape == (12, 8) else "layer2/w"
    eps = 1e-3
    ad = lt.deep_lora_adapters(p, [path], 4, jax.random.key(5), eps, 3, loss_fn=_loss(p))[path]
    vt, *inner, u = ad.factors
    assert ad.outer == (True, False, False, False, True)
    assert vt.shape == (4, shape[1]) and u.shape == (shape[0], 4)
    for w in inner:
        np.testing.assert_allclose(w, eps * np.eye(4), atol=0)
    # rebuild the full-width factorization with the same key and check the recipe directly
    full = dl.full_width_adapters(p, [path], jax.random.key(5), eps, 3)
    grads = jax.grad(lambda a: _loss(p)(lt.merge(p, a)))(full)[path].factors
    fs = list(full[path].factors)
    if shape[0] < shape[1]:  # transposed problem
        fs, g1 = [f.T for f in fs[::-1]], grads[-1].T
        u, vt = vt.T, u.T
    else:
        g1 = grads[0]
    pp, _, qt = np.linalg.svd(np.asarray(g1))
    span = np.concatenate([qt[:2].T, np.asarray(fs[0]).T @ pp[:, :2] / eps], axis=1)
    v = np.asarray(vt).T
    np.testing.assert_allclose(v.T @ v, np.eye(4), atol=1e-12)
    proj = v @ v.T
    np.testing.assert_allclose(proj @ span, span, atol=1e-10 * np.abs(span).max())
    prod = np.asarray(fs[2] @ fs[1] @ fs[0])
    np.testing.assert_allclose(np.asarray(u), prod @ v / eps**3, atol=1e-10)
    np.testing.assert_allclose(np.asarray(u).T @ np.asarray(u), np.eye(4), atol=1e-10)


def test_compressed_update_matches_full_width_at_init():
    """Delta W_C(0) = eps^L O V V^T: within eps^L sqrt(n - r) of the full-width one (Prop. 2.2, t=0)."""
    p = _params()
    eps = 1e-2
    deep = lt.deep_lora_adapters(p, ["layer1/w"], 4, jax.random.key(2), eps, loss_fn=_loss(p))
    full = dl.full_width_adapters(p, ["layer1/w"], jax.random.key(2), eps)
    err = float(jnp.linalg.norm(dl.delta(deep["layer1/w"]) - dl.delta(full["layer1/w"])) ** 2)
    bound = (12 - 4) * eps**6
    assert err <= bound * (1 + 1e-8)
    assert err >= 0.5 * bound  # the bound is attained here: O is orthogonal


def test_training_discrepant_rate_and_gamma_zero_freezes_outer():
    p = _params()
    loss = _loss(p)
    ad = lt.deep_lora_adapters(p, TARGETS, 4, jax.random.key(0), loss_fn=loss)
    out, losses = jax.jit(lambda a: dl.train(p, a, loss, 50, 1e-2, 0.0))(ad)
    assert losses.shape == (50,) and float(losses[-1]) < float(losses[0])
    for t in TARGETS:
        np.testing.assert_array_equal(out[t].factors[0], ad[t].factors[0])
        np.testing.assert_array_equal(out[t].factors[-1], ad[t].factors[-1])
        assert float(jnp.abs(out[t].factors[1] - ad[t].factors[1]).max()) > 0
    out2, _ = dl.train(p, ad, loss, 50, 1e-2, 1e-2)
    assert float(jnp.abs(out2["layer0/w"].factors[0] - ad["layer0/w"].factors[0]).max()) > 0


def test_lora_training_matches_manual_adam():
    """optax path = a hand-written Adam on the LoRA factors (one step, no discrepancy)."""
    p = _params()
    loss = _loss(p)
    ad = lt.lora_adapters(p, ["layer1/w"], 2, 4.0, jax.random.key(0))
    out, _ = dl.train(p, ad, loss, 1, 1e-2)
    g = jax.grad(lambda a: loss(lt.merge(p, a)))(ad)["layer1/w"].factors
    for f0, gi, f1 in zip(ad["layer1/w"].factors, g, out["layer1/w"].factors, strict=True):
        m, v = 0.1 * gi, 0.001 * gi**2
        step = (m / 0.1) / (jnp.sqrt(v / 0.001) + 1e-8)
        np.testing.assert_allclose(f1, f0 - 1e-2 * step, rtol=1e-12, atol=1e-14)


def test_numerical_rank_fig7_threshold():
    k = jax.random.split(jax.random.key(0), 2)
    u = jnp.linalg.qr(jax.random.normal(k[0], (20, 20)))[0]
    v = jnp.linalg.qr(jax.random.normal(k[1], (10, 10)))[0]
    s = jnp.array([1.0, 0.5, 1e-3, 1e-5, 2e-7, 5e-9, 0, 0, 0, 0])
    a = u[:, :10] @ jnp.diag(s) @ v.T
    # float32 reading: threshold max(1e-8, 20 * 1 * 1.19e-7 = 2.4e-6): four values above
    assert lt.deep_lora.numerical_rank(a) == 4
    # float64 reading: the 1e-8 floor dominates: five values above
    assert lt.deep_lora.numerical_rank(a, machine_eps=lt.EPS) == 5
    assert lt.deep_lora.numerical_rank(jnp.zeros((3, 4))) == 0
    assert lt.deep_lora.numerical_rank(1e-9 * jnp.eye(3)) == 0  # below the absolute floor
    sv = np.asarray(jnp.linalg.svd(a, compute_uv=False))
    assert dl.rank_from_singular_values(sv, a.shape) == 4
    # cross-check against NumPy's matrix_rank with the same tolerance
    tol = max(1e-8, 20 * float(sv[0]) * dl.FLOAT32_EPS)
    assert np.linalg.matrix_rank(np.asarray(a), tol=tol) == 4


def test_bad_input_raises_clear_errors():
    p = _params()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="not a path"):
        lt.lora_adapters(p, ["layer9/w"], 2, 1.0, key)
    with pytest.raises(ValueError, match=r"r .*must be <="):
        lt.lora_adapters(p, ["layer2/w"], 6, 1.0, key)
    with pytest.raises(ValueError, match="alpha"):
        lt.lora_adapters(p, ["layer1/w"], 2, 0.0, key)
    with pytest.raises(ValueError, match="non-empty sequence"):
        lt.lora_adapters(p, "layer1/w", 2, 1.0, key)
    with pytest.raises(ValueError, match="duplicates"):
        lt.lora_adapters(p, ["layer1/w", "layer1/w"], 2, 1.0, key)
    with pytest.raises(ValueError, match="matrix"):
        lt.lora_adapters(p, ["layer1/b"], 1, 1.0, key)
    bad = {"w": jnp.full((4, 4), jnp.nan)}
    with pytest.raises(ValueError, match="NaN"):
        lt.lora_adapters(bad, ["w"], 1, 1.0, key)
    with pytest.raises(ValueError, match="loss_fn"):
        lt.deep_lora_adapters(p, ["layer1/w"], 4, key)
    with pytest.raises(ValueError, match="even"):
        lt.deep_lora_adapters(p, ["layer1/w"], 3, key, loss_fn=_loss(p))
    with pytest.raises(ValueError, match="eps"):
        lt.deep_lora_adapters(p, ["layer1/w"], 4, key, eps=0.0, loss_fn=_loss(p))
    with pytest.raises(ValueError, match="depth"):
        lt.deep_lora_adapters(p, ["layer1/w"], 4, key, depth=1, loss_fn=_loss(p))
    with pytest.raises(ValueError, match="unknown task"):
        models.get_task("mnist")
    tiny = SimpleNamespace(x_pool=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="n must be"):
        models.few_shot(tiny, "lora", 11, 1)
    with pytest.raises(ValueError, match="seeds must be non-empty"):
        models.few_shot(tiny, "lora", 5, [])
    with pytest.raises(ValueError, match="unknown method"):
        models.few_shot(tiny, "adapter", 16, 1)


def test_dense_paths_and_counts():
    p = _params()
    assert dl.dense_paths(p) == TARGETS
    ad = lt.deep_lora_adapters(p, TARGETS, 4, jax.random.key(0), loss_fn=_loss(p))
    lo = lt.lora_adapters(p, TARGETS, 4, 1.0, jax.random.key(0))
    # Deep LoRA = LoRA + 3 r^2 per adapted matrix (Section 4.1)
    assert dl.n_trainable(ad) - dl.n_trainable(lo) == 3 * 4**2 * len(TARGETS)


_MULTI = """
import json, sys
sys.path.insert(0, {root!r})
import jax, numpy as np
from lowrank_theory.dmf import models
task = models.get_task("teacher")
out = models.few_shot(task, "deep", 16, [0, 1, 2], steps=10, lr=1e-2)
alone = models.few_shot(task, "deep", 16, [2], steps=10, lr=1e-2)
print(json.dumps({{"devices": jax.device_count(), "metric": out["metric"].tolist(),
                  "loss": out["losses"][:, -1].tolist(), "alone": alone["metric"].tolist()}}))
"""


@pytest.mark.slow
def test_multi_device_path_matches_single_device():
    """Seeds sharded over 4 forced host devices give the same numbers as 1 device."""
    res = {}
    for n_dev in (1, 4):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_dev}")
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.run(
            [sys.executable, "-c", _MULTI.format(root=str(ROOT))],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        res[n_dev] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res[1]["devices"] == 1 and res[4]["devices"] == 4
    np.testing.assert_allclose(res[4]["metric"], res[1]["metric"], rtol=1e-9)
    np.testing.assert_allclose(res[4]["loss"], res[1]["loss"], rtol=1e-9)
    # vmap over seeds: a seed's result does not depend on the other seeds in the batch
    for n_dev in (1, 4):
        np.testing.assert_allclose(res[n_dev]["alone"][0], res[n_dev]["metric"][2], rtol=1e-9)


def test_every_config_of_the_figure_fits_its_tasks_pools():
    """Each n of the quick, default and paper-scale (FULL=1) configs of ``deep-lora`` is at most
    the task's adaptation pool (the FULL config once asked for n = 512 of digits' 449)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "experiments" / "fig_deep_lora.py"
    spec = importlib.util.spec_from_file_location("fig_deep_lora_cfg", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    for cfg in (mod.Config.quick(), mod.Config(), mod.Config.full()):
        for name in cfg.tasks:
            pool = int(models.get_task(name).x_pool.shape[0])
            assert max((*cfg.ns, cfg.ablation_n)) <= pool, (name, cfg.ns, pool)
