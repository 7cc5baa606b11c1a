"""Strict RFC 8259 JSON of query values: one encoding per type, never a bare NaN."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from shoal.jsonsafe import dumps, to_jsonable


def strict(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(name)

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (1.5, 1.5),
        (2**63 - 1, 2**63 - 1),
        (Decimal("12.340000"), "12.340000"),
        (Decimal("NaN"), "NaN"),
        (date(2026, 1, 31), "2026-01-31"),
        (time(13, 45, 0, 123456), "13:45:00.123456"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05+00:00"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"),
        (timedelta(minutes=1, seconds=1), 61.0),
        (b"\x00\xff", "00ff"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ([1.0, math.nan, None], [1.0, "NaN", None]),
        ({"a": math.inf, "b": [Decimal("1.1")]}, {"a": "Infinity", "b": ["1.1"]}),
        ([("k", 1), ("j", math.nan)], {"k": 1, "j": "NaN"}),
    ],
)
def test_each_type_has_one_encoding(value: object, encoded: object) -> None:
    assert to_jsonable(value) == encoded
    assert strict(dumps({"v": value})) == {"v": encoded}


def test_dumps_never_writes_bare_nan() -> None:
    text = dumps([math.nan, math.inf, {"x": -math.inf}])
    assert "NaN" in text
    assert strict(text) == ["NaN", "Infinity", {"x": "-Infinity"}]


def test_cli_sql_json_is_strict(tmp_path: Path) -> None:
    """`shoal sql --format json` prints what a strict RFC 8259 parser accepts (no bare NaN)."""
    from typer.testing import CliRunner

    from shoal.cli.main import app
    from shoal.config import init_project

    init_project(tmp_path / "p", "p")
    out = CliRunner().invoke(
        app,
        [
            "sql",
            "-p",
            str(tmp_path / "p"),
            "--format",
            "json",
            "select 'nan'::double n, 'inf'::double i, 1.50::decimal(10, 2) d",
        ],
    )
    assert out.exit_code == 0, out.output

    def refuse(token: str) -> None:
        raise ValueError(f"not RFC 8259: {token}")

    rows = json.loads(out.stdout, parse_constant=refuse)
    assert rows == [{"n": "NaN", "i": "Infinity", "d": "1.50"}]
