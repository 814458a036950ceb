"""The README's generated blocks are replaced, and only them."""

import pytest

from experiments.readme import replace_block, update


def test_replace_block_only_touches_its_block():
    text = "a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n<!-- u:begin -->\nkeep\n<!-- u:end -->\n"
    new = replace_block(text, "t", "| x |\n")
    assert new == "a\n<!-- t:begin -->\n| x |\n<!-- t:end -->\nb\n<!-- u:begin -->\nkeep\n<!-- u:end -->\n"
    with pytest.raises(ValueError, match="no block 'v'"):
        replace_block(text, "v", "x")


def test_update_fills_from_results_and_leaves_missing(tmp_path):
    (tmp_path / "README.md").write_text(
        "<!-- toy2d-table:begin -->\n-\n<!-- toy2d-table:end -->\n"
        "<!-- bench-table:begin -->\n-\n<!-- bench-table:end -->\n"
    )
    (tmp_path / "results/toy2d").mkdir(parents=True)
    (tmp_path / "results/toy2d/results.md").write_text("| nll |\n|---|\n| 2.4 |\n")
    assert update(tmp_path) == ["toy2d-table"]
    text = (tmp_path / "README.md").read_text()
    assert "| 2.4 |" in text and "<!-- bench-table:begin -->\n-\n<!-- bench-table:end -->" in text
