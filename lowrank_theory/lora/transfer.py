r"""Low-rank transfer learning by a second-order Stein estimator (seed 000, "Transfer Learning").

**Model.** A source network $y = M_L\sigma(M_{L-1}\sigma(\cdots\sigma(M_1x)))+\epsilon$ with known
$M_1\in\mathbb R^{k_1\times D},\dots,M_L$ and a target population whose first layer is shifted,
$W_1 = M_1+Z$ with $\operatorname{rank}Z\le k$; $n\ll N$ target samples $x\sim\mathcal N(0,\Sigma)$.

**Second-order Stein identity** (seed eq. (10)): with $T(x)=\Sigma^{-1}xx^\top\Sigma^{-1}-\Sigma^{-1}$
and $y=g(W_1x)$,
$$\mathbb E[y\,T(x)] = W_1^\top\,\mathbb E\big[(\nabla^2_z g)(W_1x)\big]\,W_1,$$
the Hessian taken in $z=W_1x$ (reading the seed's $\nabla_x^2 f(W_1x)$ as the Hessian in $x$
would count $W_1$ twice; see claim ``lora.stein.identity[hessian-in-x]``). Hence the eigenvectors
of $A=\mathbb E[yT(x)]$ with non-zero eigenvalues span the row space of $W_1$ *when*
$\mathbb E[\nabla^2g]$ is non-singular.

**Closed form.** Knowing $V$ (orthonormal basis of the row space) gives
$(M_1+Z)(I-VV^\top)=0$, i.e. $\min_{\operatorname{rank}Z\le k}\|Y-ZX\|_F$ with
$Y=M_1(VV^\top-I)$, $X=I-VV^\top$, whose minimiser is (reduced-rank regression)
$$Z^\star=\mathrm{LR}_k\big(YX^+X\big)X^+ .$$
Only $Z(I-VV^\top)$ is identifiable from the row space: $Z^\star = Z(I-VV^\top)$, and
$Z$ itself is recovered exactly when $ZVV^\top=0$ (claim ``lora.transfer.closed_form[identifies-Z]``).

References:
    Seed ``000_2c09e710a2aeae0d.txt``, section "Transfer Learning" (second-order score, eq. (10),
    the constrained optimisation for $Z$).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jaxtyping import ArrayLike, Float

from ..core.linalg import low_rank_approx, pinv, psd_sqrt, rank_from_singular_values
from ..core.validation import as_array, as_matrix, as_matrix_list, check_float, check_int

__all__ = [
    "estimate_shift",
    "finetune_first_layer",
    "gaussianity_pvalue",
    "reduced_rank_fit",
    "rowspace_from_stein",
    "second_order_score",
    "shift_from_rowspace",
    "stein_hessian_exact",
    "stein_matrix",
    "stein_matrix_exact",
    "stein_moments_exact",
    "transfer_forward",
]

#: Family-wise level of the Gaussianity test run by :func:`stein_matrix`.
GAUSSIAN_TEST_LEVEL = 1e-3


def _check_sigma(sigma, d: int) -> Array:
    s = as_matrix(sigma, "sigma (input covariance)", square=True)
    if s.shape != (d, d):
        raise ValueError(f"sigma must be {(d, d)}, got {s.shape}")
    if float(jnp.abs(s - s.T).max()) > 1e-10 * float(jnp.abs(s).max()):
        raise ValueError("sigma (input covariance) must be symmetric")
    ev = np.linalg.eigvalsh(np.asarray(s))
    # positive definite: all D eigenvalues above the rank rule's cut-off d*1e-14*lambda_max
    if rank_from_singular_values(ev[::-1], s.shape, rtol=d * 1e-14) < d:
        raise ValueError(
            f"sigma must be positive definite for T(x) = Sigma^-1 x x^T Sigma^-1 - Sigma^-1 "
            f"(smallest eigenvalue {ev[0]:.3e})"
        )
    return s


def second_order_score(
    x: Float[ArrayLike, "n D"], sigma: Float[ArrayLike, "D D"]
) -> Float[Array, "n D D"]:
    r"""$T(x)=\Sigma^{-1}xx^\top\Sigma^{-1}-\Sigma^{-1}$ for each row of ``x`` ($x\sim\mathcal N(0,\Sigma)$)."""
    xa = as_matrix(x, "x")
    s = _check_sigma(sigma, xa.shape[1])
    si = jnp.linalg.inv(s)
    u = xa @ si
    return u[:, :, None] * u[:, None, :] - si[None, :, :]


def gaussianity_pvalue(x: Float[ArrayLike, "n D"], sigma: Float[ArrayLike, "D D"]) -> float:
    r"""Bonferroni-corrected p-value that $x\sim\mathcal N(0,\Sigma)$.

    Whitens $u=\Sigma^{-1/2}x$ and applies the Jarque-Bera test (skewness and kurtosis) and a
    two-sided $t$-test of zero mean to each coordinate of $u$ and to $\|u\|_2^2/D$ rescaled
    (a $\chi^2_D$ check of the covariance via its mean): the smallest p-value times the number
    of tests.
    """
    import scipy.stats  # lazy: 0.5 s of import that only this test needs

    xa = np.asarray(as_matrix(x, "x"))
    n, d = xa.shape
    s = _check_sigma(sigma, d)
    u = xa @ np.asarray(psd_sqrt(s, inverse=True))
    ps = [scipy.stats.jarque_bera(u[:, j]).pvalue for j in range(d)]
    ps += [scipy.stats.ttest_1samp(u[:, j], 0.0).pvalue for j in range(d)]
    q = np.sum(u**2, axis=1)  # chi^2_D: mean D, variance 2D
    z = (q.mean() - d) / np.sqrt(2 * d / n)
    ps.append(2 * scipy.stats.norm.sf(abs(z)))
    return float(min(1.0, min(ps) * len(ps)))


def stein_matrix(
    x: Float[ArrayLike, "n D"],
    y: Float[ArrayLike, "n ..."],
    sigma: Float[ArrayLike, "D D"],
    *,
    on_non_gaussian: Literal["raise", "warn", "ignore"] = "warn",
) -> Float[Array, "*p D D"]:
    r"""The empirical second-order Stein matrix $\hat A=\frac1n\sum_i y_iT(x_i)$.

    An unbiased estimate of $\mathbb E[yT(x)] = W_1^\top\mathbb E[\nabla^2g(W_1x)]W_1$ *for
    Gaussian inputs* $x\sim\mathcal N(0,\Sigma)$ only: for other inputs $T$ is not the second
    order score and the identity fails. The inputs are therefore tested
    (:func:`gaussianity_pvalue`, level ``GAUSSIAN_TEST_LEVEL``), and a rejection warns or
    raises as ``on_non_gaussian`` says.

    Args:
        x: inputs, shape $(n, D)$, $n\ge 8$.
        y: responses, shape $(n,)$ (one matrix) or $(n, p)$ (one matrix per output).
        sigma: the input covariance $\Sigma$ (positive definite).
        on_non_gaussian: ``"raise"`` (ValueError), ``"warn"`` (UserWarning) or ``"ignore"``.

    Returns:
        $(D, D)$ for scalar $y$, $(p, D, D)$ otherwise.
    """
    xa = as_matrix(x, "x")
    n, d = xa.shape
    ya = as_array(y, "y")
    if ya.ndim not in (1, 2) or ya.shape[0] != n:
        raise ValueError(f"y must have shape (n,) or (n, p) with n = {n}, got {ya.shape}")
    if n < 8:
        raise ValueError(f"need at least 8 samples to estimate E[y T(x)], got {n}")
    s = _check_sigma(sigma, d)
    if on_non_gaussian not in ("raise", "warn", "ignore"):
        raise ValueError(f"unknown on_non_gaussian {on_non_gaussian!r}")
    if on_non_gaussian != "ignore":
        p = gaussianity_pvalue(xa, s)
        if p < GAUSSIAN_TEST_LEVEL:
            msg = (
                f"inputs are not N(0, Sigma) (Gaussianity test p = {p:.2e} < "
                f"{GAUSSIAN_TEST_LEVEL}); the second-order Stein identity E[y T(x)] = "
                "W1^T E[Hessian] W1 holds only for Gaussian inputs"
            )
            if on_non_gaussian == "raise":
                raise ValueError(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
    si = jnp.linalg.inv(s)
    u = xa @ si  # rows Sigma^-1 x_i
    y2 = ya if ya.ndim == 2 else ya[:, None]
    a = jnp.einsum("np,ni,nj->pij", y2, u, u) / n - jnp.mean(y2, axis=0)[:, None, None] * si[None]
    return a[0] if ya.ndim == 1 else a


def _gh_grid(k: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    g, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    grids = np.meshgrid(*([g] * k), indexing="ij")
    pts = np.stack([m.ravel() for m in grids], axis=1)
    wg = np.meshgrid(*([w] * k), indexing="ij")
    wts = np.prod(np.stack([m.ravel() for m in wg], axis=1), axis=1)
    return pts, wts


def _z_quadrature(w1, sigma, nodes: int) -> tuple[Array, Array, Array, Array, Array]:
    r"""Validated $W_1$, $\Sigma$, $C=W_1\Sigma W_1^\top$ and the Gauss-Hermite nodes and
    weights for $z=W_1x\sim\mathcal N(0,C)$: ``(w1, sigma, C, z, weights)``."""
    w1a = as_matrix(w1, "w1")
    k, d = w1a.shape
    check_int(k, "rows of w1 (k1)", lo=1, hi=3)
    s = _check_sigma(sigma, d)
    c = w1a @ s @ w1a.T
    lc = jnp.linalg.cholesky(c)
    pts, wts = _gh_grid(k, nodes)
    return w1a, s, c, jnp.asarray(pts) @ lc.T, jnp.asarray(wts)


def stein_moments_exact(
    link: Callable[[Array], Array],
    w1: Float[ArrayLike, "k D"],
    sigma: Float[ArrayLike, "D D"],
    *,
    params=None,
    nodes: int = 40,
) -> tuple[float, Float[Array, "D D"]]:
    r"""$(\mathbb E[g(W_1x)],\ \mathbb E[g(W_1x)\,xx^\top])$ for $x\sim\mathcal N(0,\Sigma)$ by
    Gauss-Hermite quadrature (see :func:`stein_matrix_exact`, which is
    $\Sigma^{-1}\mathbb E[g\,xx^\top]\Sigma^{-1}-\mathbb E[g]\Sigma^{-1}$ of these two moments:
    their sizes bound its rounding error)."""
    w1a, s, c, z, wj = _z_quadrature(w1, sigma, nodes)
    eg, egzz = _quad_moments(link, z, wj, params)
    kmat = jnp.linalg.solve(c, w1a @ s).T  # Sigma W1^T C^-1 (C, Sigma symmetric)
    cond = s - kmat @ c @ kmat.T
    return float(eg), eg * cond + kmat @ egzz @ kmat.T


def stein_matrix_exact(
    link: Callable[[Array], Array],
    w1: Float[ArrayLike, "k D"],
    sigma: Float[ArrayLike, "D D"],
    *,
    params=None,
    nodes: int = 40,
) -> Float[Array, "D D"]:
    r"""$\mathbb E[g(W_1x)T(x)]$ for $x\sim\mathcal N(0,\Sigma)$ by Gauss-Hermite quadrature.

    Conditioning on $z=W_1x\sim\mathcal N(0,C)$, $C=W_1\Sigma W_1^\top$: $\mathbb E[x\mid z]=Kz$,
    $K=\Sigma W_1^\top C^{-1}$, $\operatorname{Cov}(x\mid z)=S=\Sigma-KC K^\top$, so
    $\mathbb E[g\,xx^\top]=\mathbb E[g]S+K\,\mathbb E[g\,zz^\top]K^\top$, a $k$-dimensional
    integral done on a tensor grid of ``nodes``$^k$ points (exact for polynomial $g$ of degree
    $<2\,$``nodes``$-2$, spectrally accurate for entire $g$). No Stein identity is used.

    Args:
        link: $g:\mathbb R^k\to\mathbb R$, JAX-traceable, applied to one $z$; called as
            ``link(z, params)`` when ``params`` (a pytree) is given, which lets one jitted
            quadrature serve a family of links (a module-level ``link`` is compiled once).
        w1: $W_1$ with full row rank $k\le 3$.
        sigma: $\Sigma$, positive definite.
    """
    eg, exx = stein_moments_exact(link, w1, sigma, params=params, nodes=nodes)
    si = jnp.linalg.inv(_check_sigma(sigma, exx.shape[0]))
    return si @ exx @ si - eg * si


def stein_hessian_exact(
    link: Callable[[Array], Array],
    w1: Float[ArrayLike, "k D"],
    sigma: Float[ArrayLike, "D D"],
    *,
    params=None,
    nodes: int = 40,
) -> tuple[Float[Array, "D D"], Float[Array, "k k"]]:
    r"""$W_1^\top\,\mathbb E[(\nabla_z^2g)(W_1x)]\,W_1$ and $H=\mathbb E[\nabla_z^2 g]$ (autodiff Hessian, same quadrature)."""
    w1a, _, _, z, wj = _z_quadrature(w1, sigma, nodes)
    h = _quad_hessian(link, z, wj, params)
    return w1a.T @ h @ w1a, h


def _call(link, z, params):
    return link(z) if params is None else link(z, params)


@partial(jax.jit, static_argnums=0)
def _quad_moments(link, z, w, params):
    gv = jax.vmap(lambda zz: _call(link, zz, params))(z)
    return jnp.sum(w * gv), jnp.einsum("n,n,ni,nj->ij", w, gv, z, z)


@partial(jax.jit, static_argnums=0)
def _quad_hessian(link, z, w, params):
    hs = jax.vmap(jax.hessian(lambda zz: _call(link, zz, params)))(z)
    return jnp.einsum("n,nij->ij", w, hs)


def rowspace_from_stein(a: Float[ArrayLike, "*p D D"], k1: int) -> Float[Array, "D k1"]:
    r"""Orthonormal basis $V$ ($D\times k_1$) of the row space of $W_1$ from $A=\mathbb E[yT(x)]$.

    For one symmetric $A=W^\top\!\mathcal DW$: the $k_1$ eigenvectors of largest $|\lambda|$
    (eigenvalues may be negative). For a stack $(A_1,\dots,A_p)$ (vector $y$): the $k_1$ leading
    left singular vectors of $[A_1,\dots,A_p]$, whose column space lies in the row space of $W_1$.
    """
    aa = as_array(a, "a")
    if aa.ndim == 2:
        aa = aa[None]
    if aa.ndim != 3 or aa.shape[1] != aa.shape[2]:
        raise ValueError(f"a must be (D, D) or (p, D, D), got {aa.shape}")
    d = aa.shape[1]
    k1 = check_int(k1, "k1 (rows of W1)", lo=1, hi=d)
    sym = 0.5 * (aa + jnp.swapaxes(aa, 1, 2))
    if sym.shape[0] == 1:
        ev, vec = jnp.linalg.eigh(sym[0])
        order = jnp.argsort(-jnp.abs(ev))
        return vec[:, order[:k1]]
    u, _, _ = jnp.linalg.svd(jnp.concatenate(list(sym), axis=1), full_matrices=False)
    return u[:, :k1]


def reduced_rank_fit(
    y: Float[ArrayLike, "m n"], x: Float[ArrayLike, "D n"], k: int, *, rtol: float | None = None
) -> Float[Array, "m D"]:
    r"""$\arg\min_{\operatorname{rank}Z\le k}\|Y-ZX\|_F$ in closed form: $Z^\star=\mathrm{LR}_k(YX^+X)X^+$.

    By Pythagoras $\|Y-ZX\|_F^2=\|Y(I-X^+X)\|_F^2+\|YX^+X-ZX\|_F^2$; $ZX$ ranges over the
    rank-$\le k$ matrices with rows in the row space of $X$, and $\mathrm{LR}_k(YX^+X)$ is the
    best of them (Eckart-Young), reached by $Z^\star$. The minimum-norm minimiser (zero on the
    null space of $X^\top$). ``rtol``: the pseudo-inverse's rank tolerance.
    """
    ya = as_matrix(y, "Y")
    xa = as_matrix(x, "X")
    if ya.shape[1] != xa.shape[1]:
        raise ValueError(f"Y {ya.shape} and X {xa.shape} must have the same number of columns")
    k = check_int(k, "k (rank of Z)", lo=1, hi=min(ya.shape[0], xa.shape[0]))
    xp = pinv(xa, rtol=rtol)
    return low_rank_approx(ya @ xp @ xa, k) @ xp


def shift_from_rowspace(
    m1: Float[ArrayLike, "k1 D"], v: Float[ArrayLike, "D k1"], k: int
) -> Float[Array, "k1 D"]:
    r"""The seed's estimate of $Z$: $\arg\min_{\operatorname{rank}Z\le k}\|M_1(VV^\top-I)+Z(VV^\top-I)\|_F$.

    This is :func:`reduced_rank_fit` with $Y=M_1(VV^\top-I)$, $X=I-VV^\top$; since $X$ is an
    orthogonal projector, $X^+=X^+X=X$ and the minimiser is
    $\mathrm{LR}_k(-M_1(I-VV^\top))(I-VV^\top)$, computed so, with no numerical-rank decision
    on $X$ (the computed projector's zero singular values are a few $\varepsilon$, which a
    pseudo-inverse with the default $\max(m,n)\,\varepsilon$ cut-off can mistake for rank:
    $D=4$, $k_1=3$ gave $\sigma_2(X)=1.04\cdot10^{-15}>4\varepsilon$ and an error of 0.013).
    """
    m1a = as_matrix(m1, "M1")
    va = as_matrix(v, "V")
    if va.shape[0] != m1a.shape[1]:
        raise ValueError(f"V must have D = {m1a.shape[1]} rows, got {va.shape}")
    k = check_int(k, "k (rank of Z)", lo=1, hi=min(m1a.shape))
    off = float(jnp.max(jnp.abs(va.T @ va - jnp.eye(va.shape[1]))))
    if off > 1e-8:
        raise ValueError(
            f"V must have orthonormal columns (a basis of the row space, e.g. from an SVD); "
            f"max |V^T V - I| = {off:.2e}"
        )
    x = jnp.eye(va.shape[0]) - va @ va.T
    return low_rank_approx(-m1a @ x, k) @ x


def transfer_forward(
    m_layers: Sequence[Float[ArrayLike, "a b"]],
    z: Float[ArrayLike, "k1 D"] | None,
    x: Float[ArrayLike, "n D"],
) -> Float[Array, "n p"]:
    r"""$M_L\,\mathrm{ReLU}(M_{L-1}\cdots\mathrm{ReLU}((M_1+Z)x))$ for each row of ``x`` (no noise)."""
    ms = as_matrix_list(m_layers, "m_layers")
    xa = as_matrix(x, "x")
    w1 = ms[0] if z is None else ms[0] + as_matrix(z, "Z")
    return _forward(w1, tuple(ms[1:]), xa)


def _forward(w1, rest, x):
    h = x @ w1.T
    for m in rest:
        h = jax.nn.relu(h) @ m.T
    return h


def estimate_shift(
    x: Float[ArrayLike, "n D"],
    y: Float[ArrayLike, "n ..."],
    m1: Float[ArrayLike, "k1 D"],
    k: int,
    sigma: Float[ArrayLike, "D D"],
    *,
    on_non_gaussian: Literal["raise", "warn", "ignore"] = "warn",
) -> Float[Array, "k1 D"]:
    r"""End-to-end, gradient-free estimate of the rank-$k$ first-layer shift $Z$ from $n$ samples.

    Stein matrix (:func:`stein_matrix`) $\to$ row space $\hat V$ (:func:`rowspace_from_stein`,
    $k_1$ = rows of $M_1$) $\to$ closed form (:func:`shift_from_rowspace`). Estimates
    $Z(I-VV^\top)$; see the module docstring for what is identifiable.
    """
    m1a = as_matrix(m1, "M1")
    a = stein_matrix(x, y, sigma, on_non_gaussian=on_non_gaussian)
    v = rowspace_from_stein(a, m1a.shape[0])
    return shift_from_rowspace(m1a, v, k)


def finetune_first_layer(
    x: Float[ArrayLike, "n D"],
    y: Float[ArrayLike, "n p"],
    m_layers: Sequence[Float[ArrayLike, "a b"]],
    key: Array,
    *,
    rank: int | None = None,
    seeds: int = 4,
    steps: int = 2000,
    lr: float = 1e-2,
    init_scale: float = 0.1,
) -> dict[str, Array]:
    r"""Gradient baselines: Adam on $\frac1n\sum\|y_i-\hat y_i\|^2$ over the first-layer shift.

    ``rank=None``: full fine-tuning ($Z$ free, started at 0). ``rank=k``: LoRA, $Z=BA$ with
    $B\in\mathbb R^{k_1\times k}$ at 0 and $A$ Gaussian (std ``init_scale``). ``seeds`` starts,
    jitted and vmapped. Returns ``z`` (seeds, k1, D) and the final training ``loss`` (seeds,).
    """
    ms = as_matrix_list(m_layers, "m_layers")
    xa = as_matrix(x, "x")
    ya = as_matrix(y, "y")
    k1, d = ms[0].shape
    r = k1 if rank is None else check_int(rank, "rank", lo=1, hi=min(k1, d))
    check_int(seeds, "seeds", lo=1)
    check_int(steps, "steps", lo=1)
    check_float(lr, "lr", lo=0.0, lo_open=True)
    check_float(init_scale, "init_scale", lo=0.0, lo_open=True)
    z, loss = _ft_jit(
        ms[0], tuple(ms[1:]), xa, ya, key, seeds, steps, lr, init_scale, r, rank is None
    )
    return {"z": z, "loss": loss}


@partial(jax.jit, static_argnums=(5, 6, 9, 10))
def _ft_jit(m1, rest, x, y, key, seeds, steps, lr, init_scale, r, full):
    k1, d = m1.shape
    opt = optax.adam(lr)

    def zof(p):
        return p[0] if full else p[0] @ p[1]

    def loss_fn(p):
        return jnp.mean(jnp.sum((_forward(m1 + zof(p), rest, x) - y) ** 2, axis=1))

    def one(k):
        if full:
            p = (jnp.zeros((k1, d), x.dtype), jnp.zeros((), x.dtype))
        else:
            p = (jnp.zeros((k1, r), x.dtype), init_scale * jax.random.normal(k, (r, d), x.dtype))
        s = opt.init(p)

        def step(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (p, _), _ = jax.lax.scan(step, (p, s), None, length=steps)
        return zof(p), loss_fn(p)

    return jax.vmap(one)(jax.random.split(key, seeds))
