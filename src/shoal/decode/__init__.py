"""Decode stage: record bytes (Kafka values, HTTP bodies) → Arrow RecordBatch.

    from shoal.decode import DecodeSpec, build_decoder
    decoder = build_decoder(DecodeSpec(format="protobuf", proto_file=Path("ticket.proto"),
                                       message="acme.support.TicketEvent"))
    res = decoder.decode(values)      # res.batch, res.indices, res.failures, res.unknown_field_rows

Bad records never raise: they come back as ``DecodeFailure(index, error_class, message)``.
"""

from __future__ import annotations

from shoal.decode.arrow_mapping import arrow_schema_for
from shoal.decode.compile import compile_proto, message_class, message_descriptor
from shoal.decode.errors import DecodeError, DecodeSpecError, MessageNotFound, SchemaLoadError
from shoal.decode.json_decoder import JsonDecoder
from shoal.decode.protobuf import ProtobufDecoder
from shoal.decode.result import DecodeFailure, Decoder, DecodeResult
from shoal.decode.spec import DecodeSpec, JsonColumn

__all__ = [
    "DecodeError",
    "DecodeFailure",
    "DecodeResult",
    "DecodeSpec",
    "DecodeSpecError",
    "Decoder",
    "JsonColumn",
    "JsonDecoder",
    "MessageNotFound",
    "ProtobufDecoder",
    "SchemaLoadError",
    "arrow_schema_for",
    "build_decoder",
    "compile_proto",
    "message_class",
    "message_descriptor",
]


def build_decoder(spec: DecodeSpec) -> Decoder:
    """A decoder for ``spec``. Raises SchemaLoadError / MessageNotFound (Terminal) when the protobuf
    schema cannot be loaded; never raises for bad records later."""
    if spec.format == "json":
        return JsonDecoder(
            spec.columns,
            infer=spec.infer,
            extra_column=spec.extra_column,
            confluent_wire=spec.confluent_wire,
        )
    assert spec.message is not None  # guaranteed by DecodeSpec validation
    desc = message_descriptor(
        spec.message,
        proto_file=spec.proto_file,
        descriptor_set=spec.descriptor_set,
        include_paths=spec.include_paths,
    )
    return ProtobufDecoder(
        desc,
        confluent_wire=spec.confluent_wire,
        enums_as_numbers=spec.enums == "number",
        strict_unknown_fields=spec.strict_unknown_fields,
        delta_compatible_types=spec.delta_compatible_types,
    )
