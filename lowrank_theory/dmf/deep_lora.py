r"""Deep LoRA: compressed deep overparameterized adapters for the dense weights of a JAX model.

Seed 004 (Yaras et al., *Compressible dynamics in deep overparameterized low-rank learning &
adaptation*), Section 4, Appendix B and Appendix D.2. For a frozen pre-trained weight
$W_0\in\mathbb{R}^{m\times n}$ (a leaf of a parameter pytree, acting as $x\mapsto W x$):

* **vanilla LoRA** (Section 4.1): $W = W_0 + \frac{\alpha}{r}W^{(2)}W^{(1)}$ with
  $W^{(2)}\in\mathbb{R}^{m\times r}$ initialised to zero and $W^{(1)}\in\mathbb{R}^{r\times n}$
  Gaussian with standard deviation 1 (Appendix B);
* **full-width deep adapter** (12): $W = W_0 + W^{(L)}\cdots W^{(1)}$, each factor of width
  $w=\max(m,n)$, orthogonal initialisation of scale $\varepsilon$ ($W^{(l)}(0)=\varepsilon O_l$,
  $O_l$ Haar (semi-)orthogonal); Appendix D.2's *Original*;
* **Deep LoRA** (Section 4.1, "compress the learning dynamics for each individual weight"): the
  width-$r$ compression of that factorization (the Section 2.3 recipe at width $r = 2\hat r$),
  $$\Delta W = U_{L,1}\,\widetilde W_L\cdots\widetilde W_1\,V_{1,1}^\top,\qquad
  \widetilde W_l(0)=\varepsilon I_r,$$
  with the outer factors $U_{L,1}\in\mathbb{R}^{m\times r}$, $V_{1,1}\in\mathbb{R}^{n\times r}$
  built from the gradient $G_1=\nabla_{W^{(1)}}\ell(\Theta(0))$ of the full-width factorization at
  initialisation, and trained at the discrepant rate $\gamma\eta$ (as in (11)); D.2's
  *Compressed*;
* **random narrow** (Appendix D.2's *Random*): a depth-$L$ factorization of width $r$
  ($W^{(1)}\in\mathbb{R}^{r\times n}$, $W^{(l)}\in\mathbb{R}^{r\times r}$,
  $W^{(L)}\in\mathbb{R}^{m\times r}$) with the same orthogonal initialisation of scale
  $\varepsilon$, all factors at rate $\eta$.

Every adapter is an :class:`Adapter`: a chain of factors $F_1,\dots,F_k$ with
$\Delta W = s\,F_k\cdots F_1$, a static scale $s$, and a static per-factor flag saying which
factors are the *outer* ones (trained at $\gamma\eta$ by :func:`optimizer`). Adapters are
pytrees, so ``jax.grad``/``vmap``/``jit`` and optax work on a ``{path: Adapter}`` dict directly.

Compression (Section 2.3, "Constructing the factors"): with $W^{(1)}(0)=\varepsilon O_1$ and
$h=r/2$, let $G_1 = P\Sigma Q^\top$ (SVD). The approximate invariant subspace is
$\mathcal S=\mathcal N_h(G_1)\cap\mathcal N_h(G_1^\top W^{(1)}(0))$, where $\mathcal N_h$ drops the
top $h$ singular directions; its orthogonal complement is
$$\mathcal S^\perp=\operatorname{span}\big(Q_{:,1:h}\big)+\operatorname{span}\big(O_1^\top
P_{:,1:h}\big),$$
so $V_{1,1}$ is an orthonormal basis of $\mathcal S^\perp$ ($n\times r$), and
$U_{L,1}=W^{(L)}(0)\cdots W^{(1)}(0)V_{1,1}/\varepsilon^L$ (the recursion
$U_l=W_l(0)V_l/\varepsilon$, $V_{l+1}=U_l$). For $m<n$ the same is done on the transposed
factorization (the roles of $U$ and $V$ swap), so that $U_{L,1}$ has orthonormal columns.
This is the construction of the authors' reference implementation, written as the span above.
The factorization helpers here are self-contained (:func:`orthogonal_factors`,
:func:`compress_factors`) so they can later be swapped for :mod:`lowrank_theory.dmf.factorization`.

Numerical rank (Fig. 7's caption): the number of singular values of $\Delta W$ above both
$10^{-8}$ and $d\,\sigma_1\,\epsilon_{\mathrm{mach}}$, $d=\max(m,n)$. The paper trained in float32
(JAX's default), so ``machine_eps`` defaults to float32's $2^{-23}$; this package computes in
float64, and ``machine_eps=EPS`` gives the float64 reading (the $10^{-8}$ floor then dominates).

References:
    Seed 004, Section 2.3 (compression recipe, (8)-(9)), Section 3 ((11), discrepant rate
    $\gamma\eta$), Section 4.1 (LoRA, (12)), Fig. 7 caption (numerical rank), Appendix B
    (initialisation, Adam, $\eta$, $\alpha$, $\gamma$), Appendix D.2 (Original / Compressed /
    Random).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.linalg import chain_product, random_semi_orthogonal
from ..core.precision import DTYPE
from ..core.validation import check_int
from .spectra import RANK_FLOOR as RANK_FLOOR  # Fig. 7's absolute floor
from .spectra import numerical_rank_fig7, rank_fig7_from_singular_values

__all__ = [
    "FLOAT32_EPS",
    "RANK_FLOOR",
    "Adapter",
    "compress_factors",
    "deep_lora_adapters",
    "delta",
    "dense_paths",
    "full_width_adapters",
    "get_path",
    "lora_adapters",
    "merge",
    "n_trainable",
    "narrow_adapters",
    "numerical_rank",
    "optimizer",
    "orthogonal_factors",
    "param_labels",
    "rank_from_singular_values",
    "set_path",
    "train",
]

#: machine epsilon of the paper's float32 training (Fig. 7's $\epsilon$ reading by default).
FLOAT32_EPS = float(np.finfo(np.float32).eps)

Params = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Adapter:
    r"""One adapted weight: $\Delta W = s\,F_k\cdots F_1$ (``factors = (F_1, ..., F_k)``).

    Attributes:
        factors: the trainable chain, first factor applied first (rightmost in the product).
        scale: static multiplier $s$ ($\alpha/r$ for LoRA, 1 for deep adapters).
        outer: static per-factor flags; ``True`` marks Deep LoRA's $U_{L,1}$, $V_{1,1}^\top$,
            trained at the discrepant rate $\gamma\eta$.
        kind: ``"lora"``, ``"deep"`` (compressed), ``"full"`` or ``"narrow"``.
    """

    factors: tuple[Array, ...]
    scale: float = 1.0
    outer: tuple[bool, ...] = ()
    kind: str = "lora"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.factors[-1].shape[-2], self.factors[0].shape[-1])


jax.tree_util.register_dataclass(
    Adapter, data_fields=["factors"], meta_fields=["scale", "outer", "kind"]
)

Adapters = dict[str, Adapter]


# ------------------------------------------------------------------------- pytree paths
def get_path(params: Params, path: str) -> Any:
    """The leaf of a nested-dict pytree at ``"a/b/c"`` (ValueError if there is none)."""
    node: Any = params
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"target {path!r} is not a path in params (failed at {part!r})")
        node = node[part]
    return node


def set_path(params: Params, path: str, value: Any) -> dict:
    """A copy of ``params`` with the leaf at ``"a/b/c"`` replaced by ``value`` (the dicts on
    the path are copied, everything else shared)."""
    head, _, rest = path.partition("/")
    out = dict(params)
    out[head] = value if not rest else set_path(params[head], rest, value)
    return out


def dense_paths(params: Params, min_dim: int = 2) -> list[str]:
    """Every ``"a/b/c"`` path of a 2-D leaf with both sides at least ``min_dim`` (the default
    targets: all dense weight matrices)."""
    out = []

    def walk(node, prefix):
        if isinstance(node, Mapping):
            for k in sorted(node):
                walk(node[k], f"{prefix}/{k}" if prefix else str(k))
        elif getattr(node, "ndim", 0) == 2 and min(node.shape) >= min_dim:
            out.append(prefix)

    walk(params, "")
    return out


def _weights(params: Params, targets: Sequence[str]) -> dict[str, Array]:
    if isinstance(targets, str) or not isinstance(targets, Sequence) or len(targets) == 0:
        raise ValueError("targets must be a non-empty sequence of 'a/b' parameter paths")
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets has duplicates: {list(targets)}")
    return {t: _matrix(get_path(params, t), f"params[{t!r}]") for t in targets}


def _matrix(x, name: str):
    """:func:`as_matrix` outside tracing; inside ``jit``/``vmap`` only the shape is checked."""
    if isinstance(x, jax.core.Tracer):
        if x.ndim != 2 or x.size == 0:
            raise ValueError(f"{name} must be a non-empty matrix, got shape {x.shape}")
        return x
    try:
        a = np.asarray(x, dtype=DTYPE)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a real matrix: {e}") from e
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _check_rank(r, shape, path, name="r") -> int:
    return check_int(r, f"{name} (for {path}, shape {shape})", lo=1, hi=min(shape))


def _check_eps(eps) -> float:
    eps = float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps (initialisation scale) must be finite and > 0, got {eps}")
    return eps


# ------------------------------------------------------------------------- constructions
def lora_adapters(
    params: Params, targets: Sequence[str], r: int, alpha: float, key: Array
) -> Adapters:
    r"""Vanilla LoRA adapters $\frac{\alpha}{r}W^{(2)}W^{(1)}$, initialised as in Appendix B.

    Args:
        params: pytree (nested dicts) of the frozen pre-trained model.
        targets: ``"a/b"`` paths of the matrices to adapt (each $m\times n$, acting as $Wx$).
        r: LoRA rank, $1\le r\le\min(m,n)$.
        alpha: scale $\alpha>0$; the update is multiplied by $\alpha/r$.
        key: PRNG key; $W^{(1)}\sim\mathcal N(0,1)^{r\times n}$, $W^{(2)}=0$.

    Returns:
        ``{path: Adapter(factors=(W1, W2), scale=alpha/r, kind="lora")}``.
    """
    ws = _weights(params, targets)
    if not (math.isfinite(float(alpha)) and float(alpha) > 0):
        raise ValueError(f"alpha must be finite and > 0, got {alpha}")
    keys = jax.random.split(key, len(ws))
    out = {}
    for k, (path, w) in zip(keys, ws.items(), strict=True):
        m, n = w.shape
        r = _check_rank(r, w.shape, path)
        a = jax.random.normal(k, (r, n), dtype=DTYPE)
        out[path] = Adapter((a, jnp.zeros((m, r), DTYPE)), float(alpha) / r, (False, False), "lora")
    return out


def orthogonal_factors(
    key: Array, shape: tuple[int, int], depth: int, eps: float, width: int | None = None
) -> list[Array]:
    r"""Scaled orthogonal initialisation (3) of a depth-$L$ factorization of an $m\times n$ matrix.

    $W^{(1)}(0)\in\mathbb{R}^{w\times n}$, $W^{(l)}(0)\in\mathbb{R}^{w\times w}$,
    $W^{(L)}(0)\in\mathbb{R}^{m\times w}$, each $\varepsilon$ times a Haar (semi-)orthogonal matrix;
    width $w=\max(m,n)$ by default (full width, (12)) or ``width`` (a narrow factorization).
    Returned in application order $[W^{(1)},\dots,W^{(L)}]$.
    """
    m, n = shape
    depth = check_int(depth, "depth", lo=1)
    eps = _check_eps(eps)
    w = max(m, n) if width is None else check_int(width, "width", lo=1)
    if depth == 1:
        return [eps * random_semi_orthogonal(key, m, n)]
    keys = jax.random.split(key, depth)
    dims = [n] + [w] * (depth - 1) + [m]
    return [eps * random_semi_orthogonal(k, dims[i + 1], dims[i]) for i, k in enumerate(keys)]


def compress_factors(
    factors: Sequence[Array], grad_first: Array, r: int, eps: float
) -> tuple[Array, Array]:
    r"""Outer factors $(U_{L,1}, V_{1,1})$ of the width-$r$ compression (Section 2.3 recipe).

    Args:
        factors: the full-width factorization at initialisation, $[W^{(1)}(0),\dots,W^{(L)}(0)]$
            with $W^{(l)}(0)=\varepsilon O_l$, of an $m\times n$ product with $m\ge n$.
        grad_first: $G_1=\nabla_{W^{(1)}}\ell(\Theta(0))$, shape of $W^{(1)}$.
        r: compressed width, even ($r=2h$), $2\le r\le n$.
        eps: the initialisation scale $\varepsilon$.

    Returns:
        $U_{L,1}\in\mathbb{R}^{m\times r}$, $V_{1,1}\in\mathbb{R}^{n\times r}$ with orthonormal
        columns; $V_{1,1}$ spans $\operatorname{span}(Q_{:,1:h})+\operatorname{span}(O_1^\top
        P_{:,1:h})$ for $G_1=P\Sigma Q^\top$, and $U_{L,1} = W^{(L:1)}(0)V_{1,1}/\varepsilon^L$.
    """
    w1 = factors[0]
    h = r // 2
    p, _, qt = jnp.linalg.svd(grad_first, full_matrices=False)
    span = jnp.concatenate([qt[:h].T, w1.T @ p[:, :h] / eps], axis=1)  # n x 2h
    v, _, _ = jnp.linalg.svd(span, full_matrices=False)
    v = v[:, :r]
    u = chain_product([v, *factors]) / eps ** len(factors)
    return u, v


def full_width_adapters(
    params: Params, targets: Sequence[str], key: Array, eps: float = 1e-3, depth: int = 3
) -> Adapters:
    r"""The uncompressed deep adapter (12): full-width depth-$L$ factorization, orthogonal init."""
    ws = _weights(params, targets)
    depth = check_int(depth, "depth", lo=2)
    keys = jax.random.split(key, len(ws))
    return {
        path: Adapter(
            tuple(orthogonal_factors(k, w.shape, depth, eps)), 1.0, (False,) * depth, "full"
        )
        for k, (path, w) in zip(keys, ws.items(), strict=True)
    }


def narrow_adapters(
    params: Params, targets: Sequence[str], r: int, key: Array, eps: float = 1e-3, depth: int = 3
) -> Adapters:
    r"""Appendix D.2's *Random*: a width-$r$ depth-$L$ factorization, orthogonal init of scale $\varepsilon$."""
    ws = _weights(params, targets)
    depth = check_int(depth, "depth", lo=2)
    keys = jax.random.split(key, len(ws))
    out = {}
    for k, (path, w) in zip(keys, ws.items(), strict=True):
        r = _check_rank(r, w.shape, path)
        fs = orthogonal_factors(k, w.shape, depth, eps, width=r)
        out[path] = Adapter(tuple(fs), 1.0, (False,) * depth, "narrow")
    return out


