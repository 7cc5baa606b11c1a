"""CPU per binlog row image: python-mysql-replication's decoding against shoal's (ADR 0044).

Starts a private MariaDB (ROW binlog), writes bench_sync.py's `users` table (inserts, then updates
of a quarter and deletes of a tenth of the rows) and reads the same binlog several times, decoding
the rows events alternately with the library (`event.rows`) and with `RowImages.rows`; prints the
process CPU per row image around each event's decoding, and for the whole stream.

    PYTHONPATH=src .venv/bin/python bench/bench_rowimage.py --rows 50000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test harness starts the database

from harness.private_databases import PrivateMariaDB  # noqa: E402
from shoal.replicate.mysql import _wrap  # noqa: E402
from shoal.replicate.rowimage import RowImages  # noqa: E402


def _read(maria: PrivateMariaDB, file: str, pos: int, ours: bool) -> dict[str, Any]:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": maria.port, "user": "root", "password": "",
                             "ssl_disabled": True},
        server_id=99, blocking=False, resume_stream=True, log_file=file, log_pos=pos,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], only_schemas=["bench"],
        is_mariadb=False, pymysql_wrapper=_wrap,
    )  # fmt: skip
    images = RowImages()
    n, decoding = 0, 0.0
    started = time.process_time()
    try:
        for event in stream:
            t = time.process_time()
            if ours:
                rows = images.rows(event)
                assert rows is not None, "the decoder left the bench table to the library"
                n += len(rows)
            else:
                n += len(event.rows) * (2 if isinstance(event, UpdateRowsEvent) else 1)
            decoding += time.process_time() - t
    finally:
        stream.close()
    whole = time.process_time() - started
    return {
        "decoder": "shoal" if ours else "library",
        "row_images": n,
        "decode_us_per_image": round(1e6 * decoding / n, 2),
        "stream_us_per_image": round(1e6 * whole / n, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    maria = PrivateMariaDB().start()
    out: list[dict[str, Any]] = []
    try:
        maria.execute("CREATE DATABASE bench")
        maria.execute(
            "CREATE TABLE bench.users (id BIGINT PRIMARY KEY, email VARCHAR(80), plan VARCHAR(10), "
            "team_id INT, mrr DECIMAL(10,2), created_at DATETIME, KEY (team_id))"
        )
        file, pos = maria.execute("SHOW MASTER STATUS")[0][:2]
        maria.execute(
            "INSERT INTO users SELECT seq, CONCAT('u', seq, '@example.com'), IF(seq % 3 = 0, 'pro', 'free'), "
            "seq % 5000, (seq % 1000) / 10, '2024-01-01' + INTERVAL (seq % 86400) SECOND "
            f"FROM seq_1_to_{args.rows}",
            "bench",
        )
        maria.execute("UPDATE users SET mrr = mrr + 1, plan = 'pro' WHERE id % 4 = 0", "bench")
        maria.execute("DELETE FROM users WHERE id % 10 = 1", "bench")
        for _ in range(args.rounds):
            for ours in (False, True):
                out.append(_read(maria, str(file), int(pos), ours))
    finally:
        maria.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
