"""The audit: statuses, counts, shrinking, JSON schema and the command line."""

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_theory.claims import Claim, all_claims, compare, get
from lowrank_theory.pipeline import audit


def _toy(expected="holds", counterexample=None, bound=1.0):
    # |x| <= bound for x drawn in [-3, 3]: holds for bound >= 3, fails otherwise
    return Claim(
        id="toy",
        source="test",
        statement="|x| <= b",
        params=lambda: st.fixed_dictionaries({"x": st.floats(-3, 3), "seed": st.just(0)}),
        build=lambda p: p["x"],
        check=lambda x: compare(abs(x), bound, "<=", 0.0),
        expected=expected,
        counterexample=counterexample,
        corrected="b >= 3" if expected == "fails" else None,
    )


def test_holding_claim_reports_counts_and_tightness():
    rep = audit.run_claim(_toy(bound=3.0), examples=30, seed=1)
    assert rep.status == "holds" and not rep.unexpected
    assert rep.n_instances >= 30 and rep.n_violations == 0
    assert 0 <= rep.max_tightness <= 1


def test_violation_is_found_and_shrunk():
    claim = Claim(
        id="toy-int",
        source="test",
        statement="n <= 10",
        params=lambda: st.fixed_dictionaries({"n": st.integers(0, 10**6), "seed": st.just(0)}),
        build=lambda p: p["n"],
        check=lambda n: compare(n, 10, "<=", 0.0),
    )
    rep = audit.run_claim(claim, examples=50, seed=0)
    assert rep.status == "fails" and rep.unexpected  # registered as holding
    assert rep.n_violations > 0
    ce = rep.counterexample
    assert ce is not None and not ce["holds"]
    assert ce["params"]["n"] == 11  # shrunk to the smallest violating instance
    assert (ce["lhs"], ce["rhs"]) == (11.0, 10.0)


def test_failing_claim_reproduces_its_counterexample():
    rep = audit.run_claim(_toy("fails", {"x": 2.0, "seed": 0}), examples=5, seed=0)
    assert rep.status == "fails" and not rep.unexpected


def test_check_error_is_reported_not_hidden():
    bad = Claim(
        id="bad",
        source="t",
        statement="s",
        params=lambda: st.fixed_dictionaries({"seed": st.just(0)}),
        build=lambda p: 1 / 0,
        check=lambda x: compare(0, 0, "==", 0),
    )
    rep = audit.run_claim(bad, examples=3)
    assert rep.status == "error" and "ZeroDivisionError" in rep.error and rep.unexpected


def test_compare_semantics():
    assert compare(1.0, 2.0, "<=", 0).tightness == 0.5
    assert compare(2.0, 1.0, ">=", 0).tightness == 0.5
    assert not compare(1.0 + 1e-9, 1.0, "<=", 1e-12).holds
    assert compare(1.0 + 1e-13, 1.0, "<=", 1e-12).holds
    assert not compare(float("nan"), 1.0, "<=", 1.0).holds


