"""``FROM ns.t VERSION AS OF 3`` / ``TIMESTAMP AS OF '2026-01-01'`` in SQL (Delta/Spark syntax).

DuckDB has no such clause for views, so we rewrite it into a ``delta_scan`` of that version
before the query reaches DuckDB. Timestamps resolve to the last version committed at or before
them, as Delta defines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_CLAUSE = re.compile(
    r"""(?P<name>"?[A-Za-z_][\w]*"?\s*\.\s*"?[A-Za-z_][\w]*"?)\s+
        (?:FOR\s+SYSTEM_)?(?P<kind>VERSION|TIMESTAMP)\s+AS\s+OF\s+
        (?P<value>'(?:[^']|'')*'|\d+)""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class AsOf:
    table: str
    version: int | None
    timestamp: str | None


def _split_literals(sql: str) -> list[tuple[bool, str]]:
    """Split into (is_literal, text) chunks so we never rewrite inside strings."""
    chunks: list[tuple[bool, str]] = []
    pattern = re.compile(r"'(?:[^']|'')*'")
    pos = 0
    for m in pattern.finditer(sql):
        chunks.append((False, sql[pos : m.start()]))
        chunks.append((True, m.group(0)))
        pos = m.end()
    chunks.append((False, sql[pos:]))
    return chunks


def rewrite_as_of(sql: str, resolve: Callable[[AsOf], str]) -> str:
    """Replace every ``name VERSION|TIMESTAMP AS OF value`` with ``resolve(AsOf)``."""
    if not re.search(r"\bAS\s+OF\b", sql, re.IGNORECASE):
        return sql

    def repl(m: re.Match[str]) -> str:
        name = re.sub(r'[\s"]', "", m.group("name")).lower()
        value = m.group("value")
        if m.group("kind").upper() == "VERSION":
            if not value.isdigit():
                raise ValueError(f"VERSION AS OF needs an integer, got {value}")
            return resolve(AsOf(name, int(value), None))
        return resolve(AsOf(name, None, value.strip("'").replace("''", "'")))

    # Literals are opaque, except that a TIMESTAMP AS OF value is itself a literal: apply the
    # pattern on the text with literals masked by placeholders, then restore them.
    chunks = _split_literals(sql)
    literals = [text for is_lit, text in chunks if is_lit]
    out: list[str] = []
    idx = 0
    for is_lit, text in chunks:
        if is_lit:
            out.append(f"'\x00{idx}\x00'")
            idx += 1
        else:
            out.append(text)
    masked = "".join(out)

    def restore(text: str) -> str:
        return re.sub(r"'\x00(\d+)\x00'", lambda m: literals[int(m.group(1))], text)

    def repl_masked(m: re.Match[str]) -> str:
        value = restore(m.group("value"))
        fake = re.match(_CLAUSE, f"{m.group('name')} {m.group('kind')} AS OF {value}")
        assert fake is not None
        return repl(fake)

    return restore(_CLAUSE.sub(repl_masked, masked))
