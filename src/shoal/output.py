"""Command output: a rich table for people, CSV or strict JSON (``--format``) for scripts.

Every command (the core CLI, use-case groups, the demo) prints through these, so ``--format``
means the same everywhere. The option itself is in :mod:`shoal.options`.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table as RichTable

from shoal.jsonsafe import dumps, to_jsonable

if TYPE_CHECKING:
    import pyarrow as pa

# Piped output (no terminal) is not wrapped at 80 columns: tables stay one row per line.
console = Console(width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    fmt: OutputFormat,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    if fmt is OutputFormat.json:
        sys.stdout.write(dumps([dict(r) for r in rows]) + "\n")
    elif fmt is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(cols)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else to_jsonable(r.get(c)) for c in cols])
    else:
        table = RichTable(title=title, show_lines=False, header_style="bold cyan")
        for c in cols:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*["∅" if r.get(c) is None else str(to_jsonable(r.get(c))) for c in cols])
        console.print(table)


def emit_arrow(data: pa.Table, fmt: OutputFormat, max_rows: int | None = None) -> None:
    shown = data if max_rows is None or fmt is not OutputFormat.table else data.slice(0, max_rows)
    emit_rows(shown.to_pylist(), fmt, columns=data.column_names)
    if fmt is OutputFormat.table:
        more = f" (showing {shown.num_rows})" if shown.num_rows < data.num_rows else ""
        err_console.print(f"[dim]{data.num_rows} row(s){more}[/dim]")


def emit(obj: Any, fmt: OutputFormat) -> None:
    """An Arrow table, a mapping or a list of mappings, in the chosen format."""
    import pyarrow as pa  # here, not at module level: `shoal --help` should not load Arrow

    if isinstance(obj, pa.Table):
        emit_arrow(obj, fmt)
    elif isinstance(obj, Mapping):
        if fmt is OutputFormat.json:
            sys.stdout.write(dumps(obj) + "\n")
        else:
            emit_rows([{"key": k, "value": v} for k, v in obj.items()], fmt)
    elif isinstance(obj, Iterable):
        emit_rows(list(obj), fmt)
    else:
        sys.stdout.write(f"{obj}\n")
