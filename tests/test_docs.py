"""The README and every docs page are executed: each ``>>>`` line must run as shown.

One test per page (README.md, docs/**/*.md), so a broken example names its page; the total
number of examples may not drop below the 102 of the single README this replaced. Also the
generated blocks of docs/audit.md and docs/benchmarks.md, and the helper that writes them.
"""

import doctest
from pathlib import Path

import pytest

from lowrank_theory.pipeline.docs import read_block, write_block

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
#: the pages of the papers: each must show its package at work
PAPER_PAGES = ["lora.md", "s2ft.md", "lin.md", "dmf.md", "deep-lora.md"]
#: doctested examples in README.md before it was split into docs/ pages
MIN_EXAMPLES = 102
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _n_examples(page: Path) -> int:
    return len(doctest.DocTestParser().get_examples(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples_run(page):
    res = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS)
    assert res.failed == 0


@pytest.mark.parametrize("name", PAPER_PAGES)
def test_paper_pages_have_examples(name):
    assert _n_examples(DOCS / name) >= 5


def test_the_examples_did_not_shrink():
    assert sum(_n_examples(p) for p in PAGES) >= MIN_EXAMPLES


def test_readme_shows_the_two_commands_first():
    text = README.read_text()
    head = text[: text.index("\n## ")] if "\n## " in text else text
    assert "make figures" in head and "make test" in head


def test_readme_is_short():
    assert len(README.read_bytes()) <= 12 * 1024


@pytest.mark.parametrize(("page", "block"), [("audit.md", "audit"), ("benchmarks.md", "bench")])
def test_generated_blocks_exist(page, block):
    assert "| claim |" in read_block(DOCS / page, block) or "| benchmark |" in read_block(
        DOCS / page, block
    )


def test_write_block_replaces_only_the_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("top\n<!-- t:start -->\nSTALE\n<!-- t:end -->\nbottom\n")
    write_block(page, "t", "fresh")
    assert page.read_text() == "top\n<!-- t:start -->\nfresh\n<!-- t:end -->\nbottom\n"
    assert read_block(page, "t") == "\nfresh\n"
    write_block(page, "t", "again\n")  # idempotent shape: one newline either side
    assert page.read_text() == "top\n<!-- t:start -->\nagain\n<!-- t:end -->\nbottom\n"


@pytest.mark.parametrize(
    "text",
    [
        "no markers\n",
        "<!-- t:start -->\nonly the start\n",
        "<!-- t:end -->\n<!-- t:start -->\n",
        "<!-- t:start -->\n<!-- t:end -->\n<!-- t:start -->\n<!-- t:end -->\n",
    ],
)
def test_write_block_refuses_bad_markers(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(ValueError, match="t:"):
        write_block(page, "t", "x")
    assert page.read_text() == text  # untouched


def test_write_block_refuses_bad_names(tmp_path):
    with pytest.raises(ValueError, match="block name"):
        write_block(tmp_path / "page.md", "a b", "x")
