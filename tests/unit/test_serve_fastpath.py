"""The small-query fast path: cached guard verdicts stay per access profile and catalog, the one
deadline thread interrupts at the deadline and not after a cancel, and a small HTTP result is one
complete response (logged) while a large one still streams."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from httpx import Client

from harness.ports import free_port
from harness.serve_sample import SampleProject, auth, http_client, sample_project
from shoal.query.guard import DeniedTable, UnknownTable
from shoal.serve import executor as executor_module
from shoal.serve.app import PREFETCH_BYTES
from shoal.serve.executor import Deadlines
from shoal.serve.server import serving_in_thread
from shoal.serve.state import ServeState


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> SampleProject:
    return sample_project(tmp_path_factory.mktemp("fastpath"))


def test_cached_verdict_is_not_shared_between_access_profiles(served: SampleProject) -> None:
    sql = "select count(*) from billing.invoices"
    with ServeState(served.project) as st:
        admin = st.tokens.authenticate(served.admin)
        reader = st.tokens.authenticate(served.support_reader)
        first = st.executor.check(admin, sql)
        assert st.executor.check(admin, sql) is first  # the second check is the cached verdict
        with pytest.raises(DeniedTable, match=r"billing\.invoices"):
            st.executor.check(reader, sql)
        with pytest.raises(DeniedTable):  # refusals are never cached as anything else
            st.executor.check(reader, sql)


def test_cached_verdict_follows_the_catalog(tmp_path: Path) -> None:
    sample = sample_project(tmp_path / "p")
    sql = "select * from support.extra"
    with ServeState(sample.project) as st:
        admin = st.tokens.authenticate(sample.admin)
        with pytest.raises(UnknownTable):
            st.executor.check(admin, sql)
        sample.project.lake.create_table("support.extra", pa.schema([("x", pa.int64())]))
        st.executor._catalog = None  # as after REFRESH_EVERY_S
        assert st.executor.check(admin, sql).tables == frozenset({"support.extra"})


def test_deadlines_fire_in_order_and_not_after_cancel() -> None:
    deadlines = Deadlines()
    fired: list[str] = []
    done = threading.Event()
    try:
        started = time.monotonic()
        deadlines.add(0.4, lambda: (fired.append("late"), done.set()))
        cancel = deadlines.add(0.3, lambda: fired.append("cancelled"))
        deadlines.add(0.1, lambda: fired.append("early"))
        cancel()
        assert done.wait(5)
        assert fired == ["early", "late"]
        assert time.monotonic() - started >= 0.4
    finally:
        deadlines.close()


def test_small_result_is_one_response_and_large_still_streams(served: SampleProject) -> None:
    with http_client(served.project) as client:
        small = client.post(
            "/v1/query",
            json={"sql": "select id from support.tickets order by id limit 3"},
            headers=auth(served.admin),
        )
        assert small.status_code == 200
        assert small.headers["content-length"] == str(len(small.content))
        assert small.json()["rows"] == [[0], [1], [2]]
        rows = PREFETCH_BYTES // 4
        with client.stream(
            "POST",
            "/v1/query",
            json={"sql": f"select range as id from range({rows})", "format": "csv"},
            headers=auth(served.admin),
        ) as big:
            assert big.status_code == 200
            assert "content-length" not in big.headers  # chunked: not held whole in memory
            lines = b"".join(big.iter_bytes()).splitlines()
        assert len(lines) == rows + 1
        assert lines[-1] == str(rows - 1).encode()


def test_catalog_is_re_read_in_the_background_once_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor_module, "REFRESH_AHEAD_S", 0.0)
    monkeypatch.setattr(executor_module, "REFRESH_EVERY_S", 60.0)
    sample = sample_project(tmp_path / "p")
    with ServeState(sample.project) as st:
        assert "support.extra" not in st.executor.known_tables()
        sample.project.lake.create_table("support.extra", pa.schema([("x", pa.int64())]))
        # due for a re-read but not stale: this call answers at once, a thread re-reads the lake
        assert "support.extra" not in st.executor.known_tables()
        deadline = time.monotonic() + 10
        while "support.extra" not in st.executor.known_tables():
            assert time.monotonic() < deadline, "the background re-read never landed"
            time.sleep(0.02)


def test_small_csv_past_the_row_limit_is_an_error_not_a_cut_stream(tmp_path: Path) -> None:
    sample = sample_project(tmp_path / "p")
    serve = sample.project.settings.serve
    settings = serve.model_copy(
        update={
            "port": free_port(),
            "pg_port": None,
            "limits": serve.limits.model_copy(update={"max_rows": 5}),
        }
    )
    with (
        serving_in_thread(sample.project, settings),
        Client(base_url=f"http://127.0.0.1:{settings.port}") as c,
    ):
        r = c.get(
            "/v1/query",
            params={"sql": "select * from range(100)", "format": "csv"},
            headers=auth(sample.admin),
        )
        assert r.status_code == 413
        assert "serve.limits.max_rows" in r.json()["error"]["message"]
        ok = c.get("/v1/query", params={"sql": "select 1 as x", "format": "csv"}, headers=auth(sample.admin))
        assert ok.text.split() == ["x", "1"]
