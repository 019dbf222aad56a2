"""The tests' one way of waiting (`tests/conftest.py`): it answers as soon as the check
holds, and when it never does, says what was still missing."""

from __future__ import annotations

import pytest

from tests.conftest import eventually


async def test_the_first_answer_that_holds_is_the_answer() -> None:
    answers: list[list[str] | None] = [None, [], [], ["an email"]]

    async def asked() -> list[str] | None:
        return answers.pop(0)

    assert await eventually(asked, every=0) == ["an email"]


async def test_a_check_that_never_holds_fails_with_its_own_last_words() -> None:
    def missing() -> bool:
        raise AssertionError("no prospect-approved email yet")

    with pytest.raises(AssertionError, match="no prospect-approved email yet"):
        await eventually(missing, timeout=0.1, every=0.01)
    never = r"the invitation: not within 0 s \(last answered \[\]\)"
    with pytest.raises(AssertionError, match=never):
        await eventually(lambda: [], timeout=0, what="the invitation")
