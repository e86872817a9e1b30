"""Every registered claim as a hypothesis test that passes when its registered status holds.

* ``holds``: no drawn instance violates it;
* ``fails``: the stored counterexample still violates it (and so the corrected claim, registered
  under its own id, is what the ``holds`` tests check);
* ``empirical``: the measured effect is in the direction the claim states on the drawn
  instances (the check's ``holds``), with the numbers in the audit JSON.
"""

import pytest
from conftest import EXAMPLES_FACTOR
from hypothesis import given, settings

from lowrank_theory.claims import all_claims

CLAIMS = all_claims()


def _param(c):
    marks = [pytest.mark.slow] if c.slow else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("claim", [_param(c) for c in CLAIMS])
def test_claim(claim):
    if claim.expected == "fails":
        r = claim.run(dict(claim.counterexample))
        assert not r.holds, f"{claim.id}: stored counterexample no longer violates: {r}"
        return

    @settings(max_examples=claim.test_examples * EXAMPLES_FACTOR)
    @given(params=claim.params())
    def inner(params):
        r = claim.run(params)
        assert r.holds, f"{claim.id} violated on {params}: {r}"
        # the tightness figure must be a number (a NaN would hide a broken check) unless the
        # instance is flagged degenerate (a side below the scale floor; counted apart)
        assert r.degenerate or r.tightness == r.tightness, f"{claim.id}: NaN tightness on {params}"

    inner()


def test_registry_ids_are_unique_and_documented():
    assert CLAIMS, "no claims registered"
    for c in CLAIMS:
        assert c.statement and c.source, c.id
        if c.expected == "fails":
            assert c.corrected, f"{c.id}: a failing claim must state its correction"
