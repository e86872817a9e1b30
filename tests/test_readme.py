"""The README's API tour is executed: every ``>>>`` line in README.md must run as shown."""

import doctest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    res = doctest.testfile(
        str(README),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert res.failed == 0
    assert res.attempted >= 10  # the tour really ran


def test_readme_shows_the_two_commands_first():
    text = README.read_text()
    head = text[: text.index("\n## ")] if "\n## " in text else text
    assert "make figures" in head and "make test" in head
