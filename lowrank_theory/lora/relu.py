r"""The expressive power of LoRA for ReLU networks (seed 000, Cases 2 and 3).

**Layer convention** (the seed's $\mathrm{FNN}_{L,D}$): weights ``[W_1, ..., W_L]`` and biases
``[b_1, ..., b_L]`` in the seed's order ($W_1$ acts first), $z_0 = x$,
$z_l = \mathrm{ReLU}(W_l z_{l-1} + b_l)$, $f(x) = z_L$: the ReLU is applied after *every*
layer, the last one included (the seed writes $f(x)=\mathrm{ReLU}((W_L+\Delta W_L)z_{L-1}
+\hat b_L)$ and the one-layer target $\bar f(x) = \mathrm{ReLU}(\bar W_1 x + \bar b_1)$).
The adapted network has weights $W_l+\Delta W_l$ (rank $\Delta W_l\le R$) and *tuned* biases
$\hat b_l$ (the seed lets LoRA retrain every bias).

**Lemma 9** (one-layer target from an $L$-layer frozen network). The construction of the proof:
biases $\hat b_1,\dots,\hat b_{L-1}$ large enough that every ReLU of the first $L-1$ layers is
active on the bounded input set $\mathcal X$ (here an $\ell_2$ ball of radius $B$), so the
network is affine there; weight adapters from Lemma 1 so that
$\prod_l(W_l+\Delta W_l) = \prod_l W_l + \mathrm{LR}_{RL\wedge R_E}(E)$; the last bias
$\hat b_L = \bar b_1 - \sum_{l<L}\prod_{i=l+1}^L(W_i+\Delta W_i)\hat b_l$.
The bias sizes are computed, not guessed: with $\tilde W_l = W_l+\Delta W_l$,
$P_l=\tilde W_l\cdots\tilde W_1$ and all earlier ReLUs active, layer $l$'s pre-activation is
$P_lx+c_l$ with $c_l=\tilde W_lc_{l-1}+\hat b_l$; it is non-negative on the whole ball iff
$(c_l)_j\ge\|(P_l)_{j,:}\|_2B$. The construction takes equality (the smallest offsets that
work for every $x$ in the ball), $\hat b_l = c_l-\tilde W_lc_{l-1}$, and
$\hat b_L=\bar b_1-\tilde W_Lc_{L-1}$. (Bounding layer by layer with
$\rho_l=\|\tilde W_l\|_2\rho_{l-1}+\|\hat b_l\|_2$ also works but gives biases growing like
$\prod_l\|\tilde W_l\|_2$, which Lemma 1's often ill-conditioned adapters make so large,
$10^{14}$ at $D=16$, $L=4$, that the final cancellation loses every digit in float64.)

**Theorem 5** ($\bar L$-layer target, $L$-layer frozen network, uniform partition
$\mathcal P^u$ with $M=\lfloor L/\bar L\rfloor$): block $i$ of the adapted network imitates layer
$i$ of the target by Lemma 9. Block $i$ must be linearised on the inputs it receives *and* on
the target's intermediate values $\bar z_{i-1}$ (the proof's $A_i$ term evaluates $f_i$ at
both), so its input bound is $\max(\hat\rho_{i-1}, \bar\rho_{i-1})$.

References:
    Y. Zeng and K. Lee, *The Expressive Power of Low-Rank Adaptation*, ICLR 2024: Lemma 9
    (detailed Lemma 2) and its proof (14); Example 1, the uniform partition and Theorem 5
    with its proof (15)-(21) (seed ``000_2c09e710a2aeae0d.txt``, Cases 2 and 3).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.linalg import chain_product
from ..core.validation import as_array, as_matrix, as_matrix_list, check_float, check_int
from .linear import LinearLemma1, lemma1_construction

__all__ = [
    "ReluAdapters",
    "Theorem5",
    "Theorem5Construction",
    "relu_adapters",
    "relu_fnn",
    "theorem5_bound",
    "theorem5_construction",
    "train_lora",
    "uniform_partition",
]


def _check_net(weights, biases, what: str) -> tuple[list[Array], list[Array], int]:
    ws = as_matrix_list(weights, f"{what} weights", square=True)
    d = ws[0].shape[0]
    for i, w in enumerate(ws):
        if w.shape != (d, d):
            raise ValueError(
                f"{what} weights[{i}] has shape {w.shape}; every layer must be {(d, d)}"
            )
    if isinstance(biases, np.ndarray | Array) and getattr(biases, "ndim", 0) == 2:
        biases = list(biases)
    if not isinstance(biases, Sequence) or len(biases) != len(ws):
        n = len(biases) if isinstance(biases, Sequence) else type(biases).__name__
        raise ValueError(f"{what}: {len(ws)} weight matrices need {len(ws)} bias vectors, got {n}")
    bs = [as_array(b, f"{what} biases[{i}]", ndim=1) for i, b in enumerate(biases)]
    for i, b in enumerate(bs):
        if b.shape != (d,):
            raise ValueError(f"{what} biases[{i}] has length {b.shape[0]}; it must be D = {d}")
    return ws, bs, d


def relu_fnn(
    weights: Sequence[Float[ArrayLike, "D D"]],
    biases: Sequence[Float[ArrayLike, " D"]],
    x: Float[ArrayLike, "*n D"],
) -> Float[Array, "*n D"]:
    r"""$\mathrm{FNN}_{L,D}(x;(W_l),(b_l))$: $z_l=\mathrm{ReLU}(W_lz_{l-1}+b_l)$, $z_0=x$.

    Args:
        weights: $[W_1,\dots,W_L]$, each $D\times D$ ($W_1$ acts first).
        biases: $[b_1,\dots,b_L]$, each of length $D$.
        x: one input of length $D$ or a batch of shape $(n, D)$.

    Returns:
        $z_L$ with the shape of ``x``.

    Examples:
        >>> import numpy as np
        >>> import lowrank_theory as lt
        >>> lt.relu_fnn([np.eye(2)], [np.array([0.0, -1.0])], np.array([1.0, 0.5])).tolist()
        [1.0, 0.0]
    """
    ws, bs, d = _check_net(weights, biases, "network")
    xa = as_array(x, "x")
    if xa.ndim not in (1, 2) or xa.shape[-1] != d:
        raise ValueError(f"x must have shape (D,) or (n, D) with D = {d}, got {xa.shape}")
    out = _fnn(jnp.stack(ws), jnp.stack(bs), xa if xa.ndim == 2 else xa[None, :])
    return out if xa.ndim == 2 else out[0]


@jax.jit
def _fnn(w_stack: Array, b_stack: Array, x: Array) -> Array:
    def layer(z, wb):
        w, b = wb
        return jax.nn.relu(z @ w.T + b[None, :]), None

    z, _ = jax.lax.scan(layer, x, (w_stack, b_stack))
    return z


def _input_radius(input_bound, d: int) -> float:
    if isinstance(input_bound, int | float | np.floating | np.integer):
        r = float(input_bound)
    else:
        xs = as_array(input_bound, "input_bound (sample)")
        if xs.ndim == 1:
            xs = xs[None, :]
        if xs.ndim != 2 or xs.shape[1] != d:
            raise ValueError(
                f"input_bound must be a radius or a sample of shape (n, D={d}), got {xs.shape}"
            )
        r = float(jnp.max(jnp.linalg.norm(xs, axis=1)))
    if not (math.isfinite(r) and r >= 0):
        raise ValueError(f"input_bound must be a finite non-negative radius, got {r}")
    return r


@dataclass(frozen=True)
class ReluAdapters:
    r"""Lemma 9's construction for one instance.

    Attributes:
        adapters: $\Delta W_1,\dots,\Delta W_L$ (Lemma 1's, seed order).
        biases: the tuned biases $\hat b_1,\dots,\hat b_L$ (full values, not increments).
        weights: the adapted weights $W_l+\Delta W_l$.
        input_bound: $B$, the radius of the $\ell_2$ ball $\mathcal X$ the construction covers.
        radii: $\rho_0=B,\dots,\rho_{L-1}$: bounds $\|P_l\|_2B+\|c_l\|_2$ on $\|z_l\|_2$ over
            $\mathcal X$ (see the module docstring).
        effective_weight: $\prod_l(W_l+\Delta W_l) = \prod_l W_l+\mathrm{LR}_{RL\wedge R_E}(E)$.
        lemma1: the linear construction it uses (:class:`~lowrank_theory.lora.linear.LinearLemma1`).
    """

    adapters: list[Array]
    biases: list[Array]
    weights: list[Array]
    input_bound: float
    radii: list[float]
    effective_weight: Array
    lemma1: LinearLemma1 = field(repr=False)

    def outside(self, x: Float[ArrayLike, "*n D"]) -> Array:
        r"""Boolean mask of the inputs outside $\mathcal X=\{\|x\|_2\le B\}$."""
        xa = jnp.atleast_2d(as_array(x, "x"))
        return jnp.linalg.norm(xa, axis=1) > self.input_bound * (1.0 + 1e-12)

    def __call__(
        self,
        x: Float[ArrayLike, "*n D"],
        on_outside: Literal["raise", "warn", "allow"] = "raise",
    ) -> Float[Array, "*n D"]:
        r"""The adapted network $f(x)$; inputs outside $\mathcal X$ raise (default) or warn.

        Outside $\mathcal X$ the first $L-1$ layers need not be linear, so Lemma 9's identity
        no longer describes $f$; ``on_outside="allow"`` evaluates $f$ anyway.
        """
        n_out = int(jnp.sum(self.outside(x)))
        if n_out and on_outside != "allow":
            msg = (
                f"{n_out} input(s) lie outside the ball ||x||_2 <= {self.input_bound:.6g} that "
                "the construction linearises; Lemma 9 does not cover them"
            )
            if on_outside == "raise":
                raise ValueError(msg)
            warnings.warn(msg, stacklevel=2)
        return relu_fnn(self.weights, self.biases, x)


def relu_adapters(
    frozen_w: Sequence[Float[ArrayLike, "D D"]],
    frozen_b: Sequence[Float[ArrayLike, " D"]],
    target_w: Float[ArrayLike, "D D"],
    target_b: Float[ArrayLike, " D"],
    rank: int,
    input_bound: float | Float[ArrayLike, "n D"],
    *,
    rtol: float | None = None,
) -> ReluAdapters:
    r"""Lemma 9's LoRA adapters and biases: a one-layer ReLU target from an $L$-layer network.

    On every $x$ with $\|x\|_2\le B$ the result satisfies
    $f(x) = \mathrm{ReLU}\big((\prod_lW_l+\mathrm{LR}_{RL\wedge R_E}(E))x+\bar b_1\big)$, hence
    $f=\bar f$ there when $R\ge\lceil R_E/L\rceil$ (Lemma 9).

    Args:
        frozen_w: $[W_1,\dots,W_L]$, each $D\times D$ (Lemma 1's non-singularity assumed).
        frozen_b: the frozen biases $[b_1,\dots,b_L]$ (length-$D$ each); they are replaced by
            the tuned $\hat b_l$ and only validated.
        target_w, target_b: $\bar W_1$ and $\bar b_1$.
        rank: the LoRA rank $R\in[D]$.
        input_bound: the radius $B$ of $\mathcal X$ or a sample of shape $(n, D)$ whose
            largest norm defines it.
        rtol: tolerance of the numerical rank $R_E$ (Lemma 1's default).

    Raises:
        ValueError: shapes, bias lengths, $R\notin[D]$, NaN, a negative bound, or Lemma 1's
            assumption violated.

    References:
        Zeng & Lee (ICLR 2024), Lemma 9 and its proof ("Linearization", "Parameter
        Alignment", (14)).
    """
    ws, _, d = _check_net(frozen_w, frozen_b, "frozen")
    wbar = as_matrix(target_w, "target_w", square=True)
    bbar = as_array(target_b, "target_b", ndim=1)
    if wbar.shape != (d, d):
        raise ValueError(f"target_w has shape {wbar.shape}; it must be {(d, d)}")
    if bbar.shape != (d,):
        raise ValueError(f"target_b has length {bbar.shape[0]}; it must be D = {d}")
    radius = _input_radius(input_bound, d)
    lin = lemma1_construction(ws, wbar, rank, rtol=rtol)
    adapted = [w + dw for w, dw in zip(ws, lin.adapters, strict=True)]
    biases, radii = [], [radius]
    offset = jnp.zeros(d)  # c_l = sum_{l' <= l} prod_{i=l'+1}^{l} W~_i b_l'
    partial = jnp.eye(d)  # P_l = W~_l ... W~_1
    for w in adapted[:-1]:
        partial = w @ partial
        # the smallest offset with P_l x + c_l >= 0 on the whole ball ||x|| <= B
        c_new = jnp.linalg.norm(partial, axis=1) * radius
        biases.append(c_new - w @ offset)
        offset = c_new
        radii.append(float(jnp.linalg.norm(partial, 2)) * radius + float(jnp.linalg.norm(offset)))
    biases.append(bbar - adapted[-1] @ offset)
    eff = chain_product(adapted)
    return ReluAdapters(lin.adapters, biases, adapted, radius, radii, eff, lin)


def uniform_partition(n_layers: int, target_layers: int) -> list[list[int]]:
    r"""$\mathcal P^u$: blocks $\{1..M\},\{M+1..2M\},\dots,\{(\bar L-1)M+1..L\}$, $M=\lfloor L/\bar L\rfloor$.

    Layer indices are 1-based as in the seed; the last block takes the remainder.

    Raises:
        ValueError: $L<\bar L$ (a block would be empty: the partition does not fit).
    """
    n_layers = check_int(n_layers, "L (frozen layers)", lo=1)
    target_layers = check_int(target_layers, "L_bar (target layers)", lo=1)
    if n_layers < target_layers:
        raise ValueError(
            f"the uniform partition needs L >= L_bar; got L = {n_layers} < L_bar = {target_layers}"
        )
    m = n_layers // target_layers
    blocks = [list(range(i * m + 1, (i + 1) * m + 1)) for i in range(target_layers - 1)]
    blocks.append(list(range((target_layers - 1) * m + 1, n_layers + 1)))
    return blocks


@dataclass(frozen=True)
class Theorem5:
    r"""Theorem 5's quantities on one instance (see :func:`theorem5_bound`).

    ``bound`` is the statement as the seed writes it; ``bound_corrected`` uses
    $\sqrt{\operatorname{tr}\Sigma}\ge\mathbb E\|x\|_2$ in place of $\sqrt{\|\Sigma\|_F}$ and the
    bias products $\prod_{k=j+1}^{i}$ the proof derives (``beta_corrected``).
    """

    partition: list[list[int]]
    m: int
    e: list[float]
    alpha: float
    beta: float
    bound: float
    beta_corrected: float
    bound_corrected: float


def theorem5_bound(
    frozen_w: Sequence[Float[ArrayLike, "D D"]],
    target_w: Sequence[Float[ArrayLike, "D D"]],
    target_b: Sequence[Float[ArrayLike, " D"]],
    rank: int,
    second_moment: Float[ArrayLike, "D D"],
) -> Theorem5:
    r"""Theorem 5's $E_i$, $\alpha$, $\beta$ and bound, as the seed writes them.

    $$E_i=\sigma_{RM+1}\Big(\bar W_i-\prod_{l\in P^u_i}W_l\Big),\quad
    \alpha=\max_k(\|\bar W_k\|_F+E_k),$$
    $$\beta=\max_{i\in[\bar L]}\Big(\sqrt{\|\Sigma\|_F}\prod_{j=1}^i\|\bar W_j\|_F+\sum_{j=1}^i
    \prod_{k=j+1}^{i-1}\|\bar W_k\|_F\|\bar b_j\|_2\Big)\vee\sqrt{\|\Sigma\|_F},$$
    bound $=\beta\sum_{i=1}^{\bar L}\alpha^{\bar L-i}E_i$ on $\mathbb E\|f(x)-\bar f(x)\|_2$.
    The corrected $\beta' = \max_{0\le i<\bar L}\big(\sqrt{\operatorname{tr}\Sigma}\prod_{j\le i}
    \|\bar W_j\|_F + \sum_{j\le i}\prod_{k=j+1}^{i}\|\bar W_k\|_F\|\bar b_j\|_2\big)$ bounds
    $\mathbb E\|\bar z_{i}\|_2$ for the $i$ the proof uses.

    Args:
        frozen_w: $[W_1,\dots,W_L]$.
        target_w, target_b: $[\bar W_1,\dots,\bar W_{\bar L}]$ and $[\bar b_1,\dots]$.
        rank: $R\in[D]$.
        second_moment: $\Sigma=\mathbb E xx^\top$ (symmetric PSD).

    References:
        Zeng & Lee (ICLR 2024), Theorem 5 and its proof (15)-(21).
    """
    ws = as_matrix_list(frozen_w, "frozen_w", square=True)
    tws, tbs, d = _check_net(target_w, target_b, "target")
    if any(w.shape != (d, d) for w in ws):
        raise ValueError(f"frozen weights must all be {(d, d)} like the target's")
    rank = check_int(rank, "rank (LoRA rank R)", lo=1, hi=d)
    sig = as_matrix(second_moment, "second_moment (Sigma = E x x^T)", square=True)
    if sig.shape != (d, d):
        raise ValueError(f"second_moment must be {(d, d)}, got {sig.shape}")
    if float(jnp.abs(sig - sig.T).max()) > 1e-12 * max(float(jnp.abs(sig).max()), 1e-300):
        raise ValueError("second_moment (Sigma = E x x^T) must be symmetric")
    if float(jnp.linalg.eigvalsh(sig)[0]) < -1e-12 * float(jnp.abs(sig).max()):
        raise ValueError("second_moment (Sigma = E x x^T) must be positive semi-definite")
    part = uniform_partition(len(ws), len(tws))
    m = len(ws) // len(tws)
    e = []
    for wb, block in zip(tws, part, strict=True):
        s = np.asarray(
            jnp.linalg.svd(wb - chain_product([ws[l - 1] for l in block]), compute_uv=False)
        )
        e.append(float(s[rank * m]) if rank * m < d else 0.0)
    fro = [float(jnp.linalg.norm(w)) for w in tws]
    bn = [float(jnp.linalg.norm(b)) for b in tbs]
    alpha = max(f + ek for f, ek in zip(fro, e, strict=True))
    sq_f = math.sqrt(float(jnp.linalg.norm(sig)))
    sq_tr = math.sqrt(max(float(jnp.trace(sig)), 0.0))
    lbar = len(tws)

    def term(i: int, root: float, upper: int) -> float:
        # root * prod_{j<=i} ||W_j|| + sum_{j<=i} prod_{k=j+1}^{upper(i)} ||W_k|| ||b_j||
        t = root * math.prod(fro[:i])
        t += sum(math.prod(fro[j:upper]) * bn[j - 1] for j in range(1, i + 1))
        return t

    beta = max(max(term(i, sq_f, i - 1) for i in range(1, lbar + 1)), sq_f)
    beta_c = max(term(i, sq_tr, i) for i in range(0, lbar))
    s = sum(alpha ** (lbar - i) * e[i - 1] for i in range(1, lbar + 1))
    return Theorem5(part, m, e, alpha, beta, beta * s, beta_c, beta_c * s)


@dataclass(frozen=True)
class Theorem5Construction:
    r"""Theorem 5's adapted network: per-block Lemma 9 constructions, joined.

    Attributes:
        adapters, biases, weights: $\Delta W_l$, $\hat b_l$, $W_l+\Delta W_l$ for $l\in[L]$.
        blocks: the per-block :class:`ReluAdapters`; ``partition``: $\mathcal P^u$.
        input_bound: $B$; ``block_bounds``: the radius each block is linearised on.
    """

    adapters: list[Array]
    biases: list[Array]
    weights: list[Array]
    blocks: list[ReluAdapters]
    partition: list[list[int]]
    input_bound: float
    block_bounds: list[float]

    def __call__(self, x, on_outside: Literal["raise", "warn", "allow"] = "raise") -> Array:
        """The adapted network; inputs with $\\|x\\|_2>B$ raise (default) or warn."""
        return ReluAdapters.__call__(self, x, on_outside)  # type: ignore[arg-type]

    def outside(self, x) -> Array:
        return ReluAdapters.outside(self, x)  # type: ignore[arg-type]


def theorem5_construction(
    frozen_w: Sequence[Float[ArrayLike, "D D"]],
    frozen_b: Sequence[Float[ArrayLike, " D"]],
    target_w: Sequence[Float[ArrayLike, "D D"]],
    target_b: Sequence[Float[ArrayLike, " D"]],
    rank: int,
    input_bound: float | Float[ArrayLike, "n D"],
) -> Theorem5Construction:
    r"""Theorem 5's construction: block $i$ of $\mathcal P^u$ imitates target layer $i$ (Lemma 9).

    Block $i$ is linearised on the ball of radius $\max(\hat\rho_{i-1},\bar\rho_{i-1})$
    containing both the adapted network's and the target's intermediate values, where
    $\bar\rho_i=\|\bar W_i\|_2\bar\rho_{i-1}+\|\bar b_i\|_2$,
    $\hat\rho_i=\|\hat W_i\|_2\hat\rho_{i-1}+\|\bar b_i\|_2$ ($\mathrm{ReLU}$ does not increase
    norms) and $\hat W_i=\prod_{l\in P_i}W_l+\mathrm{LR}_{R|P_i|}(\bar W_i-\prod_{l\in P_i}W_l)$.
    """
    ws, bs, d = _check_net(frozen_w, frozen_b, "frozen")
    tws, tbs, d2 = _check_net(target_w, target_b, "target")
    if d2 != d:
        raise ValueError(f"target width {d2} differs from the frozen width {d}")
    part = uniform_partition(len(ws), len(tws))
    radius = _input_radius(input_bound, d)
    r_hat = r_bar = radius
    blocks, bounds = [], []
    for wb, bb, block in zip(tws, tbs, part, strict=True):
        rho = max(r_hat, r_bar)
        c = relu_adapters([ws[l - 1] for l in block], [bs[l - 1] for l in block], wb, bb, rank, rho)
        blocks.append(c)
        bounds.append(rho)
        r_bar = float(jnp.linalg.norm(wb, 2)) * r_bar + float(jnp.linalg.norm(bb))
        r_hat = float(jnp.linalg.norm(c.effective_weight, 2)) * r_hat + float(jnp.linalg.norm(bb))
    adapters = [a for c in blocks for a in c.adapters]
    biases = [b for c in blocks for b in c.biases]
    weights = [w for c in blocks for w in c.weights]
    return Theorem5Construction(adapters, biases, weights, blocks, part, radius, bounds)


def train_lora(
    frozen_w: Sequence[Float[ArrayLike, "D D"]],
    frozen_b: Sequence[Float[ArrayLike, " D"]],
    x: Float[ArrayLike, "n D"],
    y: Float[ArrayLike, "n D"],
    rank: int,
    key: Array,
    *,
    seeds: int = 4,
    steps: int = 2000,
    lr: float = 1e-2,
    init_scale: float = 0.1,
    tune_biases: bool = True,
) -> dict[str, Array]:
    r"""Gradient-trained LoRA on a ReLU network: Adam on the mean squared error.

    Minimises $\frac1n\sum_i\|f(x_i)-y_i\|_2^2$ over $\Delta W_l=B_lA_l$ ($B_l\in\mathbb
    R^{D\times R}$ initialised at 0, $A_l$ Gaussian with std ``init_scale``: the usual LoRA
    start) and, with ``tune_biases``, the biases (started at ``frozen_b``), as Lemma 9 allows.
    ``seeds`` independent starts run in one jitted, vmapped ``lax.scan``; rank $R$ is a mask on
    $D\times D$ factors, so one compilation serves every $R$ at a given $(D, L, n)$.

    Returns:
        ``adapters`` (seeds, L, D, D), ``biases`` (seeds, L, D), ``loss`` (seeds,) the final
        training MSE, ``curve`` (seeds, steps) the loss per step.
    """
    ws, bs, d = _check_net(frozen_w, frozen_b, "frozen")
    rank = check_int(rank, "rank (LoRA rank R)", lo=1, hi=d)
    xa = as_matrix(x, "x")
    ya = as_matrix(y, "y")
    if xa.shape[1] != d or ya.shape != xa.shape:
        raise ValueError(f"x and y must both be (n, D={d}); got {xa.shape} and {ya.shape}")
    check_int(seeds, "seeds", lo=1)
    check_int(steps, "steps", lo=1)
    check_float(lr, "lr", lo=0.0, lo_open=True)
    check_float(init_scale, "init_scale", lo=0.0, lo_open=True)
    mask = (jnp.arange(d) < rank).astype(xa.dtype)
    dw, b, loss, curve = _train_relu_jit(
        jnp.stack(ws), jnp.stack(bs), xa, ya, mask, key, seeds, steps, lr, init_scale, tune_biases
    )
    return {"adapters": dw, "biases": b, "loss": loss, "curve": curve}


def _relu_loss(params, w_stack, x, y, mask, b0, tune_biases):
    bf, af, bias = params
    bias = bias if tune_biases else b0
    dw = jnp.einsum("lij,lj,ljk->lik", bf, jnp.broadcast_to(mask, bf.shape[:2]), af)
    out = _fnn(w_stack + dw, bias, x)
    return jnp.mean(jnp.sum((out - y) ** 2, axis=1))


@partial(jax.jit, static_argnums=(6, 7, 10))
def _train_relu_jit(w_stack, b_stack, x, y, mask, key, seeds, steps, lr, init_scale, tune_biases):
    n_layers, d, _ = w_stack.shape
    opt = optax.adam(lr)

    def one(k):
        a0 = init_scale * jax.random.normal(k, (n_layers, d, d), dtype=x.dtype)
        params = (jnp.zeros_like(a0), a0, b_stack)
        state = opt.init(params)

        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(_relu_loss)(p, w_stack, x, y, mask, b_stack, tune_biases)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        (p, _), curve = jax.lax.scan(step, (params, state), None, length=steps)
        bf, af, bias = p
        dw = jnp.einsum("lij,lj,ljk->lik", bf, jnp.broadcast_to(mask, bf.shape[:2]), af)
        final = _relu_loss(p, w_stack, x, y, mask, b_stack, tune_biases)
        return dw, (bias if tune_biases else b_stack), final, curve

    return jax.vmap(one)(jax.random.split(key, seeds))