def test_cli_audit_writes_the_documented_json(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lowrank_theory",
            "audit",
            "--claims",
            "lora.lemma1.exact",
            "--examples",
            "5",
            "--json",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| `lora.lemma1.exact` |" in proc.stdout
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    for key in ("id", "status", "n_instances", "n_violations", "max_tightness", "counterexample"):
        assert key in row
    assert row["id"] == "lora.lemma1.exact" and row["status"] == "holds"
    assert row["n_instances"] >= 5 and row["meta"]["versions"]["jax"]

    # the saved report renders the README table without re-running any claim
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- audit:start -->\nSTALE-TABLE\n<!-- audit:end -->\nbottom\n")
    from lowrank_theory.__main__ import main

    assert main(["audit", "--from-json", str(out), "--update-readme", str(readme)]) == 0
    text = readme.read_text()
    assert "STALE-TABLE" not in text and text.startswith("top") and text.endswith("bottom\n")
    assert "--examples 5 --seed 0" in text and "| `lora.lemma1.exact` |" in text


def test_get_unknown_claim_names_a_handful_of_close_matches():
    ids = all_claims()
    for typo, want in [
        ("lora.lemma1", "lora.lemma1.exact"),  # a prefix: the ids starting with it
        ("lora.lemma1.exat", "lora.lemma1.exact"),  # a typo: difflib's close matches
    ]:
        with pytest.raises(KeyError) as exc:
            get(typo)
        msg = str(exc.value)
        named = [c.id for c in ids if f"{c.id}," in msg or f"{c.id}?" in msg]
        assert want in named and 1 <= len(named) <= 5, msg
    with pytest.raises(KeyError, match="ids start with one of: dmf, lin, lora, s2ft"):
        get("nope")


# --- Claim.run validates its parameters -------------------------------------------------------

LEMMA1 = {"D": 6, "L": 2, "R": 3, "rank_e": 5, "spectrum": "flat", "log10_cond": 0.5,
          "e_scale": 2.0, "seed": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"D": 6}, r"lora\.lemma1\.exact: missing parameter\(s\) 'L', 'R', 'e_scale'"),
        ({**LEMMA1, "foo": 1}, r"lora\.lemma1\.exact: unknown parameter\(s\) 'foo'"),
        ({**LEMMA1, "D": 6.5}, r"parameter 'D' must be int .* got float 6\.5"),
        ({**LEMMA1, "spectrum": 3}, r"parameter 'spectrum' must be str"),
        # the package's validation refuses the instance: an assumption, not a counterexample
        ({**LEMMA1, "R": 0}, r"lora\.lemma1\.exact: .*assumption.*rank .*must be >= 1"),
        ({**LEMMA1, "R": 7}, r"lora\.lemma1\.exact: .*assumption.*must be <= 6"),
    ],
)
def test_claim_run_names_bad_parameters(params, pattern):
    from lowrank_theory.claims import AssumptionError

    claim = get("lora.lemma1.exact")
    with pytest.raises(AssumptionError, match=pattern) as exc:
        claim.run(params)
    assert isinstance(exc.value, ValueError) and exc.value.claim_id == "lora.lemma1.exact"


def test_claim_run_accepts_valid_and_optional_parameters():
    assert get("lora.lemma1.exact").run(LEMMA1).holds
    ints_as_floats = {**LEMMA1, "log10_cond": 0, "e_scale": 2}
    assert get("lora.lemma1.exact").run(ints_as_floats).holds
    # stored counterexamples may omit keys the strategy draws only sometimes
    for cid in ("s2ft.lemmaF14.order", "s2ft.theoremF11.upper", "s2ft.theoremF7.bias"):
        claim = get(cid)
        assert claim.validate_params(claim.counterexample) == dict(claim.counterexample)


def _asserting(msg):
    def build(p):
        if msg:
            assert p["n"] > 0, msg
        else:
            assert p["n"] > 0
        return p["n"]

    return Claim(
        id="toy-assert",
        source="t",
        statement="n >= 0",
        params=lambda: st.fixed_dictionaries({"n": st.integers(1, 5), "seed": st.just(0)}),
        build=build,
        check=lambda n: compare(n, 0, ">=", 0),
    )


def test_violated_assumption_raises_instead_of_holds_false():
    from lowrank_theory.claims import AssumptionError

    with pytest.raises(AssumptionError, match=r"claim toy-assert: .*assumption: needs n > 0"):
        _asserting("needs n > 0").run({"n": 0, "seed": 0})
    # an assert without a message is named by its source line (pytest rewrites this module's
    # asserts into "assert 0 > 0"; in the package it reads 'assert p["n"] > 0')
    with pytest.raises(AssumptionError, match=r"assumption: assert .* > 0"):
        _asserting("").run({"n": 0, "seed": 0})


def test_claim_run_validates_inside_a_hypothesis_test():
    """The parameter spec is drawn in a worker thread: no nested-@given health check."""
    claim = _asserting("needs n > 0")

    @settings(max_examples=3)
    @given(n=st.integers(1, 3))
    def inner(n):
        assert claim.run({"n": n, "seed": 0}).holds

    inner()


def test_audit_runs_drawn_instances_unvalidated():
    """The audit treats hypothesis-drawn instances as before: no spec draw, no wrapping."""
    claim = _asserting("needs n > 0")
    rep = audit.run_claim(claim, examples=5)
    assert rep.status == "holds" and claim.spec_cache == {}


def test_load_json_restores_non_finite_tightness(tmp_path):
    from lowrank_theory.pipeline.audit import ClaimReport, format_table, load_json, write_json

    rep = ClaimReport("x.y", "src", "holds", "empirical", 3, 0, math.inf, None, None, 1.0)
    write_json([rep], tmp_path / "r.json", {"seed": 0})
    (back,), meta = load_json(tmp_path / "r.json")
    assert back.max_tightness == math.inf and meta == {"seed": 0}
    assert "| inf | empirical |" in format_table([back])
