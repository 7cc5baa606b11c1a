"""Loading schemas: .proto compiled at load time, FileDescriptorSets, message_class, spec validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from shoal.decode import (
    DecodeSpec,
    DecodeSpecError,
    MessageNotFound,
    SchemaLoadError,
    build_decoder,
    compile_proto,
    message_class,
)
from shoal.decode.compile import well_known_include_dir
from shoal.errors import ShoalError, Terminal

PROTOS = Path(__file__).parent / "protos"


def test_proto_file_and_descriptor_set_give_same_schema(tmp_path: Path) -> None:
    # a descriptor set made by a separate protoc run, as a user would with --descriptor_set_out
    out = tmp_path / "ticket.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{well_known_include_dir()}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            str(PROTOS / "ticket.proto"),
        ],
        check=True,
    )
    from_set = build_decoder(
        DecodeSpec(format="protobuf", message="shoal.bench.TicketEvent", descriptor_set=out)
    )
    from_proto = build_decoder(
        DecodeSpec(format="protobuf", message="shoal.bench.TicketEvent", proto_file=PROTOS / "ticket.proto")
    )
    assert from_set.arrow_schema == from_proto.arrow_schema
    assert "occurred_at" in from_set.arrow_schema.names


def test_descriptor_set_without_imports_uses_bundled_well_known_types(tmp_path: Path) -> None:
    out = tmp_path / "noimports.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{well_known_include_dir()}",
            f"--descriptor_set_out={out}",
            str(PROTOS / "events_v1.proto"),
        ],
        check=True,
    )
    cls = message_class("shoal.evo.Event", descriptor_set=out)
    assert cls.DESCRIPTOR.fields_by_name["at"].message_type.full_name == "google.protobuf.Timestamp"


def test_message_class_round_trips_bytes() -> None:
    cls = message_class("shoal.bench.TicketEvent", proto_file=PROTOS / "ticket.proto")
    msg = cls(event_id="e1", tags=["x"])
    msg.created.subject = "s"
    again = cls.FromString(msg.SerializeToString())
    assert again.event_id == "e1"
    assert again.WhichOneof("payload") == "created"
    # same file content → same pool → same class
    assert message_class("shoal.bench.TicketEvent", proto_file=PROTOS / "ticket.proto") is cls


def test_nested_message_name_and_include_paths(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "acme"
    lib.mkdir(parents=True)
    (lib / "common.proto").write_text('syntax = "proto3"; package acme; message Money { int64 cents = 1; }')
    app = tmp_path / "app"
    app.mkdir()
    (app / "order.proto").write_text(
        'syntax = "proto3"; package shop; import "acme/common.proto";'
        " message Order { message Line { acme.Money price = 1; } repeated Line lines = 1; }"
    )
    cls = message_class("shop.Order.Line", proto_file=app / "order.proto", include_paths=[tmp_path / "lib"])
    assert cls.DESCRIPTOR.full_name == "shop.Order.Line"


def test_unknown_message_suggests_close_names() -> None:
    with pytest.raises(MessageNotFound, match=r"shoal\.bench\.TicketEvent") as err:
        message_class("shoal.bench.TicketEvnt", proto_file=PROTOS / "ticket.proto")
    assert isinstance(err.value, ShoalError)
    assert isinstance(err.value, Terminal)


def test_broken_proto_reports_protoc_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3"; message Broken { strin x = 1; }')
    with pytest.raises(SchemaLoadError, match=r"protoc failed .*strin") as err:
        message_class("Broken", proto_file=bad)
    assert "\n" not in str(err.value)


def test_missing_files_and_garbage_descriptor_set(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match="not found"):
        message_class("X", proto_file=tmp_path / "nope.proto")
    with pytest.raises(SchemaLoadError, match="cannot read"):
        message_class("X", descriptor_set=tmp_path / "nope.pb")
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(SchemaLoadError, match="not a FileDescriptorSet"):
        message_class("X", descriptor_set=garbage)


def test_two_versions_of_one_file_coexist() -> None:
    v1 = message_class("shoal.evo.Event", proto_file=PROTOS / "events_v1.proto")
    v2 = message_class("shoal.evo.Event", proto_file=PROTOS / "events_v2.proto")
    assert "region" in v2.DESCRIPTOR.fields_by_name
    assert "region" not in v1.DESCRIPTOR.fields_by_name


def test_oneof_case_column_clash_is_a_spec_error(tmp_path: Path) -> None:
    p = tmp_path / "clash.proto"
    p.write_text('syntax = "proto3"; message C { oneof kind { int32 a = 1; } string kind_case = 2; }')
    with pytest.raises(DecodeSpecError, match="kind_case"):
        build_decoder(DecodeSpec(format="protobuf", message="C", proto_file=p))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"format": "protobuf", "proto_file": "a.proto"}, "message"),
        ({"format": "protobuf", "message": "M"}, "exactly one"),
        ({"format": "protobuf", "message": "M", "proto_file": "a", "descriptor_set": "b"}, "exactly one"),
        ({"format": "json"}, "columns"),
        ({"format": "json", "infer": True, "columns": []}, "exactly one"),
        ({"format": "json", "columns": [{"name": "a", "type": "varchar"}]}, "unknown column type"),
        ({"format": "json", "columns": [{"name": "a", "type": "decimal(40,2)"}]}, "decimal"),
        ({"format": "json", "columns": [{"name": "_extra"}]}, "reserved"),
        ({"format": "json", "infer": True, "message": "M"}, "protobuf only"),
        ({"format": "avro"}, "format"),
    ],
)
def test_spec_validation(fields: dict[str, object], match: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=match):
        DecodeSpec.model_validate(fields)


def test_spec_is_frozen_and_resolves_paths(tmp_path: Path) -> None:
    spec = DecodeSpec.model_validate(
        {"format": "protobuf", "message": "M", "proto_file": "p/a.proto", "include_paths": ["inc"]}
    )
    with pytest.raises(pydantic.ValidationError):
        spec.message = "N"  # type: ignore[misc]
    resolved = spec.resolve_paths(tmp_path)
    assert resolved.proto_file == tmp_path / "p/a.proto"
    assert resolved.include_paths == (tmp_path / "inc",)
    assert spec.proto_file == Path("p/a.proto")


def test_compile_proto_returns_descriptor_set_bytes() -> None:
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(compile_proto(PROTOS / "alltypes.proto"))
    names = {f.name for f in fds.file}
    assert "alltypes.proto" in names
    assert "google/protobuf/timestamp.proto" in names
