from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shoal.sources.prometheus import EXPOSITION_SCHEMA, ExpositionError, iter_samples, parse_exposition

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prometheus"
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _labels(row: dict[str, object]) -> dict[str, str]:
    return dict(row["labels"])  # type: ignore[call-overload]


def test_node_exporter_fixture_parses() -> None:
    table = parse_exposition((FIXTURES / "node_exporter_e2e-output.txt").read_bytes(), TEXT)
    assert table.schema == EXPOSITION_SCHEMA
    assert table.num_rows == 3027
    rows = table.to_pylist()
    crit = [r for r in rows if r["metric"] == "node_hwmon_temp_crit_celsius"]
    assert {"chip": "hwmon4", "sensor": "temp1"} in [_labels(r) for r in crit]
    assert next(r for r in rows if r["metric"] == "node_arp_entries")["value"] == 3.0
    assert all(r["timestamp"] is None for r in rows)


def test_alltypes_fixture_parses_histograms_and_summaries() -> None:
    table = parse_exposition((FIXTURES / "prometheus_alltypes.237mfs.prom.txt").read_bytes(), TEXT)
    assert table.num_rows == 1857
    metrics = set(table["metric"].to_pylist())
    assert "go_gc_heap_allocs_by_size_bytes_bucket" in metrics
    assert "go_gc_heap_allocs_by_size_bytes_count" in metrics
    inf = [
        r
        for r in table.to_pylist()
        if r["metric"] == "go_gc_heap_allocs_by_size_bytes_bucket" and _labels(r)["le"] == "+Inf"
    ]
    assert inf[0]["value"] == pytest.approx(4.4046288803e10)


def test_openmetrics_by_content_type_with_timestamps() -> None:
    body = '# TYPE jobs counter\njobs_total{queue="a"} 3 1700000000.5\n# TYPE temp gauge\ntemp 21.5\n# EOF\n'
    table = parse_exposition(body, OM)
    rows = {r["metric"]: r for r in table.to_pylist()}
    assert rows["jobs_total"]["value"] == 3.0
    assert rows["jobs_total"]["timestamp"] == pa.scalar(1700000000500, pa.timestamp("ms", tz="UTC")).as_py()
    assert rows["temp"]["timestamp"] is None
    # the same body without "# EOF" is invalid OpenMetrics but fine as text format
    with pytest.raises(ExpositionError):
        parse_exposition(body.replace("# EOF\n", ""), OM)


def test_text_format_timestamp_is_milliseconds() -> None:
    [s] = list(iter_samples('up{job="x"} 1 1700000000123\n', None))
    assert s.timestamp_ms == 1700000000123
    assert s.labels == {"job": "x"}


@pytest.mark.parametrize("body", ["foo{ 1\n", "foo bar\n", 'x{a="1" 1\n'])
def test_malformed_raises_one_line(body: str) -> None:
    with pytest.raises(ExpositionError) as info:
        list(iter_samples(body, TEXT))
    assert "\n" not in str(info.value)
