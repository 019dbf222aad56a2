"""How staff find a request by what they remember of it: the words of its company, its
contact's name and email, and its reference, whatever their case and accents.

Both stores keep these words folded in a column of their own (`search_text`, and the
company alone in `company_key` to sort by), written with the row, so a search is a
plain `LIKE` on one column on SQLite and PostgreSQL alike: neither database folds
accents by itself the same way (SQLite's `lower()` knows only ASCII).
"""

from __future__ import annotations

import unicodedata

# Letters that carry their accent in themselves rather than as a combining mark, so
# NFKD leaves them whole: folded to what a person types on a plain keyboard.
_OWN_LETTERS = str.maketrans(
    {
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ł": "l",
        "ħ": "h",
        "\u0131": "i",  # dotless i
        "ŧ": "t",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
    }
)
# Between the parts of `search_text`: a query word never holds it (words are split on
# whitespace), so no word matches across two parts.
SEPARATOR = " "
# The longest query a search takes, and the most words: enough for a company and a name.
QUERY_MAX = 200
WORDS_MAX = 8
# A company's folded name, cut to what sorting needs: folding may lengthen a name
# ("ß" → "ss"), and an index entry has a size limit on PostgreSQL.
COMPANY_KEY_MAX = 200


def fold(text: str) -> str:
    """`text` without case or accents: "Société Générale" → "societe generale"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return unicodedata.normalize("NFC", bare.translate(_OWN_LETTERS))


def search_text(*parts: str | None) -> str:
    """The folded words a row is found by, its parts in the order given."""
    return SEPARATOR.join(fold(part) for part in parts if part)


def company_key(company: str) -> str:
    """What a list sorts companies by: "Ærø Shipping" between "Adventure" and "Alpine"."""
    return fold(company)[:COMPANY_KEY_MAX]


def query_words(query: str) -> list[str]:
    """What a search box's text looks for: its first few words, folded."""
    words = fold(query[:QUERY_MAX]).split()
    return list(dict.fromkeys(words))[:WORDS_MAX]
