"""Protobuf bytes → Arrow RecordBatch, column-at-a-time over upb-parsed messages."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from shoal.decode import confluent_framing
from shoal.decode.arrow_mapping import BuildContext, delta_compatible, has_required_fields, root_node
from shoal.decode.confluent_framing import FramingMode
from shoal.decode.protobuf_columnar import plan_wire_columns
from shoal.decode.result import DecodeFailure, Decoder, DecodeResult, gc_paused, one_line


class ProtobufDecoder(Decoder):
    """Decodes serialized ``desc`` messages (optionally Confluent-framed) into rows of ``arrow_schema``.

    A record fails (and is left out of the batch) when its value is None, its framing is malformed, it
    does not parse, a proto2 required field is missing, a string holds invalid UTF-8, a known field
    number arrives with the wrong wire type, or it carries only unknown fields (almost surely not this
    message type). With ``strict_unknown_fields`` any unknown field fails the record; otherwise such
    records decode and are counted in ``unknown_field_rows``.
    """

    def __init__(
        self,
        desc: Descriptor,
        *,
        confluent_wire: FramingMode = "auto",
        enums_as_numbers: bool = False,
        strict_unknown_fields: bool = False,
        delta_compatible_types: bool = False,
        wire_columns: bool = True,
    ) -> None:
        self.descriptor = desc
        self.message_class: type[Message] = message_factory.GetMessageClass(desc)
        self._parse = self.message_class.FromString
        self._root = root_node(desc, enums_as_numbers=enums_as_numbers)
        self._built_schema = pa.schema(self._root.fields)
        self._schema = self._built_schema
        if delta_compatible_types:
            self._schema = pa.schema([f.with_type(delta_compatible(f.type)) for f in self._built_schema])
        self._cast = self._schema != self._built_schema
        self._framing: FramingMode = confluent_wire
        self._strict = strict_unknown_fields
        self._check_required = has_required_fields(desc)
        # Vectorised wire-bytes path; None when the schema has shapes only the message path handles.
        # Its cost is mostly per batch (numpy calls), so batches below ``wire_min_records`` records
        # go through upb messages, which are faster there (crossover near 1,000 support events).
        self.wire_min_records = 1000
        self._wire_skip = 0  # batches left to decode through upb after one the wire path mostly flagged
        self._wire_columns = (
            None if self._check_required or not wire_columns else plan_wire_columns(self._root)
        )

    @property
    def arrow_schema(self) -> pa.Schema:
        return self._schema

    def decode(self, values: Sequence[bytes | None]) -> DecodeResult:
        with gc_paused():
            return self._decode(values)

    def _decode(self, values: Sequence[bytes | None]) -> DecodeResult:
        failures: list[DecodeFailure] = []
        payloads, positions = self._unframe(values, failures)
        wire = self._wire_columns is not None and len(payloads) >= self.wire_min_records
        if wire and not self._wire_skip:
            batch, positions, unknown_rows = self._decode_wire(payloads, positions, failures)
        else:
            self._wire_skip = max(0, self._wire_skip - 1)
            batch, positions, unknown_rows = self._decode_messages(payloads, positions, failures)
        if self._cast:
            batch = batch.cast(self._schema)
        failures.sort(key=lambda f: f.index)
        return DecodeResult(batch, positions, failures, unknown_rows)

    def _decode_wire(
        self, payloads: list[bytes], positions: list[int], failures: list[DecodeFailure]
    ) -> tuple[pa.RecordBatch, list[int], int]:
        """Columns straight from the wire bytes; records that path leaves alone go through upb."""
        assert self._wire_columns is not None
        columns, flagged = self._wire_columns.columns(payloads)
        if columns is None:
            return self._decode_messages(payloads, positions, failures)
        batch = pa.RecordBatch.from_arrays(columns, schema=self._built_schema)
        if not flagged.any():
            return batch, positions, 0
        if flagged.mean() > 0.5:
            # e.g. a producer's newer schema: every record has an unknown field. Both paths ran for
            # most records; skip the wire path for a while rather than pay twice.
            self._wire_skip = 20
        rest = np.flatnonzero(flagged).tolist()
        slow, slow_positions, unknown_rows = self._decode_messages(
            [payloads[i] for i in rest], [positions[i] for i in rest], failures
        )
        fast = batch.filter(pa.array(~flagged))
        merged = [positions[i] for i in np.flatnonzero(~flagged).tolist()] + slow_positions
        order = np.argsort(np.asarray(merged, dtype=np.int64), kind="stable")
        batch = pa.concat_batches([fast, slow]).take(pa.array(order))
        return batch, [merged[i] for i in order.tolist()], unknown_rows

    def _decode_messages(
        self, payloads: list[bytes], positions: list[int], failures: list[DecodeFailure]
    ) -> tuple[pa.RecordBatch, list[int], int]:
        """Parse each record with upb and build the columns from the message objects."""
        msgs, positions = self._parse_all(payloads, positions, failures)
        if self._check_required:
            msgs, positions = self._required(msgs, positions, failures)

        ctx = BuildContext()
        columns = self._root.columns(msgs, None, ctx)
        batch = pa.RecordBatch.from_arrays(columns, schema=self._built_schema)

        unknown_rows = 0
        if ctx.unknown:
            for row in sorted(ctx.unknown):
                if row in ctx.bad:
                    continue
                if self._strict:
                    ctx.fail(row, "UnknownFields", self._unknown_message(msgs[row]))
                elif not msgs[row].ListFields():
                    ctx.fail(
                        row,
                        "UnrecognizedMessage",
                        f"no field of {self.descriptor.full_name} is set, only unknown fields: "
                        "the value is probably not this message type",
                    )
                else:
                    unknown_rows += 1
        if ctx.bad:
            keep = np.ones(len(msgs), dtype=bool)
            for row, (error_class, message) in ctx.bad.items():
                keep[row] = False
                failures.append(DecodeFailure(positions[row], error_class, one_line(message)))
            batch = batch.filter(pa.array(keep))
            positions = [p for p, k in zip(positions, keep.tolist(), strict=True) if k]
        return batch, positions, unknown_rows

    def _unframe(
        self, values: Sequence[bytes | None], failures: list[DecodeFailure]
    ) -> tuple[list[bytes], list[int]]:
        mode = self._framing
        if mode != "always":
            # Fast path: no nulls and (for auto) no value that starts like a Confluent header.
            try:
                if mode == "never" and None not in values:
                    return list(values), list(range(len(values)))  # type: ignore[arg-type]
                if mode == "auto" and (not values or min(map(itemgetter(0), values)) > 1):  # type: ignore[arg-type]
                    return list(values), list(range(len(values)))  # type: ignore[arg-type]
            except (TypeError, IndexError):  # a None or an empty value: take the careful path
                pass
        payloads: list[bytes] = []
        positions: list[int] = []
        for i, v in enumerate(values):
            if v is None:
                failures.append(DecodeFailure(i, "NullValue", "record value is null (a tombstone?)"))
                continue
            if mode == "never" or (v and v[0] > 1 and mode == "auto"):
                payloads.append(v)
            else:
                try:
                    payloads.append(confluent_framing.strip(v, mode, protobuf=True))
                except confluent_framing.FramingError as exc:
                    failures.append(DecodeFailure(i, "WireFormatError", one_line(exc)))
                    continue
            positions.append(i)
        return payloads, positions

    def _parse_all(
        self, payloads: list[bytes], positions: list[int], failures: list[DecodeFailure]
    ) -> tuple[list[Any], list[int]]:
        parse = self._parse
        try:
            return list(map(parse, payloads)), positions  # fast path: every record parses
        except ProtoDecodeError:
            pass
        msgs: list[Any] = []
        kept: list[int] = []
        for payload, pos in zip(payloads, positions, strict=True):
            try:
                msgs.append(parse(payload))
            except ProtoDecodeError as exc:
                failures.append(DecodeFailure(pos, "ProtobufParseError", one_line(exc)))
                continue
            kept.append(pos)
        return msgs, kept

    def _required(
        self, msgs: list[Any], positions: list[int], failures: list[DecodeFailure]
    ) -> tuple[list[Any], list[int]]:
        if all(m.IsInitialized() for m in msgs):
            return msgs, positions
        good: list[Any] = []
        kept: list[int] = []
        for m, pos in zip(msgs, positions, strict=True):
            if m.IsInitialized():
                good.append(m)
                kept.append(pos)
            else:
                missing = ", ".join(m.FindInitializationErrors())
                failures.append(
                    DecodeFailure(pos, "MissingRequiredField", f"required field(s) unset: {missing}")
                )
        return good, kept

    def _unknown_message(self, msg: Message) -> str:
        numbers = sorted({uf.field_number for uf in UnknownFieldSet(msg)})
        where = f"field number(s) {', '.join(map(str, numbers))}" if numbers else "a nested message"
        return f"{self.descriptor.full_name} record carries unknown {where} (strict_unknown_fields is on)"
