"""The docs: generated blocks replaced (and only them) by `make readme`, no hand-written measured
numbers outside them, the README's size, and its library example run as it is written."""

import re
from pathlib import Path

import pytest

from experiments.readme import BLOCKS, block_names, pages, replace_block, update

ROOT = Path(__file__).resolve().parents[1]


def test_replace_block_only_touches_its_block():
    text = "a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n<!-- u:begin -->\nkeep\n<!-- u:end -->\n"
    new = replace_block(text, "t", "| x |\n")
    assert new == "a\n<!-- t:begin -->\n| x |\n<!-- t:end -->\nb\n<!-- u:begin -->\nkeep\n<!-- u:end -->\n"
    with pytest.raises(ValueError, match="no block 'v'"):
        replace_block(text, "v", "x")


def test_update_fills_from_results_and_leaves_missing(tmp_path):
    (tmp_path / "README.md").write_text(
        "<!-- toy2d-table:begin -->\n-\n<!-- toy2d-table:end -->\n"
        "<!-- bench-flows-table:begin -->\n-\n<!-- bench-flows-table:end -->\n"
    )
    (tmp_path / "results/toy2d").mkdir(parents=True)
    (tmp_path / "results/toy2d/results.md").write_text("| nll |\n|---|\n| 2.4 |\n")
    assert update(tmp_path) == ["README.md"]
    text = (tmp_path / "README.md").read_text()
    assert "| 2.4 |" in text and "<!-- bench-flows-table:begin -->\n-\n<!-- bench-flows-table:end -->" in text
    assert update(tmp_path) == []  # nothing new: nothing rewritten


def _prose(text: str) -> list[str]:
    """The hand-written lines: outside generated blocks and code blocks."""
    text = re.sub(r"<!-- ([a-z0-9-]+):begin -->.*?<!-- \1:end -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return text.splitlines()


@pytest.mark.parametrize("page", pages(ROOT), ids=lambda p: p.name)
def test_no_hand_written_measured_numbers(page):
    """A number with decimals outside a generated block would be quoted from memory; numbers from
    papers are allowed on lines that say 'literature'."""
    bad = [
        line for line in _prose(page.read_text()) if re.search(r"\d+\.\d+", line) and "literature" not in line
    ]
    assert not bad, f"{page}: measured numbers belong in generated blocks: {bad[:3]}"
    unknown = set(block_names(page.read_text())) - set(BLOCKS)
    assert not unknown, f"{page}: blocks the generator does not know: {unknown}"


def test_readme_is_short_and_shows_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 15_000
    assert "make demo" in text and "make test" in text


def test_readme_library_example_runs(tmp_path, monkeypatch):
    """The README's ten-line example, executed as written (fewer steps)."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## The library in ten lines\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    exec(code.replace("steps=2000", "steps=60").replace("patience=5", "patience=2"), {})
    assert (tmp_path / "results" / "my_nsf" / "model.json").exists()
