"""Planted bugs: every registered claim must be able to fail (issue 16, "every check can fail").

Each planted bug is a small source-level mutation of one maths module of a paper package (an
off-by-one singular-value index, a dropped factor 2, a sign, a pseudo-inverse power, a
transposed factor, ...), the kind of slip a real edit could introduce. The test copies the
module's source, applies the one-line change, executes the copy as a fresh module and points
every ``lowrank_theory`` module that imported a name from the original (the claim modules
above all: they import the paper package's public names) at the mutant's object, with
``monkeypatch``, so everything is restored afterwards. Then:

* the claim(s) named for the bug must *detect* it: on an explicit instance of the claim's
  strategy the claim holds before the mutation and is violated (or its check raises) after;
* the audit must find it by itself: :func:`lowrank_theory.pipeline.audit.run_claim` with the
  stated number of examples (seed 0) reports ``fails`` or ``error`` for a claim registered as
  holding (slow for the claims whose single check takes seconds).

The bugs, with the claim that catches each and the audit examples it needs, are the table
``BUGS`` below. A bug whose mutated text no longer occurs exactly once in its module (the module
was edited) fails ``test_every_paper_has_planted_bugs``: update ``old``/``new`` then.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import lowrank_theory  # noqa: F401  (x64 before any array)
from lowrank_theory.claims import all_claims, get
from lowrank_theory.claims.base import AssumptionError
from lowrank_theory.pipeline.audit import run_claim


@dataclass(frozen=True)
class Bug:
    """One planted bug: replace ``old`` (occurring exactly once) by ``new`` in ``module``."""

    name: str
    paper: str
    module: str
    old: str
    new: str
    what: str
    #: the claim that must catch it and an instance of its strategy on which it does
    claim: str
    params: dict[str, Any]
    #: hypothesis examples run_claim(seed=0) needs to find it (None: only the explicit instance)
    audit_examples: int | None = None
    #: the claim's check on the explicit instance takes seconds (compilation): marked slow
    slow: bool = False
    #: the audit run takes more than a few seconds: marked slow
    slow_audit: bool = False


# --- machinery ---------------------------------------------------------------------------------
def _source(module: str) -> str:
    mod = importlib.import_module(module)
    return Path(mod.__file__).read_text()


def mutant_module(module: str, old: str, new: str) -> types.ModuleType:
    """A fresh copy of ``module`` with the one change ``old -> new`` (``old`` must be unique)."""
    src = _source(module)
    n = src.count(old)
    if n != 1:
        raise AssertionError(f"{module}: the mutated text occurs {n} times, not once: {old!r}")
    orig = importlib.import_module(module)
    name = f"{module}__mutant"
    mod = types.ModuleType(name, orig.__doc__)
    mod.__file__ = orig.__file__
    mod.__package__ = orig.__package__
    sys.modules[name] = mod  # dataclasses look their module up while the class is created
    try:
        exec(compile(src.replace(old, new), orig.__file__, "exec"), mod.__dict__)
    finally:
        del sys.modules[name]
    return mod


def _clear_caches() -> None:
    """Memoised instances (``functools.lru_cache`` in the claim modules) would hide a mutant."""
    for name, mod in list(sys.modules.items()):
        if name.startswith("lowrank_theory") and mod is not None:
            for obj in list(vars(mod).values()):
                if callable(getattr(obj, "cache_clear", None)):
                    obj.cache_clear()


def plant(monkeypatch: pytest.MonkeyPatch, module: str, old: str, new: str) -> types.ModuleType:
    """Plants the mutation: every ``lowrank_theory`` module attribute that *is* an object of the
    original module (a function, class or constant defined there, imported by name) is pointed
    at the mutant's object of the same name; the original module's own attributes too, so its
    unmutated functions call the mutated ones."""
    mut = mutant_module(module, old, new)
    monkeypatch.setitem(sys.modules, mut.__name__, mut)
    orig = importlib.import_module(module)
    swap = {
        id(obj): getattr(mut, k)
        for k, obj in vars(orig).items()
        if not k.startswith("__") and hasattr(mut, k) and getattr(obj, "__module__", None) == module
    }
    for name, mod in list(sys.modules.items()):
        if not name.startswith("lowrank_theory") or mod is None or mod is mut:
            continue
        for attr, obj in list(vars(mod).items()):
            if id(obj) in swap and obj is not swap[id(obj)]:
                monkeypatch.setattr(mod, attr, swap[id(obj)])
    _clear_caches()
    return mut


@pytest.fixture
def clean_caches():
    _clear_caches()
    yield
    _clear_caches()


def _detected(claim, params) -> bool:
    """The claim is violated on ``params``, or its check raised (an error is a detection)."""
    try:
        return not claim.run(params).holds
    except AssumptionError:
        raise  # the instance itself is invalid: a broken test, not a detection
    except Exception:
        return True


# --- the planted bugs --------------------------------------------------------------------------
def _lemma1(**kw):
    p = dict(D=4, L=2, R=1, rank_e=3, spectrum="flat", log10_cond=0.5, e_scale=0.5, seed=3)
    return {**p, **kw}


def _s2ft(**kw):
    p = dict(shape="funnel", r=1, s=1, residual_rank=1, decay=0.5, weight_cond=1.0, x_cond=1.0,
             delta=0.0, label_shift=0.0, covariate=1.0, n=None, seed=0)  # fmt: skip
    return {**p, **kw}


_S2FT_LAST = _s2ft(shape="last", residual_rank=2, weight_cond=3.0, x_cond=4.0, delta=0.3,
                   covariate=2.0, n=400, seed=2673)  # fmt: skip
_DMF = dict(d=8, r=3, rstar=2, L=2, eps=[0.01, 0.1], lam=0.001, lr_frac=1.0, rank_given=False,
            T=40, seed=41710974)  # fmt: skip
_KERNEL = dict(n=2, log10_cond=0.0, log10_sigma=-3.0, align="random", seed=0)
_MODEL = dict(model="linear", lam=0.25, target_scale=0.3, radius=0.5, tight=False, seed=0)

# fmt: off
BUGS: list[Bug] = [
    # --- lora (seed 000) -----------------------------------------------------------------------
    Bug(
        "lora-qblock-off-by-one", "lora", "lowrank_theory.lora.linear",
        "lo, hi = r * (l - 1), min(r * l, re_prime)",
        "lo, hi = r * (l - 1) + 1, min(r * l + 1, re_prime)",
        "Q_l's block of right singular vectors taken with the seed's 1-based range R(l-1)+1:Rl "
        "in 0-based code (skips v_1, adds v_{Rl+1})",
        "lora.lemma1.construction", _lemma1(D=2, L=1, R=1, rank_e=1, log10_cond=0.0, seed=0),
        audit_examples=1,
    ),
    Bug(
        "lora-min-rank-floor", "lora", "lowrank_theory.lora.linear",
        "math.ceil(rank_e / len(ws))", "rank_e // len(ws)",
        "ceil(R_E / L) computed as floor (integer division)",
        "lora.lemma1.exact",
        _lemma1(D=32, L=2, R=14, rank_e=13, spectrum="decaying", e_scale=10.0, seed=3132363),
        audit_examples=3,
    ),
    Bug(
        "lora-adapter-transposed", "lora", "lowrank_theory.lora.linear",
        "dw_l = jnp.linalg.solve(prefix.T, left.T).T",
        "dw_l = jnp.linalg.solve(prefix, left.T).T",
        "Delta W_l = S^-1 E'Q_l P^-T instead of P^-1 (transposed prefix factor in the solve)",
        "lora.lemma1.construction",
        _lemma1(D=32, L=2, R=10, rank_e=13, spectrum="decaying", e_scale=10.0, seed=3132363),
        audit_examples=3,
    ),
    Bug(
        "lora-stein-conditional-covariance", "lora", "lowrank_theory.lora.transfer",
        "cond = s - kmat @ c @ kmat.T", "cond = s - kmat @ kmat.T",
        "conditional covariance of x given z = W_1 x without the C = W_1 Sigma W_1^T factor",
        "lora.stein.identity",
        dict(D=8, k1=1, link="poly", log10_cond=2.0, seed=1000),
        audit_examples=5, slow=True, slow_audit=True,
    ),
    Bug(
        "lora-stein-matrix-mean-term", "lora", "lowrank_theory.lora.transfer",
        "return si @ exx @ si - eg * si", "return si @ exx @ si - si",
        "stein_matrix_exact's E[y T(x)] with E[y] dropped from the mean term E[y] Sigma^-1 "
        "(the claim used its own copy of the formula and missed it)",
        "lora.stein.identity", dict(D=2, k1=1, link="poly", log10_cond=0.0, seed=0),
        audit_examples=1, slow_audit=True,
    ),
    Bug(
        "lora-min-error-index", "lora", "lowrank_theory.lora.linear",
        "return float(s[k - 1]) if k <= d else 0.0", "return float(s[k]) if k < d else 0.0",
        "sigma_{RL+1}(E) read at 0-based index RL+1 (off-by-one singular-value index)",
        "lora.lemma1.min_error", _lemma1(D=3, L=1, R=1, rank_e=2, log10_cond=0.0, seed=1),
        audit_examples=9, slow=True, slow_audit=True,
    ),
    # --- s2ft (seed 002) -----------------------------------------------------------------------
    Bug(
        "s2ft-sec42-factor-2", "s2ft", "lowrank_theory.s2ft.dynamics",
        "gbar = (-2.0 / n) *", "gbar = (-1.0 / n) *",
        "the closed-form gradient of the squared loss without its factor 2",
        "s2ft.sec42.gradient", _s2ft(), audit_examples=1,
    ),
    Bug(
        "s2ft-sec42-rows-shifted", "s2ft", "lowrank_theory.s2ft.dynamics",
        "w = w_l.at[rows, :].add(vv.T)", "w = w_l.at[(rows + 1) % w_l.shape[0], :].add(vv.T)",
        "V^T scattered into the rows S + 1 (off-by-one channel index) in the autodiff route",
        "s2ft.sec42.gradient", _s2ft(), audit_examples=1,
    ),
    Bug(
        "s2ft-gd-sign", "s2ft", "lowrank_theory.s2ft.dynamics",
        "g = 2.0 * (s2 @ v @ h_s - cq_s.T)", "g = 2.0 * (s2 @ v @ h_s + cq_s.T)",
        "sign of the data term in the S2FT gradient (GD then converges to -V*)",
        "s2ft.implicit_bias", _s2ft(), audit_examples=1,
    ),
    Bug(
        "s2ft-f12-pinv-power", "s2ft", "lowrank_theory.s2ft.solutions",
        "vt = nt.WS_pinv @ nt.CW @ nt.A2_pinv", "vt = nt.WS_pinv @ nt.CW @ nt.A_pinv",
        "(A^2)^+ in the closed form (19) replaced by A^+ (pseudo-inverse power)",
        "s2ft.lemmaF12.solution", _S2FT_LAST, audit_examples=3,
    ),
    Bug(
        "s2ft-f9-rank-off-by-one", "s2ft", "lowrank_theory.s2ft.solutions",
        "mr = (uu[:, :r] * s[None, :r]) @ vt[:r, :]",
        "mr = (uu[:, : r + 1] * s[None, : r + 1]) @ vt[: r + 1, :]",
        "SVD_r(M) truncated at r + 1 singular values (off-by-one rank)",
        "s2ft.lemmaF9.solution", _S2FT_LAST, audit_examples=3,
    ),
    Bug(
        "s2ft-copermute-inverse", "s2ft", "lowrank_theory.s2ft.dynamics",
        "out[ell] = ws[ell][:, perm]", "out[ell] = ws[ell][:, np.argsort(perm)]",
        "the columns of W_{l+1} permuted by P^-1 instead of P (invisible on involutions, which "
        "the instances' sorted channel sets mostly give)",
        "s2ft.permutation_invariance", _s2ft(), audit_examples=1,
    ),
    Bug(
        "s2ft-dense-update-inverse-permutation", "s2ft", "lowrank_theory.s2ft.dynamics",
        "perm = channel_permutation(ws[ell - 1].shape[0], S)",
        "perm = np.argsort(channel_permutation(ws[ell - 1].shape[0], S))",
        "the dense update permutes by the inverse of the permutation putting S first (its "
        "leading block is then not the rows S)",
        "s2ft.permutation_invariance", _s2ft(), audit_examples=1,
    ),
    Bug(
        "s2ft-f13-identity-pinv-power", "s2ft", "lowrank_theory.s2ft.bounds",
        "x = (nt.P2 - nt.P1) @ nt.D @ instance.sigma_x_in @ nt.W_below.T @ nt.A_pinv",
        "x = (nt.P2 - nt.P1) @ nt.D @ instance.sigma_x_in @ nt.W_below.T @ nt.A2_pinv",
        "(A^2)^+ for A^+ in the subspace term of (23) (equal when A is a partial isometry)",
        "s2ft.theoremF13.bias[identity]",
        _s2ft(x_cond=4.0, delta=0.3, random_S=True), audit_examples=1,
    ),
    # --- lin (seed 003) ------------------------------------------------------------------------
    Bug(
        "lin-krr-ridge-factor-2", "lin", "lowrank_theory.lin.ntk",
        "kk + s * np.eye(kk.shape[0])", "kk + 2 * s * np.eye(kk.shape[0])",
        "KRR ridge 2 sigma instead of sigma (the lambda/2 of the regulariser counted twice)",
        "lin.krr.equivalence", dict(lam=0.01, n=2, seed=0), audit_examples=1,
    ),
    Bug(
        "lin-risk-bound-eigen-index", "lin", "lowrank_theory.lin.ntk",
        "lo = (s * np.linalg.norm(yy) / (s + ev[-1])) ** 2",
        "lo = (s * np.linalg.norm(yy) / (s + ev[-2])) ** 2",
        "Theorem 5's lower bound with the second-largest eigenvalue (off-by-one index)",
        "lin.theorem5.lower",
        dict(n=8, log10_cond=1.0, log10_sigma=1.0, align="top", seed=18), audit_examples=4,
    ),
    Bug(
        "lin-mean-sum-swapped", "lin", "lowrank_theory.lin.ntk",
        'r.size if reduction == "mean" else 1', 'r.size if reduction == "sum" else 1',
        "the 1/n of the mean risk applied to the sum reduction",
        "lin.theorem5.lower", _KERNEL, audit_examples=1,
    ),
    Bug(
        "lin-thm7-eta-power", "lin", "lowrank_theory.lin.ntk",
        "a = cc / (1 - e) ** 2 if", "a = cc / (1 - e) if",
        "Theorem 7's a = c/(1 - eta)^2 with the square dropped",
        "lin.theorem7.ratio[corrected]",
        dict(n=2, log10_cond=0.0, log10_sigma=-2.0, s_kind="random", eta_target=0.05,
             align="random", seed=0),
        audit_examples=1,
    ),
    Bug(
        "lin-eta-inverse-for-inverse-sqrt", "lin", "lowrank_theory.lin.ntk",
        "ki = (u / np.sqrt(w)[None, :]) @ u.T", "ki = (u / w[None, :]) @ u.T",
        "eta = ||K^-1 S K^-1|| instead of ||K^-1/2 S K^-1/2|| (larger for lambda_max(K) = 1, "
        "so Theorem 6's bracket only loosens: caught by the independent eta)",
        "lin.theorem6.eigs",
        dict(n=2, log10_cond=1.0, log10_sigma=0.0, s_kind="random", eta_target=0.3,
             align="random", seed=0),
        audit_examples=5,
    ),
    Bug(
        "lin-theorem4-threshold-halved", "lin", "lowrank_theory.lin.linearization",
        "return 2 * residual0 * lip_f / radius", "return residual0 * lip_f / radius",
        "lambda_o = ||r_0|| Lip(f) / r, half the threshold (a longer guaranteed time)",
        "lin.theorem4.threshold",
        dict(model="linear", lam=0.25, target_scale=10.0, radius=0.5, tight=True, seed=0),
        audit_examples=3,
    ),
    Bug(
        "lin-flow-derivative-sign", "lin", "lowrank_theory.lin.linearization",
        "return float(jnp.vdot(g, -g - lam_t * u))", "return float(jnp.vdot(g, -g + lam_t * u))",
        "sign of the regulariser in dR/dt = grad R . (-grad R - lambda_t (theta - theta_0))",
        "lin.theorem1.monotone", _MODEL, audit_examples=1,
    ),
    Bug(
        "lin-split-update-sign", "lin", "lowrank_theory.lin.linearization",
        "return theta0 + (1 - lt * h) * (theta - h * g - theta0), lt",
        "return theta0 + (1 + lt * h) * (theta - h * g - theta0), lt",
        "the split update's shrinkage (1 - lambda eta) with the wrong sign",
        "lin.lemma3.flow", _MODEL, audit_examples=1, slow=True, slow_audit=True,
    ),
    # --- dmf (seed 004) ------------------------------------------------------------------------
    Bug(
        "dmf-rho-square", "dmf", "lowrank_theory.dmf.spectra",
        "p = np.array([np.prod(np.delete(r, l) ** 2) for l in range(depth)])",
        "p = np.array([np.prod(np.delete(r, l)) for l in range(depth)])",
        "prod_{k != l} rho_k(t-1) instead of rho_k^2 in the recursion (6)",
        "dmf.theorem21.rho", _DMF, audit_examples=3, slow_audit=True,
    ),
    Bug(
        "dmf-decay-without-lr", "dmf", "lowrank_theory.dmf.factorization",
        "(1.0 - lr * lam) * w - lr * g", "(1.0 - lam) * w - lr * g",
        "weight decay applied as (1 - lambda) W instead of (1 - eta lambda) W",
        "dmf.theorem21.rho", _DMF, audit_examples=3, slow_audit=True,
    ),
    Bug(
        "dmf-gradient-transposed", "dmf", "lowrank_theory.dmf.factorization",
        "grads[l] = b if pre is None else b @ pre.T",
        "grads[l] = b if pre is None else b @ pre",
        "grad_{W_l} = W_{L:l+1}^T E W_{l-1:1} (prefix product not transposed)",
        "dmf.theorem21.block_form", _DMF, audit_examples=3, slow_audit=True,
    ),
    Bug(
        "dmf-psi-transposed", "dmf", "lowrank_theory.dmf.compression",
        "g = end_to_end(ws[1:]).T @ obs if", "g = end_to_end(ws[1:]) @ obs if",
        "Psi = W_{L:2}(0) Phi instead of W_{L:2}(0)^T Phi (transposed factor)",
        "dmf.lemmaE1.identities", _DMF, audit_examples=3, slow_audit=True,
    ),
]
# fmt: on
PAPERS = ("lora", "s2ft", "lin", "dmf")


def _param(bug: Bug):
    marks = [pytest.mark.slow] if bug.slow else []
    return pytest.param(bug, id=bug.name, marks=marks)


def test_every_paper_has_planted_bugs():
    for paper in PAPERS:
        assert sum(b.paper == paper for b in BUGS) >= 4, paper
    ids = {c.id for c in all_claims()}
    for b in BUGS:
        assert b.claim in ids and get(b.claim).expected == "holds", b.name
        assert b.module.startswith(f"lowrank_theory.{b.paper}."), b.name
        assert _source(b.module).count(b.old) == 1, f"{b.name}: the mutated text moved"
    assert len({b.name for b in BUGS}) == len(BUGS)


@pytest.mark.parametrize("bug", [_param(b) for b in BUGS])
def test_planted_bug_is_caught_by_its_claim(bug, monkeypatch, clean_caches):
    claim = get(bug.claim)
    assert claim.run(bug.params).holds, f"{bug.name}: the instance fails without the bug"
    plant(monkeypatch, bug.module, bug.old, bug.new)
    assert _detected(claim, bug.params), f"{bug.name} ({bug.what}) survives {bug.claim}"


def _audit_param(bug: Bug):
    marks = [pytest.mark.slow] if bug.slow_audit or bug.slow else []
    return pytest.param(bug, id=bug.name, marks=marks)


@pytest.mark.parametrize("bug", [_audit_param(b) for b in BUGS if b.audit_examples])
def test_planted_bug_is_found_by_the_audit(bug, monkeypatch, clean_caches):
    plant(monkeypatch, bug.module, bug.old, bug.new)
    rep = run_claim(get(bug.claim), examples=bug.audit_examples, seed=0)
    assert rep.status in ("fails", "error"), f"{bug.name}: audit says {rep.status}"


def test_mutation_machinery_restores_the_module(monkeypatch):
    """A planted bug is undone by monkeypatch: the claim modules see the originals again."""
    from lowrank_theory.claims.lora import linear as claims_linear
    from lowrank_theory.lora import linear

    original = claims_linear.min_lora_rank
    with monkeypatch.context() as mp:
        mut = plant(mp, "lowrank_theory.lora.linear", "math.ceil(rank_e / len(ws))", "0")
        assert claims_linear.min_lora_rank is mut.min_lora_rank is not original
        assert linear.min_lora_rank is mut.min_lora_rank
    assert claims_linear.min_lora_rank is original is linear.min_lora_rank
    with pytest.raises(AssertionError, match="occurs 0 times"):
        mutant_module("lowrank_theory.lora.linear", "no such text", "x")