def deep_lora_adapters(
    params: Params,
    targets: Sequence[str],
    r: int,
    key: Array,
    eps: float = 1e-3,
    depth: int = 3,
    *,
    loss_fn: Callable[[Params], Array] | None = None,
) -> Adapters:
    r"""Deep LoRA adapters: width-$r$ compressions of full-width depth-$L$ factorizations.

    Builds the full-width factorization (12) with orthogonal initialisation of scale
    ``eps`` for every target, takes the gradient $G_1$ of ``loss_fn`` with respect to each first
    factor at initialisation (one full-width backward pass), and compresses each to
    $U_{L,1}\,\widetilde W_L\cdots\widetilde W_1 V_{1,1}^\top$ with
    $\widetilde W_l(0) = \varepsilon I_r$ (:func:`compress_factors`).

    Args:
        params: frozen pre-trained pytree.
        targets: ``"a/b"`` paths of the matrices to adapt.
        r: compressed width, even, $2\le r\le\min(m,n)$ (the seed's $2\hat r$; $r=8$ in Section 4).
        key: PRNG key for the orthogonal initialisation.
        eps: initialisation scale $\varepsilon$ ($10^{-3}$ in Appendix B).
        depth: $L\ge 2$ ($L=3$ in the seed).
        loss_fn: ``loss_fn(adapted_params) -> scalar`` on the fine-tuning batch; required,
            because the compressed subspace is read off its gradient at initialisation.

    Returns:
        ``{path: Adapter(factors=(V^T, W~_1, ..., W~_L, U), outer=(True, False, ..., True))}``.
    """
    if loss_fn is None:
        raise ValueError(
            "deep_lora_adapters needs loss_fn(adapted_params): the compressed subspace is "
            "built from the gradient of the fine-tuning loss at initialisation (seed 004, 2.3)"
        )
    eps = _check_eps(eps)
    ws = _weights(params, targets)
    depth = check_int(depth, "depth", lo=2)
    for path, w in ws.items():
        r = _check_rank(r, w.shape, path)
        if r % 2:
            raise ValueError(
                f"r must be even (r = 2h, h directions from G_1 and G_1^T W_1), got {r}"
            )
    full = full_width_adapters(params, targets, key, eps, depth)
    grads = jax.grad(lambda ad: loss_fn(merge(params, ad)))(full)
    out = {}
    for path, ad in full.items():
        fs, g = list(ad.factors), grads[path].factors
        tall = ws[path].shape[0] >= ws[path].shape[1]
        if tall:
            u, v = compress_factors(fs, g[0], r, eps)
        else:  # compress Delta W^T = W1^T ... WL^T; its first factor is WL^T
            u_t, v_t = compress_factors([f.T for f in fs[::-1]], g[-1].T, r, eps)
            u, v = v_t, u_t
        inner = [eps * jnp.eye(r, dtype=DTYPE) for _ in range(depth)]
        outer = (True,) + (False,) * depth + (True,)
        out[path] = Adapter((v.T, *inner, u), 1.0, outer, "deep")
    return out


