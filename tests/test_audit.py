"""The audit: statuses, counts, shrinking, JSON schema and the command line."""

import json
import math
import subprocess
import sys

from hypothesis import strategies as st

from lowrank_theory.claims import Claim, compare, get
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


def test_get_unknown_claim_lists_known():
    try:
        get("nope")
    except KeyError as e:
        assert "lora.lemma1.exact" in str(e)


def test_load_json_restores_non_finite_tightness(tmp_path):
    from lowrank_theory.pipeline.audit import ClaimReport, format_table, load_json, write_json

    rep = ClaimReport("x.y", "src", "holds", "empirical", 3, 0, math.inf, None, None, 1.0)
    write_json([rep], tmp_path / "r.json", {"seed": 0})
    (back,), meta = load_json(tmp_path / "r.json")
    assert back.max_tightness == math.inf and meta == {"seed": 0}
    assert "| inf | empirical |" in format_table([back])
