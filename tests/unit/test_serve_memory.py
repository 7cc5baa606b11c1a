"""What a served engine's memory limit does (DuckDB has no per-query limit, see operations.md):
a query past it that cannot spill fails in one line, and the same engine keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.serve_sample import sample_project
from shoal.query import QueryError
from shoal.serve.state import ServeState


def test_out_of_memory_is_one_line_and_the_engine_goes_on(tmp_path: Path) -> None:
    sample = sample_project(tmp_path / "p")
    serve = sample.project.settings.serve
    settings = serve.model_copy(update={"limits": serve.limits.model_copy(update={"memory_limit": "100MB"})})
    with ServeState(sample.project, settings) as st:
        token = st.tokens.authenticate(sample.admin)
        big = "select list(range) from range(30000000)"
        with (
            pytest.raises(QueryError, match=r"^Out of Memory Error: failed to allocate") as err,
            st.executor.query(token, big) as result,
        ):
            list(result.batches())
        assert "\n" not in str(err.value)
        with st.executor.query(token, "select count(*) as n from support.tickets") as result:
            assert [b.to_pylist() for b in result.batches()] == [[{"n": 200}]]
