"""Shared pieces of the fuzz tests: hostile values and the database's state."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.db import connection
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]

# Any unicode, surrogate halves and control characters included.
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=24) | st.sampled_from(["", "\x00", "\ud800", "\udfff", "\x07", "¹²³", "9" * 40])
NUMBER = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, -1, 2**53, -(2**53), 10**20])
    | st.floats(allow_nan=True, allow_infinity=True)
)
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
JSON = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=10
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def encode(value) -> str:
    """JSON as a hostile client writes it: lone surrogates escaped, NaN and Infinity as literals."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


# PostgreSQL tables whose rows a refused request must leave alone: every app's, except
# the log-in throttle's own records (a refused log-in is meant to be counted there).
_SKIP = re.compile(r"^(axes_|django_session$|django_migrations$)")


def _tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        return [name for (name,) in cursor.fetchall() if not _SKIP.match(name)]


def db_state() -> dict[str, str]:
    """A fingerprint of every table's rows."""
    row = "md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))"
    parts = [f"SELECT '{t}', {row} FROM {t} x" for t in _tables()]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        return dict(cursor.fetchall())


def documented_codes() -> set[str]:
    """Every error and refusal code docs/protocol.md names: the `ack` and `error` table and
    the buying section's refusal codes."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    table = text.split("### `ack` and `error`", 1)[1].split("## Client", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", table, re.M)
    refusals = re.sub(r"\([^)]*\)", "", text.split("Refusal codes", 1)[1].split("###", 1)[0])  # not (`fields`)
    return {code for pair in rows for code in pair if code} | set(re.findall(r"`([a-z_]+)`", refusals))
