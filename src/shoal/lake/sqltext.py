"""Quoted SQL identifiers: one rule for every DuckDB statement shoal writes, in the lowest stage
that writes them (the lake's merge-on-read views), so the stages above take it from here."""

from __future__ import annotations

__all__ = ["sql_ident"]


def sql_ident(name: str) -> str:
    """A quoted identifier, as DuckDB and delta-rs (DataFusion) read it."""
    return '"' + name.replace('"', '""') + '"'
