"""The decoder registry: each format names one factory; an unknown format is a one-line error."""

from __future__ import annotations

import pytest

from shoal.decode import DECODERS, DecodeSpec, DecodeSpecError, JsonDecoder, ProtobufDecoder, build_decoder
from shoal.usecases.support import MESSAGE, PROTO_FILE


def test_every_spec_format_has_a_factory() -> None:
    assert set(DECODERS) == {"json", "protobuf"}
    with pytest.raises(TypeError):
        DECODERS["avro"] = DECODERS["json"]  # type: ignore[index]


def test_the_factory_of_the_spec_format_builds_the_decoder() -> None:
    json_dec = build_decoder(DecodeSpec(format="json", infer=True))
    assert isinstance(json_dec, JsonDecoder)
    proto_dec = build_decoder(DecodeSpec(format="protobuf", proto_file=PROTO_FILE, message=MESSAGE))
    assert isinstance(proto_dec, ProtobufDecoder)
    assert proto_dec.descriptor.full_name == MESSAGE


def test_an_unknown_format_names_the_known_ones() -> None:
    spec = DecodeSpec.model_construct(format="avro")  # past validation, as a plugin's spec might be
    with pytest.raises(DecodeSpecError, match=r"no decoder for format 'avro'; known: json, protobuf$"):
        build_decoder(spec)
