"""What a search asks for: text, a time window and label filters (pure parsing, no engine).

``--since`` takes a duration back from now (``90s``, ``15m``, ``1h``, ``2d``, ``1w``) or an ISO
time; ``--where`` takes ``key=value`` (``key=a,b`` for any of several, ``key!=value`` to exclude)
on the labels :data:`~shoal.logs.schema.LABELS`. The text is tantivy's query language: words
(a line matching any of them is a hit; more and rarer matches rank higher, BM25), ``"a phrase"``,
``+must``, ``-not``, ``a AND b``, ``service:billing``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shoal.logs.errors import LogQueryError
from shoal.logs.schema import LABELS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_WHERE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class LabelFilter:
    """``key`` is (``negate``: is not) one of ``values``."""

    key: str
    values: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class LogQuery:
    """A parsed search; an empty ``text`` matches every line (newest first)."""

    text: str = ""
    since: datetime | None = None
    until: datetime | None = None
    where: tuple[LabelFilter, ...] = ()
    limit: int = 20


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """A duration back from ``now`` (``1h``) or an ISO 8601 time (naive means UTC)."""
    at = now or datetime.now(UTC)
    m = _DURATION.match(value)
    if m:
        return at - timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2).lower()])
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LogQueryError(
            f"not a time: {value!r} (use a duration like 15m, 1h, 2d or an ISO time like 2026-01-31T12:00)"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_where(expr: str) -> LabelFilter:
    """``service=billing`` / ``level=error,warn`` / ``host!=node-1``."""
    m = _WHERE.match(expr)
    if not m:
        raise LogQueryError(f"--where {expr!r}: expected key=value (or key!=value)")
    key, op, raw = m.groups()
    if key not in LABELS:
        raise LogQueryError(f"--where {expr!r}: unknown key {key!r}; filter on one of {', '.join(LABELS)}")
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not values:
        raise LogQueryError(f"--where {expr!r}: no value after {op!r}")
    return LabelFilter(key, values, negate=op == "!=")


def build_query(
    text: str,
    *,
    since: str | None = None,
    until: str | None = None,
    where: list[str] | tuple[str, ...] = (),
    limit: int = 20,
    now: datetime | None = None,
) -> LogQuery:
    """Parse the command-line form of a search into a :class:`LogQuery`."""
    if limit < 1:
        raise LogQueryError(f"--limit must be at least 1, got {limit}")
    start = parse_time(since, now=now) if since else None
    end = parse_time(until, now=now) if until else None
    if start is not None and end is not None and end <= start:
        raise LogQueryError(f"--until ({end.isoformat()}) is not after --since ({start.isoformat()})")
    return LogQuery(
        text=text.strip(), since=start, until=end, where=tuple(parse_where(w) for w in where), limit=limit
    )
