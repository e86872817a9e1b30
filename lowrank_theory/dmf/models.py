r"""Small pre-trained models and few-shot adaptation tasks for Deep LoRA (seed 004, Section 4).

The paper adapts BERT-base to GLUE/STS-B; this module makes the same experiment small enough
for a 2-core CPU, with nothing downloaded:

* ``"digits"`` (real data): scikit-learn's bundled 8x8 handwritten digits (1797 images). An
  MLP $64\to64\to64\to10$ (tanh) is *pre-trained* here on the digits (source task) and then
  adapted few-shot to a related task: the same ten classes on *transposed* images (the strokes
  are the same, their layout differs; the pre-trained model is far from solving it).
  Metric: validation accuracy.
* ``"teacher"`` (synthetic): a random tanh MLP $32\to64\to64\to1$ is the pre-trained model
  (its own source task solved exactly); the target task is the same network with a rank-$r_*$
  perturbation added to each hidden weight (the low-rank fine-tuning structure LoRA assumes),
  Gaussian inputs and label noise. Metric: validation $R^2$.

:func:`few_shot` runs one method for many seeds at once: ``jax.vmap`` over seeds, and
``jit`` with the seed axis sharded over a device mesh (GSPMD) when several devices exist (``XLA_FLAGS=
--xla_force_host_platform_device_count=4`` on CPU gives the same numbers).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.precision import DTYPE
from ..core.validation import check_int, check_sizes
from . import deep_lora as dl

__all__ = [
    "METHODS",
    "Task",
    "cross_entropy",
    "digits_task",
    "few_shot",
    "get_task",
    "mlp_apply",
    "mlp_init",
    "mse",
    "run_seeds",
    "teacher_task",
]


# ------------------------------------------------------------------------- model
def mlp_init(key, sizes: Sequence[int]) -> dict:
    """Parameters ``{"layer{i}": {"w": (out, in), "b": (out,)}}`` with LeCun-normal weights."""
    sizes = check_sizes(sizes, "sizes", min_len=2, lo=1)
    keys = jax.random.split(key, len(sizes) - 1)
    return {
        f"layer{i}": {
            "w": jax.random.normal(k, (o, n), DTYPE) / math.sqrt(n),
            "b": jnp.zeros((o,), DTYPE),
        }
        for i, (k, n, o) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    }


def mlp_apply(params: dict, x):
    """Forward pass, tanh hidden activations, rows of ``x`` are samples."""
    n = len(params)
    h = x
    for i in range(n):
        lay = params[f"layer{i}"]
        h = h @ lay["w"].T + lay["b"][None, :]
        if i < n - 1:
            h = jnp.tanh(h)
    return h


def cross_entropy(logits, y):
    """Mean softmax cross-entropy with integer labels."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def mse(pred, y):
    """Mean squared error of a scalar output."""
    return jnp.mean((pred[:, 0] - y) ** 2)


@dataclasses.dataclass(frozen=True)
class Task:
    """A pre-trained model and a few-shot target task (arrays are float64 NumPy/JAX)."""

    name: str
    params: dict
    targets: tuple[str, ...]
    x_pool: Any
    y_pool: Any
    x_val: Any
    y_val: Any
    kind: str  # "classification" | "regression"
    metric_name: str
    pretrained_metric: float

    def loss(self, params, x, y):
        out = mlp_apply(params, x)
        return cross_entropy(out, y) if self.kind == "classification" else mse(out, y)

    def metric(self, params):
        out = mlp_apply(params, self.x_val)
        if self.kind == "classification":
            return jnp.mean((jnp.argmax(out, axis=1) == self.y_val).astype(DTYPE))
        resid = jnp.mean((out[:, 0] - self.y_val) ** 2)
        return 1.0 - resid / jnp.var(self.y_val)


def _adam_fit(params, loss, steps, lr):
    import optax

    opt = optax.adam(lr)

    def step(carry, _):
        p, s = carry
        val, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), val

    (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, steps)
    return p


