"""How staff find a request by what they remember of it: the words of its company, its
contact's name and email, and its reference, whatever their case and accents.

Both stores keep these words folded in a column of their own (`search_text`, and the
company alone in `company_key` to sort by), so a search looks in one column on SQLite
and PostgreSQL alike: neither database folds accents by itself the same way (SQLite's
`lower()` knows only ASCII). The models' write hook fills them on every insert and
update through the ORM; a write that goes around it (a Core `UPDATE` of a name, an
anonymisation) sets them too, with `search_text` and `company_key`, or the row is found
by its old words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index

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


# The fields a prospect or a lead is found by, in order: company, contact, email, reference.
SEARCHED = ("company_name", "first_name", "last_name", "email", "onboarding_id")


def search_columns(fields: Mapping[str, Any]) -> dict[str, str]:
    """A prospect's or a lead's search columns, from its `SEARCHED` fields: what the ORM's
    hooks keep in step, and what the hot paths' SQL writes with the row."""
    return {
        "search_text": search_text(*(fields[name] for name in SEARCHED)),
        "company_key": company_key(fields["company_name"]),
    }


def company_key(company: str) -> str:
    """What a list sorts companies by: "Ærø Shipping" between "Adventure" and "Alpine"."""
    return fold(company)[:COMPANY_KEY_MAX]


def query_words(query: str) -> list[str]:
    """What a search box's text looks for: its first few words, folded.

    A control character (`%00` in an address) parts words and an invisible one (a
    zero-width space, a bidi mark) is dropped: no stored text holds either, and
    neither database takes every one of them in a query (PostgreSQL refuses NUL).
    """
    typed = "".join(_SEARCHABLE.get(unicodedata.category(char), char) for char in query[:QUERY_MAX])
    words = fold(typed).split()
    return list(dict.fromkeys(words))[:WORDS_MAX]


# By Unicode category: controls part words; format characters, surrogates, private use
# and unassigned code points are dropped.
_SEARCHABLE = {"Cc": " ", "Cf": "", "Cs": "", "Co": "", "Cn": ""}


@dataclass(frozen=True)
class WordIndex:
    """An index that finds a word anywhere in a table's `search_text`.

    On SQLite, an FTS5 table of the text's trigrams (`<table>_words`, reading the text
    from the table itself), kept in step by triggers. On PostgreSQL, a GIN index of its
    trigrams (pg_trgm), declared with the table (`index`), which `LIKE '%word%'` uses by
    itself. A word shorter than three letters has no trigram: it is looked for by
    reading the rows.
    """

    table: str

    @property
    def name(self) -> str:
        return f"{self.table}_words"

    def index(self) -> Index:
        """The PostgreSQL index, for the table's `__table_args__`."""
        index = Index(
            f"ix_{self.table}_search_text_trigrams",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            info={"dialect": "postgresql"},
        )
        return index.ddl_if(dialect="postgresql")

    def triggers(self, dialect: str) -> list[str]:
        if dialect != "sqlite":
            return []
        return [f"{self.name}_{event}" for event in ("insert", "delete", "update")]

    def create(self, dialect: str) -> list[str]:
        """What SQLite's index is made of (PostgreSQL's comes with the table)."""
        if dialect != "sqlite":
            return []
        forget = (
            f"INSERT INTO {self.name} ({self.name}, rowid, search_text)"
            " VALUES ('delete', OLD.id, OLD.search_text)"
        )
        learn = f"INSERT INTO {self.name} (rowid, search_text) VALUES (NEW.id, NEW.search_text)"
        return [
            f"CREATE VIRTUAL TABLE {self.name} USING fts5(search_text, content='{self.table}',"
            " content_rowid='id', tokenize='trigram')",
            f"CREATE TRIGGER {self.name}_insert AFTER INSERT ON {self.table} BEGIN {learn}; END",
            f"CREATE TRIGGER {self.name}_delete AFTER DELETE ON {self.table} BEGIN {forget}; END",
            f"CREATE TRIGGER {self.name}_update AFTER UPDATE OF search_text ON {self.table}"
            " WHEN OLD.search_text IS NOT NEW.search_text"
            f" BEGIN {forget}; {learn}; END",
        ]

    def drop(self, dialect: str) -> list[str]:
        if dialect != "sqlite":
            return []
        return [
            *(f"DROP TRIGGER IF EXISTS {trigger}" for trigger in self.triggers(dialect)),
            f"DROP TABLE IF EXISTS {self.name}",
        ]

    def refill(self, dialect: str) -> list[str]:
        """Read every row's words afresh: for an index made after its table has rows."""
        if dialect != "sqlite":
            return []
        return [f"INSERT INTO {self.name} ({self.name}) VALUES ('rebuild')"]

    def matching(self, words: list[str]) -> str | None:
        """The FTS5 query for rows holding every word of three letters or more; None when
        there is none."""
        long = [word for word in words if len(word) >= TRIGRAM]
        if not long:
            return None
        return " ".join('"' + word.replace('"', '""') + '"' for word in long)


# The shortest word a trigram index can find.
TRIGRAM = 3
# What PostgreSQL's trigram index needs in the database first; trusted since PostgreSQL
# 13, so the database's owner may create it.
TRIGRAM_EXTENSION = {"postgresql": ["CREATE EXTENSION IF NOT EXISTS pg_trgm"]}
PROSPECT_WORDS = WordIndex("prospect")
LEAD_WORDS = WordIndex("lead")
