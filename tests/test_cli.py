"""The command line: arguments checked before any work (one line, exit 2), the JSON report
written claim by claim, ``--resume``, Ctrl-C, progress, and no JAX import for help or errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import strategies as st

from lowrank_theory.__main__ import main
from lowrank_theory.claims import REGISTRY, Claim, all_claims, compare
from lowrank_theory.pipeline import audit

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "lowrank_theory" / "__main__.py"


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the audit starts: argument errors must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the audit ran before the arguments were checked")

    monkeypatch.setattr(audit, "run_audit", refuse)
    monkeypatch.setattr(audit, "run_claim", refuse)


def _exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and "Traceback" not in err
    return last


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--examples", "0"], "--examples"),
        (["--examples", "two"], "--examples"),
        (["--seed", "-1"], "--seed"),
        (["--seed", "1.5"], "--seed"),
        (["--resume"], "--resume"),
    ],
)
def test_bad_numbers_and_flags_exit_2_before_work(argv, flag, no_work, capsys):
    assert flag in _exit_2(["audit", "--claims", "lora.lemma1.exact", *argv], capsys)


@pytest.mark.parametrize("where", ["missing", "file_parent", "directory"])
def test_unwritable_json_path_fails_before_the_audit(where, tmp_path, no_work, capsys):
    (tmp_path / "plain.txt").write_text("x")
    path = {
        "missing": tmp_path / "no" / "such" / "dir" / "r.json",
        "file_parent": tmp_path / "plain.txt" / "r.json",
        "directory": tmp_path,
    }[where]
    line = _exit_2(["audit", "--claims", "lora.lemma1.exact", "--json", str(path)], capsys)
    assert "--json" in line


def test_no_stored_with_from_json_fails_first(tmp_path, no_work, capsys):
    saved = tmp_path / "r.json"
    saved.write_text("[]")
    line = _exit_2(["audit", "--from-json", str(saved), "--no-stored"], capsys)
    assert "--no-stored" in line and "--from-json" in line


def test_update_docs_without_markers_and_missing_from_json_fail_first(tmp_path, no_work, capsys):
    page = tmp_path / "page.md"
    page.write_text("no markers here\n")
    line = _exit_2(["audit", "--update-docs", str(page)], capsys)
    assert "--update-docs" in line and "audit:start" in line
    line = _exit_2(["audit", "--from-json", str(tmp_path / "absent.json")], capsys)
    assert "--from-json" in line and "does not exist" in line


@pytest.mark.parametrize("cmd", ["audit", "list"])
def test_unknown_claim_prefix_is_one_line_with_close_matches(cmd, no_work, capsys):
    line = _exit_2([cmd, "--claims", "zzz"], capsys)
    assert "'zzz'" in line and "lora" in line
    line = _exit_2([cmd, "--claims", "lora.lema1"], capsys)
    assert "lora.lemma1" in line and line.count(",") < 6


# --- incremental report, --resume, Ctrl-C, on toy claims registered for the test -------------


class Switch:
    """A check that raises KeyboardInterrupt while ``armed`` (a Ctrl-C during that claim)."""

    def __init__(self):
        self.armed = False
        self.runs = {}

    def claim(self, name):
        def check(x):
            self.runs[name] = self.runs.get(name, 0) + 1
            if self.armed and name == "b":
                raise KeyboardInterrupt
            return compare(abs(x), 3.0, "<=", 0.0)

        return Claim(
            id=f"zz.toy.{name}",
            source="test",
            statement="|x| <= 3",
            params=lambda: st.fixed_dictionaries({"x": st.floats(-3, 3), "seed": st.just(0)}),
            build=lambda p: p["x"],
            check=check,
        )


@pytest.fixture
def toys(monkeypatch):
    all_claims()  # load the registry first
    sw = Switch()
    for name in "abc":
        monkeypatch.setitem(REGISTRY, f"zz.toy.{name}", sw.claim(name))
    return sw


def test_ctrl_c_keeps_finished_claims_and_resume_continues(toys, tmp_path, capsys):
    out = tmp_path / "report.json"
    args = ["audit", "--claims", "zz.toy", "--examples", "3", "--json", str(out), "--quiet"]
    toys.armed = True
    try:
        status = main(args)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main() (a traceback for the user)")
    assert status == 130  # 128 + SIGINT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert "interrupted: 1 finished claim(s) saved to " + str(out) in line and "--resume" in line
    assert [r["id"] for r in json.loads(out.read_text())] == ["zz.toy.a"]

    toys.armed = False
    runs_a = toys.runs["a"]
    assert main([*args, "--resume"]) == 0
    assert toys.runs["a"] == runs_a  # not run again
    rows = json.loads(out.read_text())
    assert sorted(r["id"] for r in rows) == ["zz.toy.a", "zz.toy.b", "zz.toy.c"]
    assert "| `zz.toy.a` |" in capsys.readouterr().out  # the table shows the resumed claim too

    # a report made with other settings is not continued
    line = _exit_2([*args[:4], "4", *args[5:], "--resume"], capsys)
    assert "--examples 3 there, 4 now" in line
    line = _exit_2([*args, "--seed", "1", "--resume"], capsys)
    assert "--seed 0 there, 1 now" in line
    line = _exit_2([*args, "--no-stored", "--resume"], capsys)
    assert "--no-stored off there, on now" in line


def test_report_is_written_after_each_claim(toys, tmp_path, monkeypatch):
    out = tmp_path / "report.json"
    seen = []
    real = audit.write_json

    def spy(reports, path, meta):
        real(reports, path, meta)
        seen.append([r["id"] for r in json.loads(Path(path).read_text())])

    monkeypatch.setattr(audit, "write_json", spy)
    assert main(["audit", "--claims", "zz.toy", "--examples", "2", "--json", str(out)]) == 0
    assert seen == [["zz.toy.a"], ["zz.toy.a", "zz.toy.b"], ["zz.toy.a", "zz.toy.b", "zz.toy.c"]]


def test_progress_bar_counts_instances_with_eta(toys, capsys):
    reps = audit.run_audit("zz.toy", examples=4, seed=0, progress=True, bar=True)
    cap = capsys.readouterr()
    assert [r.status for r in reps] == ["holds"] * 3
    # one tqdm bar per claim on stderr: instances of total, [elapsed<remaining]
    assert all(f"[{i}/3] zz.toy.{c}:" in cap.err for i, c in ((1, "a"), (2, "b"), (3, "c")))
    assert "/4 [00:00<" in cap.err and "inst" in cap.err
    assert cap.out.count(" holds (") == 3  # the one line per finished claim stays
    # not a terminal: no bar (stderr is captured here)
    audit.run_audit("zz.toy", examples=2, seed=0, progress=True)
    assert capsys.readouterr().err == ""


def test_run_claim_reports_each_instance(toys):
    phases = []
    rep = audit.run_claim(REGISTRY["zz.toy.a"], examples=7, on_instance=phases.append)
    assert rep.search["generate"] + rep.search["target"] >= 7
    assert phases.count("check") + phases.count("refine") == rep.n_instances
    assert phases.count("refine") == rep.search["refine"] > 0


@pytest.fixture
def stored_only(monkeypatch):
    """A claim registered as failing whose stored counterexample (x = 5) lies outside what
    its strategy draws: only the stored instance violates it."""
    all_claims()
    claim = Claim(
        id="zz.stored.x",
        source="test",
        statement="|x| <= 3",
        params=lambda: st.fixed_dictionaries(
            {"x": st.sampled_from([0.0, 1.0]), "seed": st.just(0)}
        ),
        build=lambda p: p["x"],
        check=lambda x: compare(abs(x), 3.0, "<=", 0.0),
        expected="fails",
        counterexample={"x": 5.0, "seed": 0},
    )
    monkeypatch.setitem(REGISTRY, claim.id, claim)
    return claim


def test_no_stored_runs_the_search_alone_and_is_recorded(stored_only, tmp_path, capsys):
    out = tmp_path / "r.json"
    base = ["audit", "--claims", "zz.stored", "--examples", "5", "--quiet", "--json", str(out)]
    assert main(base) == 0  # the stored counterexample reproduces the failure
    (row,) = json.loads(out.read_text())
    assert row["found_by"] == "stored" and row["meta"]["config"]["no_stored"] is False
    assert main([*base, "--no-stored"]) == 1  # the search alone does not find it: UNEXPECTED
    captured = capsys.readouterr()
    assert "UNEXPECTED status for: zz.stored.x" in captured.err
    (row,) = json.loads(out.read_text())
    assert row["status"] == "holds" and row["search"]["stored"] == 0
    assert row["meta"]["config"]["no_stored"] is True
    # the docs block names the mode the report was made in
    page = tmp_path / "audit.md"
    page.write_text("<!-- audit:start -->\n<!-- audit:end -->\n")
    assert main(["audit", "--from-json", str(out), "--update-docs", str(page)]) == 1
    assert "--examples 5 --seed 0 --no-stored`" in page.read_text()


# --- no JAX (no package) for --help and argument errors ---------------------------------------

_ALONE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("cli_alone", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
try:
    mod.main(sys.argv[2:])
except SystemExit as e:
    code = e.code
print("RESULT", code, "jax" in sys.modules, "lowrank_theory" in sys.modules)
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["audit", "--help"], ["audit", "--examples", "0"], ["audit", "--resume"]]
)
def test_cli_parses_and_refuses_without_importing_jax(argv):
    """``__main__.py`` loaded on its own (without the package): help and argument errors
    finish without importing JAX or the package."""
    proc = subprocess.run(
        [sys.executable, "-c", _ALONE, str(MAIN), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    result = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert result, proc.stderr
    code = 0 if "--help" in argv else 2
    assert result[0] == f"RESULT {code} False False", proc.stderr


_CHECK_NO_JAX = """
import runpy, sys
sys.argv = ["lowrank_theory", *sys.argv[1:]]
try:
    runpy.run_module("lowrank_theory", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
print("RESULT", code, "jax" in sys.modules)
"""


@pytest.mark.parametrize("argv", [["--help"], ["audit", "--help"], ["audit", "--seed", "-1"]])
def test_python_m_help_imports_no_jax(argv):
    """``python -m lowrank_theory --help`` (the package ``__init__`` included, as ``-m`` runs
    it) and an argument error load no JAX: the package's names import lazily (issue 17)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK_NO_JAX, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    result = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert result, proc.stderr
    code = 0 if "--help" in argv else 2
    assert result[0] == f"RESULT {code} False", proc.stderr