# ------------------------------------------------------------------------- use
def delta(adapter: Adapter) -> Array:
    r"""$\Delta W = s\,F_k\cdots F_1$ of one adapter."""
    return adapter.scale * chain_product(adapter.factors)


def merge(params: Params, adapters: Mapping[str, Adapter]) -> dict:
    r"""The adapted pytree: each target leaf $W_0$ replaced by $W_0+\Delta W$."""
    out = dict(params)
    for path, ad in adapters.items():
        w0 = get_path(params, path)
        dw = delta(ad)
        if dw.shape != w0.shape:
            raise ValueError(f"adapter for {path!r} has shape {dw.shape}, weight has {w0.shape}")
        out = set_path(out, path, w0 + dw)
    return out


def n_trainable(adapters: Mapping[str, Adapter]) -> int:
    """Number of trainable adapter parameters."""
    return int(sum(f.size for ad in adapters.values() for f in ad.factors))


def numerical_rank(
    delta_w: Float[ArrayLike, "m n"], machine_eps: float = FLOAT32_EPS, floor: float = RANK_FLOOR
) -> int:
    r"""Fig. 7's numerical rank: $\#\{i:\sigma_i>\max(10^{-8},\ d\,\sigma_1\,\epsilon)\}$, $d=\max(m,n)$.

    :func:`lowrank_theory.dmf.spectra.numerical_rank_fig7` (the one implementation of the
    caption's rule) with float32's $\epsilon$ by default.

    Args:
        delta_w: the adapter update $\Delta W$.
        machine_eps: $\epsilon$ of the caption; float32's by default (the paper's precision),
            pass :data:`lowrank_theory.EPS` for the float64 reading.
        floor: the absolute threshold ($10^{-8}$).
    """
    return numerical_rank_fig7(delta_w, machine_eps, floor)


def rank_from_singular_values(
    s: np.ndarray, shape: tuple[int, int], machine_eps: float = FLOAT32_EPS
) -> int:
    """:func:`numerical_rank` from precomputed singular values (host-side, for batched runs):
    :func:`lowrank_theory.dmf.spectra.rank_fig7_from_singular_values` at float32's epsilon."""
    return rank_fig7_from_singular_values(s, shape, machine_eps)


# ------------------------------------------------------------------------- training
def param_labels(adapters: Mapping[str, Adapter]) -> dict:
    """optax labels: ``"outer"`` for Deep LoRA's $U_{L,1}, V_{1,1}$, ``"inner"`` otherwise."""
    return {
        p: Adapter(
            tuple("outer" if o else "inner" for o in (ad.outer or (False,) * len(ad.factors))),
            ad.scale,
            ad.outer,
            ad.kind,
        )
        for p, ad in adapters.items()
    }


def optimizer(
    adapters: Mapping[str, Adapter], lr: float | Array, gamma: float | Array = 1e-2
) -> optax.GradientTransformation:
    r"""Adam at rate $\eta$ on inner factors and $\gamma\eta$ on outer ones (``optax.multi_transform``).

    ``lr`` and ``gamma`` may be traced (they are stored in the optimizer state via
    ``optax.inject_hyperparams``), so learning-rate grids can be ``vmap``-ed.
    """
    adam = optax.inject_hyperparams(optax.adam)
    return optax.multi_transform(
        {"inner": adam(learning_rate=lr), "outer": adam(learning_rate=gamma * lr)},
        param_labels(adapters),
    )


def train(
    params: Params,
    adapters: Mapping[str, Adapter],
    loss_fn: Callable[[Params], Array],
    steps: int,
    lr: float | Array,
    gamma: float | Array = 1e-2,
) -> tuple[Adapters, Array]:
    r"""``steps`` full-batch Adam steps on the adapters (a jitted ``lax.scan``).

    Args:
        params: frozen pre-trained pytree.
        adapters: initial adapters (any kind).
        loss_fn: ``loss_fn(adapted_params) -> scalar``, closing over the training batch.
        steps: number of iterations.
        lr: $\eta$. gamma: $\gamma$ (only outer factors use it).

    Returns:
        The trained adapters and the training loss before each step (shape ``(steps,)``).
    """
    steps = check_int(steps, "steps", lo=1)
    opt = optimizer(adapters, lr, gamma)

    def objective(ad):
        return loss_fn(merge(params, ad))

    def step(carry, _):
        ad, state = carry
        loss, g = jax.value_and_grad(objective)(ad)
        upd, state = opt.update(g, state, ad)
        return (optax.apply_updates(ad, upd), state), loss

    (ad, _), losses = jax.lax.scan(step, (dict(adapters), opt.init(dict(adapters))), None, steps)
    return ad, losses
