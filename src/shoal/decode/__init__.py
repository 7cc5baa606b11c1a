"""Decode stage: record bytes (Kafka values, HTTP bodies) → Arrow RecordBatch.

    from shoal.decode import DecodeSpec, build_decoder
    decoder = build_decoder(DecodeSpec(format="protobuf", proto_file=Path("ticket.proto"),
                                       message="acme.support.TicketEvent"))
    res = decoder.decode(values)      # res.batch, res.indices, res.failures, res.unknown_field_rows

Bad records never raise: they come back as ``DecodeFailure(index, error_class, message)``.
``DECODERS`` (:mod:`.registry`) maps each ``format`` to the factory that builds its decoder.
"""

from __future__ import annotations

from shoal.decode.arrow_mapping import arrow_schema_for
from shoal.decode.compile import compile_proto, message_class, message_descriptor
from shoal.decode.errors import DecodeError, DecodeSpecError, MessageNotFound, SchemaLoadError
from shoal.decode.json_decoder import JsonDecoder
from shoal.decode.protobuf import ProtobufDecoder
from shoal.decode.registry import DECODERS, DecoderFactory, build_decoder
from shoal.decode.result import DecodeFailure, Decoder, DecodeResult
from shoal.decode.spec import DecodeSpec, JsonColumn

__all__ = [
    "DECODERS",
    "DecodeError",
    "DecodeFailure",
    "DecodeResult",
    "DecodeSpec",
    "DecodeSpecError",
    "Decoder",
    "DecoderFactory",
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
