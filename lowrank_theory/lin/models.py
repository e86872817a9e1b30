r"""Small tanh MLPs and tasks for the linearization / NTK experiments of seed 003.

Not to be confused with :mod:`lowrank_theory.dmf.models` (pre-trained models and few-shot tasks
for Deep LoRA, seed 004): this module serves the paper on linearization of fine-tuning and NTK
regression (seed 003, claims ``lin.*``, figures ``lin-lambda``, ``lin-condition``,
``lin-layers``).

Every model here is a callable ``f(params, x)`` mapping one input ``x`` (shape ``(d,)``) to a
scalar, so it can be handed to :func:`lowrank_theory.lin.ntk.empirical_ntk` and
:func:`lowrank_theory.lin.linearization.regularized_finetune` like any other JAX function. In
addition each model has a ``structured_ntk(params, x1, x2)`` method that computes the empirical
NTK of its trainable parameters *without materialising a Jacobian*: for a dense layer
$z_l = h_{l-1} W_l + b_l$ the Jacobian of $f$ with respect to $W_l$ is the outer product
$h_{l-1}(x)\otimes\delta_l(x)$, $\delta_l = \partial f/\partial z_l$, so that layer's kernel block is

$$K_l(x, x') = \big(h_{l-1}(x)\cdot h_{l-1}(x')\big)\big(\delta_l(x)\cdot\delta_l(x')\big)
+ \underbrace{\delta_l(x)\cdot\delta_l(x')}_{\text{bias}}.$$

For LoRA factors $z_l = h W_l + b_l + (hA)B$ ($A\in\mathbb R^{d_{in}\times r}$,
$B\in\mathbb R^{r\times d_{out}}$): $K_B = (hA\cdot h'A)(\delta\cdot\delta')$ and
$K_A = (h\cdot h')(\delta B^\top\cdot\delta' B^\top)$.

:func:`lowrank_theory.lin.ntk.empirical_ntk` uses ``structured_ntk`` automatically when the model
has one.

Parameters of :class:`MLP` are a list of ``{"W": (d_in, d_out), "b": (d_out,)}`` dicts; hidden
layers use ``tanh``, the last layer is linear with one output.

The tasks (:func:`digits_tasks`, :func:`synthetic_tasks`, :func:`pretrained_task`) download
nothing: scikit-learn ships the digits data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..core.precision import require_x64
from ..core.validation import check_float, check_int, check_sizes

__all__ = [
    "MLP",
    "TASKS",
    "LayerSubset",
    "LoRALayer",
    "Params",
    "digits_tasks",
    "layer_masked_ntk",
    "mlp_apply",
    "mlp_init",
    "pretrain",
    "pretrained_task",
    "synthetic_tasks",
]

Params = list[dict[str, Array]]

#: The two tasks of the figures, in the order their keys are folded in (``fold_in(key, i)``).
TASKS = ("digits", "synthetic")


def mlp_init(key, sizes: Sequence[int], *, scale: float = 1.0) -> Params:
    r"""LeCun-normal initialisation $W_{ij}\sim\mathcal N(0, \text{scale}^2/d_{in})$, zero biases."""
    sizes = check_sizes(sizes, "sizes", min_len=2, lo=1)
    if sizes[-1] != 1:
        raise ValueError(f"sizes must be (d_in, ..., 1) with a scalar output, got {sizes}")
    scale = check_float(scale, "scale", lo=0.0, lo_open=True)
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {
            "W": scale * jax.random.normal(k, (a, b)) / math.sqrt(a),
            "b": jnp.zeros((b,)),
        }
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def _forward(params: Params, x, offsets=None, lora=None):
    """Returns (output, inputs h_{l-1} of every layer). ``offsets[l]`` is added to z_l."""
    h = x
    hs = []
    n = len(params)
    for i, p in enumerate(params):
        hs.append(h)
        z = h @ p["W"] + p["b"]
        if lora is not None and i == lora[0]:
            z = z + (h @ lora[1]["A"]) @ lora[1]["B"]
        if offsets is not None:
            z = z + offsets[i]
        h = jnp.tanh(z) if i < n - 1 else z
    return h[0], hs


def mlp_apply(params: Params, x: Float[Array, " d"]) -> Float[Array, ""]:
    """The MLP's scalar output for one input."""
    require_x64()
    return _forward(params, x)[0]


def _h_and_delta(params: Params, x, lora=None):
    """Per-example layer inputs h_{l-1}(x) and back-propagated deltas dF/dz_l, batched."""

    def one(xi):
        offs = [jnp.zeros((p["W"].shape[1],)) for p in params]
        (_, hs), deltas = jax.value_and_grad(lambda o: _forward(params, xi, o, lora), has_aux=True)(
            offs
        )
        return hs, deltas

    return jax.vmap(one)(x)


def _gram(a, b):
    return a @ b.T


@dataclass(frozen=True)
class MLP:
    r"""All parameters of a tanh MLP trainable: ``f(params, x)`` with ``params`` the full list."""

    def __call__(self, params: Params, x):
        return mlp_apply(params, x)

    def structured_ntk(self, params: Params, x1, x2):
        return _subset_kernel(params, x1, x2, tuple(range(len(params))))


@dataclass(frozen=True)
class LayerSubset:
    r"""Only the layers in ``layers`` are trainable; the others are frozen at ``base``.

    ``f(sub, x)`` takes ``sub`` = a dict ``{layer_index: {"W", "b"}}``; :meth:`init` returns the
    base values of the trainable layers.
    """

    base: Params = field(repr=False)
    layers: tuple[int, ...]

    def __post_init__(self):
        n = len(self.base)
        bad = [
            i
            for i in self.layers
            if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n
        ]
        if not self.layers or bad:
            raise ValueError(
                f"layers must be a non-empty tuple of layer indices in [0, {n}), got {self.layers}"
            )

    def init(self) -> dict[int, dict[str, Array]]:
        return {i: dict(self.base[i]) for i in self.layers}

    def merge(self, sub) -> Params:
        return [sub[i] if i in sub else p for i, p in enumerate(self.base)]

    def __call__(self, sub, x):
        return mlp_apply(self.merge(sub), x)

    def structured_ntk(self, sub, x1, x2):
        return _subset_kernel(self.merge(sub), x1, x2, self.layers)


@jax.jit
def layer_masked_ntk(
    params: Params,
    x1: Float[Array, "n d"],
    x2: Float[Array, "m d"],
    mask: Float[Array, " L"],
) -> Float[Array, "n m"]:
    r"""Structured empirical NTK of an :class:`MLP` with layer ``l`` weighted by ``mask[l]``.

    $$K(x, x') = \sum_l \mathrm{mask}_l\big[(h_{l-1}(x)\cdot h_{l-1}(x'))(\delta_l(x)\cdot
    \delta_l(x')) + \delta_l(x)\cdot\delta_l(x')\big]$$

    (module docstring): with a 0/1 mask, the NTK of the weights and biases of the layers whose
    entry is 1, the others frozen; no Jacobian is formed. One jitted function for every subset
    (the mask is an argument, not a constant), behind :meth:`MLP.structured_ntk` and
    :meth:`LayerSubset.structured_ntk`.
    """
    if mask.shape != (len(params),):
        raise ValueError(
            f"mask must have one weight per layer, shape ({len(params)},), got {mask.shape}"
        )
    h1, d1 = _h_and_delta(params, x1)
    h2, d2 = _h_and_delta(params, x2)
    k = jnp.zeros((x1.shape[0], x2.shape[0]))
    for i in range(len(params)):
        dd = _gram(d1[i], d2[i])
        k = k + mask[i] * (_gram(h1[i], h2[i]) * dd + dd)
    return k


def _subset_kernel(params, x1, x2, layers):
    mask = jnp.array([1.0 if i in layers else 0.0 for i in range(len(params))])
    return layer_masked_ntk(params, x1, x2, mask)


@dataclass(frozen=True)
class LoRALayer:
    r"""LoRA factors on layer ``layer`` of a frozen MLP: $W_l \to W_l + AB$, rank ``rank``.

    ``f(ab, x)`` takes ``ab = {"A": (d_in, r), "B": (r, d_out)}``. :meth:`init` draws
    $A\sim\mathcal N(0, 1/d_{in})$ and $B = 0$ (the usual LoRA start: the function equals the
    frozen model) unless ``b_scale > 0``.
    """

    base: Params = field(repr=False)
    layer: int
    rank: int

    def __post_init__(self):
        check_int(self.layer, "layer", lo=0, hi=len(self.base) - 1)
        check_int(self.rank, "rank", lo=1)

    def init(self, key, b_scale: float = 0.0) -> dict[str, Array]:
        d_in, d_out = self.base[self.layer]["W"].shape
        ka, kb = jax.random.split(key)
        return {
            "A": jax.random.normal(ka, (d_in, self.rank)) / math.sqrt(d_in),
            "B": b_scale * jax.random.normal(kb, (self.rank, d_out)) / math.sqrt(self.rank),
        }

    def __call__(self, ab, x):
        return _forward(self.base, x, lora=(self.layer, ab))[0]

    def structured_ntk(self, ab, x1, x2):
        return _lora_kernel(self.base, ab, x1, x2, self.layer)


def _lora_kernel(base, ab, x1, x2, layer):
    return _lora_jit(layer)(base, ab, x1, x2)


_LORA_CACHE: dict[int, object] = {}


def _lora_jit(layer: int):
    if layer not in _LORA_CACHE:

        def k(base, ab, x1, x2):
            h1, d1 = _h_and_delta(base, x1, (layer, ab))
            h2, d2 = _h_and_delta(base, x2, (layer, ab))
            ha1, ha2 = h1[layer] @ ab["A"], h2[layer] @ ab["A"]
            db1, db2 = d1[layer] @ ab["B"].T, d2[layer] @ ab["B"].T
            return _gram(ha1, ha2) * _gram(d1[layer], d2[layer]) + _gram(
                h1[layer], h2[layer]
            ) * _gram(db1, db2)

        _LORA_CACHE[layer] = jax.jit(k)
    return _LORA_CACHE[layer]


# --------------------------------------------------------------------------------------------
# tasks for the figures: nothing downloaded (scikit-learn ships the digits data)
# --------------------------------------------------------------------------------------------
def digits_tasks(key, n_pre: int, n_train: int, n_test: int):
    r"""scikit-learn's ``load_digits`` (8x8 images, scaled to [0, 1]) as two +-1 tasks.

    Pre-training task: digit $< 5$; fine-tuning task: digit even. Disjoint random splits
    (``n_pre``, ``n_train``, ``n_test`` rows) drawn with ``key``.
    """
    from sklearn.datasets import load_digits

    for name, v in (("n_pre", n_pre), ("n_train", n_train), ("n_test", n_test)):
        check_int(v, name, lo=1)
    d = load_digits()
    x = jnp.asarray(d.data / 16.0)
    lab = jnp.asarray(d.target)
    perm = jax.random.permutation(key, x.shape[0])
    if n_pre + n_train + n_test > x.shape[0]:
        raise ValueError("not enough digits for the requested splits")
    ip, it, ie = (
        perm[:n_pre],
        perm[n_pre : n_pre + n_train],
        perm[n_pre + n_train : n_pre + n_train + n_test],
    )
    ya = jnp.where(lab < 5, 1.0, -1.0)
    yb = jnp.where(lab % 2 == 0, 1.0, -1.0)
    return {
        "pre": (x[ip], ya[ip]),
        "train": (x[it], yb[it]),
        "test": (x[ie], yb[ie]),
    }


def synthetic_tasks(key, d: int, n_pre: int, n_train: int, n_test: int):
    r"""Gaussian inputs $x\sim\mathcal N(0, I_d)$; pre-training target $\sin(w_1\cdot x)$,
    fine-tuning target $\sin(w_1\cdot x) + \tfrac12\cos(w_2\cdot x)$ with $\|w_i\| = 1$."""
    check_int(d, "d", lo=1)
    for name, v in (("n_pre", n_pre), ("n_train", n_train), ("n_test", n_test)):
        check_int(v, name, lo=1)
    k1, k2, k3 = jax.random.split(key, 3)
    w = jax.random.normal(k1, (2, d))
    w = w / jnp.linalg.norm(w, axis=1, keepdims=True)
    x = jax.random.normal(k2, (n_pre + n_train + n_test, d))
    ya = jnp.sin(x @ w[0])
    yb = ya + 0.5 * jnp.cos(x @ w[1]) + 0.05 * jax.random.normal(k3, (x.shape[0],))
    a, b = n_pre, n_pre + n_train
    return {"pre": (x[:a], ya[:a]), "train": (x[a:b], yb[a:b]), "test": (x[b:], yb[b:])}


def pretrain(params: Params, x, y, *, steps: int, lr: float = 1e-2) -> Params:
    r"""Adam (optax) on the mean squared error $\frac1n\|f(x)-y\|^2$, one jitted ``lax.scan``."""
    import optax

    steps = check_int(steps, "steps", lo=0)
    lr = check_float(lr, "lr", lo=0.0, lo_open=True)

    opt = optax.adam(lr)

    def loss(p):
        return jnp.mean((jax.vmap(lambda xi: mlp_apply(p, xi))(x) - y) ** 2)

    @jax.jit
    def run(p):
        def body(c, _):
            p, s = c
            g = jax.grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(body, (p, opt.init(p)), None, length=steps)
        return p

    return run(params)


def pretrained_task(
    key,
    task: str,
    *,
    hidden: Sequence[int],
    n_pre: int,
    n_train: int,
    n_test: int,
    pre_steps: int,
    synthetic_dim: int = 8,
):
    r"""The splits of ``task`` and an MLP ``(d, *hidden, 1)`` pre-trained on its ``"pre"`` split.

    ``task`` is ``"digits"`` (:func:`digits_tasks`, $d = 64$) or ``"synthetic"``
    (:func:`synthetic_tasks`, $d$ = ``synthetic_dim``). ``key`` is split in two: the first half
    draws the data, the second the initialisation (:func:`mlp_init`), which :func:`pretrain`
    (Adam, ``pre_steps`` steps) moves to $\theta_0$. Returns ``(data, params0)``.
    """
    k1, k2 = jax.random.split(key)
    if task == "digits":
        data, d = digits_tasks(k1, n_pre, n_train, n_test), 64
    elif task == "synthetic":
        data, d = synthetic_tasks(k1, synthetic_dim, n_pre, n_train, n_test), synthetic_dim
    else:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    p0 = pretrain(mlp_init(k2, (d, *hidden, 1)), *data["pre"], steps=pre_steps)
    return data, p0
