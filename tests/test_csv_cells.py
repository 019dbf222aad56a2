"""No cell of the CSV export starts like a formula, however the start is hidden or
spelled (issue 23, item 13)."""

from __future__ import annotations

import pytest

from web.pages.export import cell

HIDDEN = ["\u200b", "\u2060", "\ufeff", "\u202e", "\u200b\u202e", " ", "\u00a0\u200b"]
WIDE = ["\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe66", "\ufe62"]


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("formula", ["=HYPERLINK(1)", "+1", "-1", "@SUM(A1)"])
def test_a_formula_behind_invisible_characters_is_text(hidden: str, formula: str) -> None:
    typed = hidden + formula
    assert cell(typed) == "'" + typed


@pytest.mark.parametrize("wide", WIDE)
def test_a_formula_in_another_width_is_text(wide: str) -> None:
    typed = f"{wide}cmd|' /C calc'!A0"
    assert cell(typed) == "'" + typed


@pytest.mark.parametrize("plain", ["Contoso Srl", "\u200bContoso", "\uff21cme", "", "O'Brien"])
def test_other_text_is_written_as_it_is(plain: str) -> None:
    assert cell(plain) == plain
