"""The audit's local refinement (step 2 of :mod:`lowrank_theory.pipeline.audit`): a
model-guided choice among draws of the claim's strategy, then a first-improvement hill climb on
the violation margin from the best instances checked, within what the strategy draws
(:class:`_Space`).

The hill climb moves one parameter at a time; it cannot reach a violation that needs several
discrete parameters to change together when each change alone lowers the margin. Measured on
``lora.theorem5.bound``: a violation needs the small-target regime, one block, no bias, an
isotropic input distribution and a large width at once (about one draw in 75); at seed 1 the
sample settled on a width-3 instance of margin 0.94 from which every single move lowered the
margin. The model-guided step (:func:`_model_guided`) fits a linear model of the log margin
on the parameters' values and picks, among :data:`SPACE_DRAWS` draws of the strategy, the one
of largest upper confidence bound: values that each go with large margins are combined even
where no sampled instance has them all. With 50 examples, ``lora.theorem5.bound`` was found
at 31 of the seeds 0-39 by the hill climb alone and at 36 with a third of the budget to the
model-guided step (seeds 0, 1 and 2 among them).
"""

from __future__ import annotations

import math
from typing import Any

from ..claims.base import CheckResult
from .audit_search import Search, is_equality_case, is_finite, params_key

#: halvings of the refinement's float step (the first step is half the drawn range)
REFINE_HALVINGS = 1
#: starting points of the refinement (the best instances, distinct discrete parameters)
REFINE_STARTS = 3
#: deterministic draws of a claim's strategy from which the refinement learns its space
SPACE_DRAWS = 300
#: an integer parameter drawn with more values than this is a size or a rank (``_Space``)
FEW_VALUES = 4
#: margins within this relative difference are equal (rounding): no improvement
MARGIN_RTOL = 1e-9
#: share of the refinement budget for the model-guided step (:func:`_model_guided`); the hill
#: climb gets the rest and what the model-guided step leaves
MODEL_SHARE = 1 / 3
#: posterior standard deviations added to the mean in the upper confidence bound
MODEL_UCB = 2.0
#: margins below this are taken as this in the model's log margin
MODEL_FLOOR = 1e-6


