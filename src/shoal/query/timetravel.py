"""``FROM ns.t VERSION AS OF 3`` / ``TIMESTAMP AS OF '2026-01-01'`` in SQL (Delta/Spark syntax).

DuckDB has no such clause for views, so we rewrite it into a ``delta_scan`` of that version
before the query reaches DuckDB. Timestamps resolve to the last version committed at or before
them, as Delta defines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_LITERAL = re.compile(r"'(?:[^']|'')*'")
# Matched on the query with string literals masked as \x00<n>\x00, so clauses never match inside
# a string, while a TIMESTAMP AS OF value (itself a literal) is still found.
_CLAUSE = re.compile(
    r"""(?P<name>"?[A-Za-z_]\w*"?\s*\.\s*"?[A-Za-z_]\w*"?)\s+
        (?:FOR\s+SYSTEM_)?(?P<kind>VERSION|TIMESTAMP)\s+AS\s+OF\s+
        (?P<value>\x00\d+\x00|\d+)""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class AsOf:
    table: str
    version: int | None
    timestamp: str | None


def rewrite_as_of(sql: str, resolve: Callable[[AsOf], str]) -> str:
    """Replace every ``name VERSION|TIMESTAMP AS OF value`` with ``resolve(AsOf)``."""
    if not re.search(r"\bAS\s+OF\b", sql, re.IGNORECASE):
        return sql
    literals: list[str] = []

    def mask(m: re.Match[str]) -> str:
        literals.append(m.group(0))
        return f"\x00{len(literals) - 1}\x00"

    def restore(text: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: literals[int(m.group(1))], text)

    def repl(m: re.Match[str]) -> str:
        name = re.sub(r'[\s"]', "", m.group("name")).lower()
        value = restore(m.group("value"))
        if m.group("kind").upper() == "VERSION":
            if not value.isdigit():
                raise ValueError(f"VERSION AS OF needs an integer, got {value}")
            return resolve(AsOf(name, int(value), None))
        if not value.startswith("'"):
            raise ValueError(f"TIMESTAMP AS OF needs a quoted timestamp, got {value}")
        return resolve(AsOf(name, None, value[1:-1].replace("''", "'")))

    return restore(_CLAUSE.sub(repl, _LITERAL.sub(mask, sql)))