@functools.lru_cache(maxsize=4)
def digits_task(seed: int = 0, hidden: int = 64, pretrain_steps: int = 400) -> Task:
    """Digits: pre-train on the images, adapt to transposed images (see the module docstring)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = np.asarray(data.data, DTYPE) / 16.0
    y = np.asarray(data.target, np.int32)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    src, tgt = perm[: len(y) // 2], perm[len(y) // 2 :]
    mean = x.mean(0)
    xs = x - mean[None, :]
    img = x.reshape(-1, 8, 8)
    shifted = np.zeros_like(img)
    shifted[:, :, 1:] = img[:, :, :-1]  # every image moved one pixel to the right
    xt = shifted.reshape(-1, 64) - mean[None, :]
    params = mlp_init(jax.random.key(seed), (64, hidden, hidden, 10))
    params = _adam_fit(
        params,
        lambda p: cross_entropy(mlp_apply(p, xs[src]), y[src]),
        pretrain_steps,
        3e-3,
    )
    pool, val = tgt[: len(tgt) // 2], tgt[len(tgt) // 2 :]
    t = Task(
        "digits",
        params,
        ("layer0/w", "layer1/w"),
        jnp.asarray(xt[pool]),
        jnp.asarray(y[pool]),
        jnp.asarray(xt[val]),
        jnp.asarray(y[val]),
        "classification",
        "validation accuracy",
        0.0,
    )
    return dataclasses.replace(t, pretrained_metric=float(t.metric(params)))


@functools.lru_cache(maxsize=4)
def teacher_task(
    seed: int = 0,
    d_in: int = 32,
    hidden: int = 64,
    true_rank: int = 2,
    shift: float = 3.0,
    noise: float = 0.1,
    pool: int = 512,
    val: int = 2048,
) -> Task:
    r"""Synthetic: target = pre-trained net with rank-``true_rank`` shifts of norm ``shift``."""
    keys = jax.random.split(jax.random.key(10_000 + seed), 8)
    params = mlp_init(keys[0], (d_in, hidden, hidden, 1))
    targets = ("layer0/w", "layer1/w")
    shifted = params
    for i, t in enumerate(targets):
        w = dl.get_path(params, t)
        m, n = w.shape
        a = jax.random.normal(keys[1 + 2 * i], (m, true_rank), DTYPE)
        b = jax.random.normal(keys[2 + 2 * i], (true_rank, n), DTYPE)
        dw = a @ b
        dw = shift * dw / jnp.linalg.norm(dw, 2)
        shifted = dl.set_path(shifted, t, w + dw)
    x = jax.random.normal(keys[5], (pool + val, d_in), DTYPE)
    y = mlp_apply(shifted, x)[:, 0]
    y = y + noise * jnp.std(y) * jax.random.normal(keys[6], y.shape, DTYPE)
    t = Task(
        "teacher",
        params,
        targets,
        x[:pool],
        y[:pool],
        x[pool:],
        y[pool:],
        "regression",
        r"validation $R^2$",
        0.0,
    )
    return dataclasses.replace(t, pretrained_metric=float(t.metric(params)))


def get_task(name: str, seed: int = 0) -> Task:
    """``"digits"`` or ``"teacher"``."""
    if name == "digits":
        return digits_task(seed)
    if name == "teacher":
        return teacher_task(seed)
    raise ValueError(f"unknown task {name!r}; choose 'digits' or 'teacher'")


# ------------------------------------------------------------------------- few-shot runs
METHODS = ("lora", "deep", "full", "narrow")


def _one_seed(
    task: Task, method: str, n: int, r: int, steps: int, lr, gamma, alpha, eps, depth, key
):
    k_data, k_init = jax.random.split(key)
    idx = jax.random.choice(k_data, task.x_pool.shape[0], (n,), replace=False)
    x, y = task.x_pool[idx], task.y_pool[idx]

    def loss_fn(p):
        return task.loss(p, x, y)

    if method == "lora":
        ad = dl.lora_adapters(task.params, task.targets, r, alpha, k_init)
    elif method == "deep":
        ad = dl.deep_lora_adapters(
            task.params, task.targets, r, k_init, eps, depth, loss_fn=loss_fn
        )
    elif method == "full":
        ad = dl.full_width_adapters(task.params, task.targets, k_init, eps, depth)
    elif method == "narrow":
        ad = dl.narrow_adapters(task.params, task.targets, r, k_init, eps, depth)
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    ad, losses = dl.train(task.params, ad, loss_fn, steps, lr, gamma)
    merged = dl.merge(task.params, ad)
    # singular values are taken on the host (NumPy): an in-graph batched SVD is one more LAPACK
    # custom call inside the vmapped program, see the note on XLA_FLAGS in few_shot
    deltas = {p: dl.delta(a) for p, a in ad.items()}
    return {"metric": task.metric(merged), "losses": losses, "deltas": deltas}


def run_seeds(fn: Callable, keys, *args) -> Any:
    """``vmap(fn)(keys, *args)`` over the leading axis of ``keys`` (``args`` broadcast), sharded
    over all devices when several exist.

    The key batch is padded to a multiple of the device count and the padding dropped again, so
    the numbers do not depend on how many devices ran them.
    """
    return _compiled_seeds(fn, len(args))(keys, *args)


_SEED_FNS: dict = {}


def _compiled_seeds(fn: Callable, n_args: int) -> Callable:
    n_dev = jax.device_count()
    batched = jax.vmap(fn, in_axes=(0,) + (None,) * n_args)
    if n_dev == 1:
        return jax.jit(batched)
    mesh = jax.make_mesh((n_dev,), ("seeds",), axis_types=(jax.sharding.AxisType.Auto,))
    spec = jax.sharding.PartitionSpec("seeds")
    rep = jax.sharding.PartitionSpec()
    # jit partitions the vmapped program along the seed axis from the input shardings (GSPMD)
    sharded = jax.jit(batched)

    def call(keys, *args):
        n = keys.shape[0]
        pad = (-n) % n_dev
        if pad:  # repeat seeds cyclically to fill every device; dropped below
            keys = keys[np.arange(n + pad) % n]
        keys = jax.device_put(keys, jax.sharding.NamedSharding(mesh, spec))
        args = [jax.device_put(a, jax.sharding.NamedSharding(mesh, rep)) for a in args]
        out = sharded(keys, *args)
        return jax.tree_util.tree_map(lambda a: np.asarray(a)[:n], out)

    return call


def few_shot(
    task: Task,
    method: str,
    n: int,
    seeds: Sequence[int] | int,
    *,
    r: int = 8,
    steps: int = 300,
    lr: float = 1e-3,
    gamma: float = 1e-2,
    alpha: float = 8.0,
    eps: float = 1e-3,
    depth: int = 3,
) -> dict:
    r"""Few-shot fine-tuning of ``task`` with ``method`` for each seed (vectorised).

    Each seed draws ``n`` training samples from the task's pool (without replacement), builds the
    adapters, runs ``steps`` full-batch Adam steps and evaluates on the validation split.

    Note: on CPU (jax 0.10.2) the ``"deep"`` program deadlocks under XLA's concurrency-optimized
    scheduler; the package turns that scheduler off on import (see
    :mod:`lowrank_theory.core.precision`), so import :mod:`lowrank_theory` before JAX starts.

    Returns:
        NumPy arrays: ``metric`` (seeds,), ``losses`` (seeds, steps), ``svals`` ``{path: (seeds,
        k)}`` singular values of each $\Delta W$, and ``ranks`` ``{path: (seeds,)}`` (Fig. 7).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    n = check_int(n, "n", lo=1, hi=int(task.x_pool.shape[0]))
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds must be non-empty")
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    # one compiled program per (task, method, shapes, static settings); lr is a traced argument,
    # so learning-rate grids and repeated calls reuse it
    ck = (id(task), method, n, r, steps, float(gamma), float(alpha), float(eps), depth)
    if ck not in _SEED_FNS:

        def fn(key, lr_):
            return _one_seed(task, method, n, r, steps, lr_, gamma, alpha, eps, depth, key)

        _SEED_FNS[ck] = _compiled_seeds(fn, 1)
    out = _SEED_FNS[ck](keys, jnp.asarray(lr, DTYPE))
    out = jax.tree_util.tree_map(np.asarray, out)
    out["svals"] = {p: np.linalg.svd(d, compute_uv=False) for p, d in out.pop("deltas").items()}
    shapes = {p: tuple(dl.get_path(task.params, p).shape) for p in task.targets}
    out["ranks"] = {
        p: np.array([dl.rank_from_singular_values(s, shapes[p]) for s in sv])
        for p, sv in out["svals"].items()
    }
    return out
