"""Passwords a person may choose (issue 23, item 12): long enough is not enough; the
obviously weak are refused, each with the reason said."""

from __future__ import annotations

import pytest

from models.partners import PasswordWeakness, password_weakness

EMAIL, COMPANY = "giulia.rossi@contoso.example", "Contoso Srl"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("aaaaaaaaaaaa", PasswordWeakness.REPEATS),
        ("abcabcabcabc", PasswordWeakness.REPEATS),
        ("password1234", PasswordWeakness.COMMON),
        ("123456789012", PasswordWeakness.COMMON),
        ("abcdefghijklmn", PasswordWeakness.PATTERN),
        ("giulia.rossi1!", PasswordWeakness.PERSONAL),
        ("GiuliaIsHere2026", PasswordWeakness.PERSONAL),
        ("Contoso2024!!", PasswordWeakness.PERSONAL),
        ("my contososrl pass", PasswordWeakness.PERSONAL),
        ("Sunshine2020", PasswordWeakness.COMMON),
        ("Elizabeth1990", PasswordWeakness.GUESSABLE),
        ("January 2001", PasswordWeakness.GUESSABLE),
    ],
)
def test_the_obviously_weak_are_refused_saying_why(password: str, why: PasswordWeakness) -> None:
    assert password_weakness(password, EMAIL, COMPANY) is why


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "Il mio cane si chiama Fido",
        "tr0ub4dor&3xx",
        "x" * 7 + "Kq!9v" * 40,
    ],
)
def test_a_strong_password_is_taken(password: str) -> None:
    assert password_weakness(password, EMAIL, COMPANY) is None
