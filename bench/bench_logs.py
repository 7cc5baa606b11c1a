"""Log search at scale: index rate and search latency of ``shoal logs`` against a SQL ILIKE scan.

    .venv/bin/python bench/bench_logs.py --lines 10000000          # the reference run (issue 15)
    .venv/bin/python bench/bench_logs.py --lines 200000 --fts      # quick, with DuckDB fts too

1. ``--lines`` simulated log lines (8 services, 4 levels, messages with user/volume ids, paths,
   durations and errors; :mod:`shoal.logs.simulate`) are written to ``logs.lines`` through shoal's
   writer, one commit per ``--chunk`` lines, spread over 7 days (the lake in ``--dir`` is reused
   while it holds the same number of lines; ``--regen`` rewrites it).
2. The index is built from scratch (``Indexer.update`` on an empty index: lines/s), then
   ``--increment`` more lines are appended in commits of 10,000 and indexed incrementally (lines/s).
3. Each query of a fixed set (words, phrases, an id, with and without ``--where``/``--since``
   filters) runs once untimed and ``--repeat`` times through ``LogIndex.search`` (top 20, ranked)
   and as SQL on the same table through ``shoal.connect``: ``message ILIKE '%…%'`` (each word) with
   the same filters, newest 20 first (ILIKE cannot rank). Medians and p95 per engine and their ratio.
   ``--fts`` adds DuckDB's fts extension (``PRAGMA create_fts_index`` over a copy of the table in
   DuckDB, then ``match_bm25``), build time included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 7

# (name, text, where, since-as-offset-from-the-end-of-the-data)
QUERIES: list[tuple[str, str, list[str], timedelta | None]] = [
    ("word", "timeout", [], None),
    ("phrase", '"card declined"', [], None),
    ("two words", "payment failed", [], None),
    ("rare id", "{vol}", [], None),
    ("word+service", "timeout", ["service=billing"], None),
    ("phrase+level+1d", '"out of memory"', ["level=error"], timedelta(days=1)),
    ("word+1h", "quota", [], timedelta(hours=1)),
]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def write_lines(lake: Any, n: int, chunk: int) -> dict[str, Any]:
    from shoal.logs import ensure_tables
    from shoal.logs.simulate import lines_table

    table = ensure_tables(lake)
    gen_s = write_s = 0.0
    span = DAYS * 86_400 / max(1, (n + chunk - 1) // chunk)
    for i, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        t0 = time.perf_counter()
        rows = lines_table(
            m, seed=i, start=START + timedelta(seconds=span * i), span_s=span, id_prefix=f"b{i}"
        )
        t1 = time.perf_counter()
        table.append(rows)
        t2 = time.perf_counter()
        gen_s, write_s = gen_s + t1 - t0, write_s + t2 - t1
        print(f"  wrote {start + m:,} lines", file=sys.stderr, flush=True)
    return {
        "generate_s": round(gen_s, 1),
        "write_s": round(write_s, 1),
        "write_lines_per_s": round(n / write_s),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=500_000)
    ap.add_argument("--increment", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/shoal-bench-logs"))
    ap.add_argument("--regen", action="store_true")
    ap.add_argument("--fts", action="store_true", help="also DuckDB's fts extension (rebuilt index)")
    ap.add_argument("--threads", type=int, default=1, help="tantivy indexing threads")
    args = ap.parse_args()

    import duckdb

    from shoal.lake import Lake
    from shoal.logs import Indexer, LogIndex, build_query, ensure_tables
    from shoal.logs.simulate import lines_table
    from shoal.query.engine import connect_lake

    lake_dir, index_dir = args.dir / "lake", args.dir / "index"
    lake = Lake(str(lake_dir))
    out: dict[str, Any] = {"lines": args.lines, "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    existing = lake.find("logs.lines")
    if args.regen or existing is None or existing.count() != args.lines:
        shutil.rmtree(args.dir, ignore_errors=True)
        lake = Lake(str(lake_dir))
        out["write"] = write_lines(lake, args.lines, args.chunk)
    table = ensure_tables(lake)
    end = START + timedelta(days=DAYS)

    # -- index from scratch, then incrementally --------------------------------------------------
    shutil.rmtree(index_dir, ignore_errors=True)
    index = LogIndex(index_dir)
    with Indexer(lake, index) as indexer:
        if args.threads != 1:
            indexer._writer = index.writer(threads=args.threads)
        t0 = time.perf_counter()
        full = indexer.update()
        full_s = time.perf_counter() - t0
        out["index_full"] = {
            "lines": full.added,
            "s": round(full_s, 1),
            "lines_per_s": round(full.added / full_s),
        }
        for i, start in enumerate(range(0, args.increment, 10_000)):
            table.append(
                lines_table(
                    min(10_000, args.increment - start),
                    seed=10_000 + i,
                    start=end,
                    span_s=60,
                    id_prefix=f"inc{i}",
                )
            )
        t0 = time.perf_counter()
        inc = indexer.update()
        inc_s = time.perf_counter() - t0
        out["index_incremental"] = {
            "lines": inc.added,
            "commits": inc.to_version - inc.from_version,  # type: ignore[operator]
            "s": round(inc_s, 2),
            "lines_per_s": round(inc.added / inc_s),
        }
    out["index_bytes"] = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
    out["table_bytes"] = sum(p.stat().st_size for p in (lake_dir / "logs" / "lines").rglob("*.parquet"))
    print(json.dumps(out), file=sys.stderr, flush=True)
    # a volume id that exists (from the middle of the data) for the "rare id" query
    sample = table.to_arrow(columns=["message"], filter="message LIKE 'volume vol-%' AND id LIKE 'b3:%'")
    vol = str(sample["message"][0]).split()[1]
    data_end = end + timedelta(seconds=60)

    con = connect_lake(lake)
    fts = None
    if args.fts:
        fts = con.duckdb
        import importlib.util

        spec = importlib.util.find_spec("duckdb_extension_fts")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("--fts needs duckdb-extension-fts: pip install '.[bench]'")
        base = Path(next(iter(spec.submodule_search_locations)))
        fts.execute(f"INSTALL '{base}/extensions/v{duckdb.__version__}/fts.duckdb_extension'")
        fts.execute("LOAD fts")
        t0 = time.perf_counter()
        fts.execute("CREATE TABLE fts_lines AS SELECT id, ts, service, level, message FROM logs.lines")
        t1 = time.perf_counter()
        fts.execute("PRAGMA create_fts_index('fts_lines', 'id', 'message')")
        t2 = time.perf_counter()
        n_all = args.lines + args.increment
        out["fts_build"] = {
            "copy_s": round(t1 - t0, 1),
            "index_s": round(t2 - t1, 1),
            "lines_per_s": round(n_all / (t2 - t1)),
        }
        print(json.dumps(out["fts_build"]), file=sys.stderr, flush=True)

    results: dict[str, dict[str, Any]] = {}
    for name, text_t, where, since in QUERIES:
        text = text_t.format(vol=vol)
        q = build_query(
            text,
            where=where,
            limit=20,
            now=data_end,
            since=None if since is None else (data_end - since).isoformat(),
        )
        timings: dict[str, list[float]] = {"tantivy": [], "ilike": [], **({"fts": []} if fts else {})}
        counts: dict[str, int] = {}
        words = [w for w in text.replace('"', "").split()]
        conds = (
            [f"message ILIKE '%{' '.join(words)}%'"]
            if text.startswith('"') or len(words) == 1
            else ["(" + " OR ".join(f"message ILIKE '%{w}%'" for w in words) + ")"]
        )
        for f in q.where:
            conds.append(f"{f.key} IN ({', '.join(repr(v) for v in f.values)})")
        if q.since is not None:
            conds.append(f"ts >= TIMESTAMPTZ '{q.since.isoformat()}'")
        where_sql = " AND ".join(conds)
        sql = (
            "SELECT id, ts, service, level, message FROM logs.lines "
            f"WHERE {where_sql} ORDER BY ts DESC LIMIT 20"
        )
        fts_filters = "".join(f" AND {c}" for c in conds[1:])
        fts_sql = (
            "SELECT id, score FROM (SELECT *, fts_main_fts_lines.match_bm25(id, ?) AS score FROM fts_lines) "
            f"WHERE score IS NOT NULL{fts_filters} ORDER BY score DESC LIMIT 20"
        )
        for rep in range(args.repeat + 1):
            t0 = time.perf_counter()
            hits = index.search(q)
            t1 = time.perf_counter()
            rows = con.sql(sql).to_arrow_table().to_pylist()
            t2 = time.perf_counter()
            if rep:
                timings["tantivy"].append(t1 - t0)
                timings["ilike"].append(t2 - t1)
            counts = {"tantivy": len(hits), "ilike": len(rows)}
            if fts is not None:
                t0 = time.perf_counter()
                frows = fts.execute(fts_sql, [" ".join(words)]).to_arrow_table().to_pylist()
                if rep:
                    timings["fts"].append(time.perf_counter() - t0)
                counts["fts"] = len(frows)
        results[name] = {
            "query": text,
            "where": where,
            "since": str(since) if since else None,
            "hits": counts,
            **{f"{e}_ms_p50": round(statistics.median(v) * 1e3, 2) for e, v in timings.items()},
            **{f"{e}_ms_p95": round(_pct(v, 0.95) * 1e3, 2) for e, v in timings.items()},
        }
        results[name]["ilike/tantivy"] = round(
            results[name]["ilike_ms_p50"] / results[name]["tantivy_ms_p50"], 1
        )
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    out["queries"] = results
    all_t = [r["tantivy_ms_p50"] for r in results.values()]
    all_i = [r["ilike_ms_p50"] for r in results.values()]
    out["summary"] = {
        "tantivy_ms_median_of_medians": round(statistics.median(all_t), 2),
        "ilike_ms_median_of_medians": round(statistics.median(all_i), 2),
        "tantivy_ms_max_of_medians": max(all_t),
        "ilike_ms_max_of_medians": max(all_i),
    }
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
