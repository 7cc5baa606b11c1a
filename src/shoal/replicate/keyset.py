"""Reading a table in chunks by keyset pagination: ``WHERE (order) > (last) ORDER BY order LIMIT n``.

Each chunk is one indexed range query, so memory is bounded by the chunk and a long table never
holds a cursor (or a transaction) open on the source. Shared by both sources (same SQL: row-value
comparison and ``%s`` placeholders work in MySQL and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


def keyset_chunks(  # noqa: PLR0917 (the parts of one query)
    query: Callable[[str, Sequence[Any] | None], list[tuple[Any, ...]]],
    relation: str,
    select: Sequence[str],
    names: Sequence[str],
    order: Sequence[str],
    rows: int,
    *,
    after: Sequence[Any] | None = None,
    floor: tuple[str, Any] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Rows as dicts (``names``), ``rows`` at a time, in ``order`` (quoted identifiers) after the
    values ``after``; ``floor``: only rows whose (quoted) column is at least the value."""
    last = list(after) if after is not None else None
    order_sql = ", ".join(order)
    positions = [list(names).index(_unquote(o)) for o in order]
    while True:
        terms: list[str] = []
        args: list[Any] = []
        if floor is not None:
            terms.append(f"{floor[0]} >= %s")
            args.append(floor[1])
        if last is not None:
            terms.append(f"({order_sql}) > ({', '.join(['%s'] * len(order))})")
            args.extend(last)
        where = f"WHERE {' AND '.join(terms)}" if terms else ""
        batch = query(
            f"SELECT {', '.join(select)} FROM {relation} {where} ORDER BY {order_sql} LIMIT {int(rows)}", args
        )
        if not batch:
            return
        yield [dict(zip(names, r, strict=True)) for r in batch]
        last = [batch[-1][i] for i in positions]
        if len(batch) < rows:
            return


def _unquote(ident: str) -> str:
    return ident[1:-1].replace(ident[0] * 2, ident[0])
