"""Pipeline file validation: one clear error naming the file and the field; secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.ingest import PipelineSpecError, load_pipeline, parse_pipeline
from shoal.ingest.spec import parse_size
from shoal.lake import progress
from shoal.usecases.support import PIPELINE_TEMPLATE

BASE = {
    "name": "tickets",
    "topics": ["t1"],
    "brokers": "127.0.0.1:9092",
    "decode": {"format": "protobuf", "proto_file": "protos/t.proto", "message": "a.B"},
    "table": "support.ticket_events",
}


def _parse(tmp_path: Path, **changes):
    raw = {**BASE, **changes}
    raw = {k: v for k, v in raw.items() if v is not None}
    return parse_pipeline(raw, base_dir=tmp_path, file="pipelines/tickets.yaml")


def test_defaults_and_derived_names(tmp_path: Path) -> None:
    spec = _parse(tmp_path)
    assert spec.group == "shoal-tickets"
    assert spec.dlq_table == "support.ticket_events_dead_letters"
    assert spec.flush.max_rows == 100_000
    assert spec.flush.max_bytes == 64 * 2**20
    assert spec.flush.max_latency_s == 5
    assert progress.kafka_offset(spec.name, "t1", 3) == "shoal:tickets:t1:3"
    assert spec.decode.proto_file == tmp_path / "protos/t.proto"  # relative to the project dir


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"table": "no_namespace"}, "table", "namespace.table"),
        ({"topics": None}, "(top level)", "exactly one of 'topics'"),
        ({"topic_pattern": "^t.*"}, "(top level)", "exactly one of"),
        ({"topics": None, "topic_pattern": "t.*"}, "topic_pattern", "must start with '^'"),
        ({"flush": {"max_rows": 0}}, "flush.max_rows", "greater than 0"),
        ({"flush": {"max_bytes": "lots"}}, "flush.max_bytes", "not a size"),
        (
            {"partition_by": [{"column": "d", "from": "ts", "transform": "week"}]},
            "partition_by.0.transform",
            "",
        ),
        ({"decode": {"format": "protobuf", "message": "a.B"}}, "decode", "exactly one of"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
        ({"client": {"group.id": "x"}}, "(top level)", "managed by shoal"),
    ],
)
def test_invalid_input_names_file_and_field(tmp_path: Path, changes, field, needle) -> None:
    with pytest.raises(PipelineSpecError) as err:
        _parse(tmp_path, **changes)
    msg = str(err.value)
    assert msg.startswith(f"pipelines/tickets.yaml: {field}:"), msg
    assert needle in msg
    assert "\n" not in msg


def test_secrets_never_printed(tmp_path: Path) -> None:
    spec = _parse(tmp_path, client={"sasl.password": "hunter2", "security.protocol": "SASL_SSL"})
    assert "hunter2" not in repr(spec)
    assert spec.describe()["client"] == {"sasl.password": "***", "security.protocol": "SASL_SSL"}
    with pytest.raises(PipelineSpecError) as err:
        _parse(tmp_path, client={"sasl.password": ["hunter2"]})
    assert "hunter2" not in str(err.value)


def test_env_vars_expand_and_missing_ones_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_TEST_BROKERS", "10.0.0.1:9092")
    spec = _parse(tmp_path, brokers="${SHOAL_TEST_BROKERS}", topics=["${SHOAL_TEST_TOPIC:-fallback}"])
    assert spec.brokers == "10.0.0.1:9092"
    assert spec.topics == ("fallback",)
    with pytest.raises(PipelineSpecError, match=r"tickets.yaml: client.sasl.password: .*\$\{NOPE_NOT_SET\}"):
        _parse(tmp_path, client={"sasl.password": "${NOPE_NOT_SET}"})


def test_load_from_file_and_yaml_errors(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("name: [unclosed\n")
    with pytest.raises(PipelineSpecError, match=r"bad.yaml: line \d+ invalid YAML"):
        load_pipeline(f)
    with pytest.raises(PipelineSpecError, match="pipeline file not found"):
        load_pipeline(tmp_path / "missing.yaml")


def test_the_support_template_is_a_valid_pipeline(tmp_path: Path) -> None:
    spec = load_pipeline(PIPELINE_TEMPLATE, tmp_path)
    assert spec.table == "support.ticket_events"
    assert spec.partition_by[0].source == "occurred_at"
    assert spec.decode.proto_file == tmp_path / "protos/ticket_events.proto"


@pytest.mark.parametrize(
    ("text", "expected"), [("64MiB", 64 * 2**20), ("500MB", 500 * 10**6), ("1024", 1024), ("2k", 2000)]
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected
