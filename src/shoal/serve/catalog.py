"""What the API tells about a table beyond its schema: freshness and lineage.

* **freshness**: the age of the last commit, and the age of the newest data — the largest value of
  the table's event-time column, read from the Delta file statistics (no scan);
* **lineage**: the exactly-once progress keys (:mod:`shoal.lake.progress`) written as ``txn``
  actions by the recent commits: for a pipeline table the topic partitions and their next offsets,
  for a model the input tables and the versions it was refreshed from.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from shoal.lake import Lake
from shoal.lake.catalog import TableInfo
from shoal.lake.progress import MODEL_DEFINITION
from shoal.status.pipelines import LINEAGE_COMMITS, recent_txns

__all__ = ["LINEAGE_COMMITS", "freshness", "lineage", "recent_txns", "table_detail", "table_summary"]

_TIME_NAMES = ("event_time", "ts", "timestamp", "time", "created_at", "updated_at", "hour", "day", "date")


def _time_column(schema: pa.Schema) -> str | None:
    """The column that says when a row happened: a well-known name first, else the first timestamp."""
    temporal = [f.name for f in schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
    for name in _TIME_NAMES:
        if name in temporal:
            return name
    return temporal[0] if temporal else None


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def freshness(lake: Lake, info: TableInfo) -> dict[str, Any]:
    now = datetime.now(UTC)
    column = _time_column(info.schema)
    newest: datetime | None = None
    if column is not None and info.num_files:
        actions = pa.table(lake.table(info.name).delta().get_add_actions(flatten=True))
        if column in info.partition_by and f"partition.{column}" in actions.column_names:
            values = actions[f"partition.{column}"]
        else:
            values = actions[f"max.{column}"] if f"max.{column}" in actions.column_names else None
        if values is not None:
            top = pa.compute.max(values).as_py()
            if isinstance(top, str):
                try:
                    top = datetime.fromisoformat(top)
                except ValueError:
                    top = None
            newest = _as_utc(top)
    return {
        "time_column": column,
        "newest_data": newest.isoformat() if newest else None,
        "newest_data_age_s": round((now - newest).total_seconds(), 3) if newest else None,
        "last_commit": info.last_commit.isoformat() if info.last_commit else None,
        "last_commit_age_s": round((now - info.last_commit).total_seconds(), 3) if info.last_commit else None,
    }


def lineage(lake: Lake, info: TableInfo) -> dict[str, Any]:
    partitions: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    for app, where in sorted(recent_txns(lake, info).items()):
        parts = app.split(":")
        if parts[0] == "shoal" and len(parts) >= 4 and parts[-1].isdigit():
            partitions.append(
                {
                    "pipeline": parts[1],
                    "topic": ":".join(parts[2:-1]),
                    "partition": int(parts[-1]),
                    "next_offset": where["position"],
                    "commit": where["commit"],
                }
            )
        elif app.startswith("model:") and app != MODEL_DEFINITION:
            inputs.append(
                {"table": app.removeprefix("model:"), "version": where["position"], "commit": where["commit"]}
            )
        elif app != MODEL_DEFINITION:
            other.append({"key": app, "position": where["position"], "commit": where["commit"]})
    kind = "pipeline" if partitions else "model" if inputs else "other" if other else "unknown"
    return {"kind": kind, "partitions": partitions, "inputs": inputs, "other": other}


def table_summary(info: TableInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "description": info.description,
        "owner": info.owner,
        "source": info.source,
        "num_rows": info.num_rows,
        "size_bytes": info.size_bytes,
        "version": info.version,
        "last_commit": info.last_commit.isoformat() if info.last_commit else None,
    }


def table_detail(lake: Lake, info: TableInfo, masked: frozenset[str]) -> dict[str, Any]:
    out = info.as_dict()
    out.pop("uri")  # a server path or bucket is no business of API clients
    out["masked_columns"] = sorted(masked)
    out["freshness"] = freshness(lake, info)
    out["lineage"] = lineage(lake, info)
    return out
