"""The decoder registry: a pipeline's ``decode.format`` names the factory that builds its decoder.

A format is one entry here rather than a branch in the callers; the spec (:class:`DecodeSpec`)
validates the fields each built-in format needs before a factory sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from shoal.decode.compile import message_descriptor
from shoal.decode.errors import DecodeSpecError
from shoal.decode.json_decoder import JsonDecoder
from shoal.decode.protobuf import ProtobufDecoder
from shoal.decode.result import Decoder
from shoal.decode.spec import DecodeSpec

DecoderFactory = Callable[[DecodeSpec], Decoder]


def _json(spec: DecodeSpec) -> Decoder:
    return JsonDecoder(
        spec.columns,
        infer=spec.infer,
        extra_column=spec.extra_column,
        confluent_wire=spec.confluent_wire,
    )


def _protobuf(spec: DecodeSpec) -> Decoder:
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


DECODERS: Mapping[str, DecoderFactory] = MappingProxyType({"json": _json, "protobuf": _protobuf})


def build_decoder(spec: DecodeSpec) -> Decoder:
    """A decoder for ``spec``. Raises SchemaLoadError / MessageNotFound (Terminal) when the protobuf
    schema cannot be loaded; never raises for bad records later."""
    factory = DECODERS.get(spec.format)
    if factory is None:
        raise DecodeSpecError(f"no decoder for format {spec.format!r}; known: {', '.join(sorted(DECODERS))}")
    return factory(spec)