def default_refine_budget(examples: int) -> int:
    """Evaluations of the local refinement per claim: half of ``examples``, at least 4."""
    return max(4, examples // 2)


def _is_float(v: Any) -> bool:
    return isinstance(v, float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _discrete(x: dict[str, Any]) -> dict[str, Any]:
    """The discrete parameters of an instance: everything but floats and the seed."""
    return {k: v for k, v in x.items() if k != "seed" and not _is_float(v)}


class _Space:
    """What the claim's strategy draws, so that the refinement stays within it: each float
    parameter's range, each discrete parameter's values, and which values of the other
    discrete parameters were drawn together with each (see :meth:`compatible`). Learned
    from the instances the search checked (``records``, whose margins also rank the moves)
    and from :data:`SPACE_DRAWS` deterministic draws of the strategy (``drawn``; nothing is
    built)."""

    def __init__(
        self, records: list[tuple[dict[str, Any], CheckResult]], drawn: list[dict[str, Any]]
    ) -> None:
        self.scored = [(p, r.margin) for p, r in records if _usable(r)]
        self.equal = {params_key(p) for p, r in records if _usable(r) and is_equality_case(r)}
        self.ranges: dict[str, tuple[float, float]] = {}
        self.values: dict[str, dict[str, Any]] = {}
        #: (key, value) -> other key -> {value key: value} drawn together
        self.together: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for p in [*drawn, *(p for p, _ in records)]:
            for k, v in p.items():
                if k != "seed" and _is_float(v):
                    lo, hi = self.ranges.get(k, (v, v))
                    self.ranges[k] = (min(lo, v), max(hi, v))
            disc = _discrete(p)
            for k, v in disc.items():
                self.values.setdefault(k, {})[params_key(v)] = v
                with_kv = self.together.setdefault((k, params_key(v)), {})
                for q, w in disc.items():
                    with_kv.setdefault(q, {})[params_key(w)] = w

    def compatible(self, k: str, v: Any, q: str, w: Any) -> bool:
        """Whether ``q = w`` goes with ``k = v`` in the strategy's draws.

        Yes when they were drawn together. Otherwise: two integers go together when ``w``
        lies within the range of ``q`` drawn beside ``k = v`` (an inequality such as a rank
        at most a size is kept; a derived value, with few values, is not) and both are not
        of few values (then only what was drawn together goes: a sparsity derived from a
        rank); an integer of many values (more than :data:`FEW_VALUES`: a size, a rank) goes
        with any value of a parameter that is not a number (a distribution): too many
        combinations to see them all, and such families do not constrain sizes."""
        seen = self.together.get((k, params_key(v)), {}).get(q, {})
        if params_key(w) in seen:
            return True
        if _is_int(v) and _is_int(w):
            ints = [u for u in seen.values() if _is_int(u)]
            in_range = bool(ints) and min(ints) <= w <= max(ints)
            return in_range and (self._many(k) or self._many(q))
        return (_is_int(v) and self._many(k)) or (_is_int(w) and self._many(q))

    def _many(self, k: str) -> bool:
        return sum(_is_int(u) for u in self.values.get(k, {}).values()) > FEW_VALUES

    def moves(self, x: dict[str, Any], best: float, steps: dict[str, float]) -> list[dict]:
        """One-parameter moves from ``x`` (margin ``best``): each float parameter by +-its
        step (clamped to its range), each discrete one to another value (an integer to the
        nearest drawn below and above) :meth:`compatible` with each other discrete value.

        Order: first the moves to another family of instances (a parameter that is not a
        number: a distribution, a regime, a shape; the quickest way off a plateau of equal
        margins), then the integer moves, then the float ones; within each, the most
        promising first: by the largest margin checked with the new value (a float: beyond
        the old value on that side), leaving out the margins that tie ``best``."""
        scored = [(p, m) for p, m in self.scored if not _ties(m, best)]
        out: list[tuple[int, float, dict[str, Any]]] = []
        for k, step in steps.items():
            if not _is_float(x.get(k)) or k not in self.ranges:  # an optional float left unset
                continue
            lo, hi = self.ranges[k]
            for v in (min(hi, x[k] + step), max(lo, x[k] - step)):
                if v != x[k]:
                    side = [
                        m
                        for p, m in scored
                        if _is_float(p.get(k)) and (p[k] - x[k]) * (v - x[k]) > 0
                    ]
                    out.append((2, max(side, default=-math.inf), {**x, k: float(v)}))
        disc = _discrete(x)
        for k in disc:
            group = 1 if _is_int(x[k]) else 0
            for kv, v in self._alternatives(k, x[k]):
                if all(self.compatible(k, v, q, w) for q, w in disc.items() if q != k):
                    same = [m for p, m in scored if k in p and params_key(p[k]) == kv]
                    out.append((group, max(same, default=-math.inf), {**x, k: v}))
        out.sort(key=lambda gmc: (gmc[0], -gmc[1]))
        return [c for _, _, c in out]

    def _alternatives(self, k: str, v: Any) -> list[tuple[str, Any]]:
        """Other drawn values of ``k``: for an integer the nearest drawn below and above."""
        others = [(kv, w) for kv, w in self.values.get(k, {}).items() if kv != params_key(v)]
        if _is_int(v):
            ints = [(kv, w) for kv, w in others if _is_int(w)]
            below = max((kw for kw in ints if kw[1] < v), key=lambda kw: kw[1], default=None)
            above = min((kw for kw in ints if kw[1] > v), key=lambda kw: kw[1], default=None)
            return [kw for kw in (below, above) if kw is not None]
        return others


def _usable(r: CheckResult) -> bool:
    """An instance the refinement can start from or compare with: finite margin, not
    degenerate."""
    return not r.degenerate and is_finite(r.margin)


def _starts(space: _Space) -> list[tuple[dict[str, Any], float]]:
    """Starting points of the refinement: the instances with the largest margins, equality
    cases last (see :func:`~lowrank_theory.pipeline.audit_search.margin_label`), at most :data:`REFINE_STARTS`, no two with the same
    discrete parameters or the same margin (a plateau of equal margins starts one climb, not
    several)."""
    out: list[tuple[dict[str, Any], float]] = []
    seen = set()
    for p, m in sorted(space.scored, key=lambda pm: (params_key(pm[0]) in space.equal, -pm[1])):
        d = params_key(_discrete(p))
        if d not in seen and not any(_ties(m, m2) for _, m2 in out):
            seen.add(d)
            out.append((p, m))
    return out[:REFINE_STARTS]


def _ties(a: float, b: float) -> bool:
    """Margins equal up to rounding (relative :data:`MARGIN_RTOL`)."""
    return abs(a - b) <= MARGIN_RTOL * max(abs(a), abs(b))


def refine(search: Search, budget: int) -> None:
    """Step 2 (:mod:`lowrank_theory.pipeline.audit`): the model-guided step
    (:func:`_model_guided`) with :data:`MODEL_SHARE` of ``budget``, then
    a first-improvement hill climb on the margin from each of the best instances checked so
    far in turn (:func:`_starts`) with the rest, shared evenly by the starts, what one leaves
    going to the next: at most ``budget`` evaluations in all (refused instances included).
    Stops at the first violation."""
    from ..claims.base import draw_params

    drawn = draw_params(search.claim.params(), SPACE_DRAWS)
    tried = {params_key(p) for p, _ in search.records}
    before = len(search.records) + len(search.infeasible_at)
    n_model = math.floor(budget * MODEL_SHARE)
    _model_guided(search, _Space(search.records, drawn), tried, n_model, drawn)
    if search.violated:
        return
    left = budget - (len(search.records) + len(search.infeasible_at) - before)
    space = _Space(search.records, drawn)
    starts = _starts(space)
    for i, (x, best) in enumerate(starts):
        if left <= 0:
            return
        share = -(-left // (len(starts) - i))
        used, done = _climb(search, space, dict(x), best, tried, share)
        left -= used
        if done:
            return


def _model_guided(
    search: Search, space: _Space, tried: set[str], budget: int, drawn: list[dict]
) -> None:
    """The model-guided step: a Bayesian linear model of the log margin on the instances'
    discrete parameters (one indicator per drawn value) and floats, refitted after each
    evaluation; the next instance is the untried one, among the :data:`SPACE_DRAWS` draws of
    the claim's strategy (``drawn``: every candidate is an instance the strategy produces, so
    it meets the claim's assumptions by construction), of largest upper confidence bound (mean
    + :data:`MODEL_UCB` posterior standard deviations): combinations of values that each
    go with large margins are tried first, and values rarely checked where the model cannot
    rule them out. At most ``budget`` evaluations; stops at the first violation."""
    import numpy as np

    pool = {params_key(p): p for p in drawn if params_key(p) not in tried}
    for _ in range(budget):
        usable = [(p, r.margin) for p, r in search.records if _usable(r)]
        if len(usable) < 2 or not pool:
            return
        cols = _columns(space, [p for p, _ in usable])
        x = np.array([_features(p, cols, space) for p, _ in usable])
        y = np.log(np.maximum([m for _, m in usable], MODEL_FLOOR))
        keys = list(pool)
        mu, sd = _posterior(x, y, np.array([_features(pool[k], cols, space) for k in keys]))
        key = keys[int(np.argmax(mu + MODEL_UCB * sd))]
        cand = pool.pop(key)
        tried.add(key)
        search.model_guided += 1
        r = search.try_instance(cand)
        if r is not None and not r.holds:
            return


def _columns(space: _Space, checked: list[dict]) -> list[tuple[str, str | None]]:
    """The model's features: ``(k, value key)`` per drawn value of each discrete parameter,
    ``(k, None)`` per float parameter checked."""
    cols: list[tuple[str, str | None]] = [
        (k, kv) for k, vals in sorted(space.values.items()) for kv in sorted(vals)
    ]
    floats = sorted({k for p in checked for k, v in p.items() if k != "seed" and _is_float(v)})
    return cols + [(k, None) for k in floats if k in space.ranges]


def _features(p: dict, cols: list[tuple[str, str | None]], space: _Space) -> list[float]:
    out = []
    for k, kv in cols:
        if kv is not None:
            out.append(float(k in p and params_key(p[k]) == kv))
        else:
            lo, hi = space.ranges[k]
            v = p.get(k)
            out.append((v - lo) / (hi - lo) if _is_float(v) and hi > lo else 0.0)
    return out


def _posterior(x, y, xs):
    """Posterior mean and standard deviation at ``xs`` of Bayesian linear regression of ``y``
    on ``x`` (an intercept added; unit prior precision on the weights, the noise variance the
    residuals' mean square, at least 1e-2)."""
    import numpy as np

    x1 = np.hstack([np.ones((len(x), 1)), x])
    xs1 = np.hstack([np.ones((len(xs), 1)), xs])
    ym = float(np.mean(y))
    a = x1.T @ x1 + np.eye(x1.shape[1])
    w = np.linalg.solve(a, x1.T @ (y - ym))
    noise = max(float(np.mean((x1 @ w - (y - ym)) ** 2)), 1e-2)
    cov = noise * np.linalg.inv(a)
    mu = ym + xs1 @ w
    sd = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", xs1, cov, xs1), 0.0))
    return mu, sd


def _climb(search, space: _Space, x, best: float, tried: set[str], budget: int):
    """Hill climb from ``x`` until no move improves the margin beyond rounding (float steps
    halved :data:`REFINE_HALVINGS` times) or ``budget`` evaluations are spent; returns the
    evaluations used and whether a violation was found."""
    steps = {k: (hi - lo) / 2 for k, (lo, hi) in space.ranges.items() if k in x and _is_float(x[k])}
    steps = {k: s for k, s in steps.items() if s > 0}
    used = 0
    for _ in range(REFINE_HALVINGS + 1):
        improved = True
        while improved:
            improved = False
            for cand in space.moves(x, best, steps):
                if params_key(cand) in tried:
                    continue
                if used >= budget:
                    return used, False
                tried.add(params_key(cand))
                used += 1
                r = search.try_instance(cand)
                if r is not None and not r.holds:
                    return used, True
                if r is not None and _usable(r) and r.margin > best and not _ties(r.margin, best):
                    x, best, improved = cand, float(r.margin), True
                    break
        steps = {k: s / 2 for k, s in steps.items()}
    return used, False
