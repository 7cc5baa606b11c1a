"""Schemas between Spark, Arrow and Delta.

Delta ``timestamp`` is an instant (Arrow ``timestamp[us, UTC]``, Spark ``TimestampType``);
``timestamp_ntz`` is a wall-clock time (Arrow without a zone, Spark ``TimestampNTZType``).
Decimals keep their precision and scale, so money stays exact on both sides.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import types as T

from shoal.spark.errors import UnsupportedTable


def _arrow_type_to_spark(t: pa.DataType, where: str) -> T.DataType:
    if pa.types.is_boolean(t):
        return T.BooleanType()
    if pa.types.is_int8(t):
        return T.ByteType()
    if pa.types.is_int16(t) or pa.types.is_uint8(t):
        return T.ShortType()
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return T.IntegerType()
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return T.LongType()
    if pa.types.is_float32(t):
        return T.FloatType()
    if pa.types.is_float64(t):
        return T.DoubleType()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return T.StringType()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return T.BinaryType()
    if pa.types.is_fixed_size_binary(t):
        return T.BinaryType()
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        return T.DateType()
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz else T.TimestampNTZType()
    if pa.types.is_decimal(t):
        if t.precision > 38:
            raise UnsupportedTable(
                f"{where}: decimal({t.precision},{t.scale}) is wider than Spark's 38 digits"
            )
        return T.DecimalType(t.precision, t.scale)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return T.ArrayType(_arrow_type_to_spark(t.value_type, where), t.value_field.nullable)
    if pa.types.is_map(t):
        return T.MapType(
            _arrow_type_to_spark(t.key_type, where),
            _arrow_type_to_spark(t.item_type, where),
            t.item_field.nullable,
        )
    if pa.types.is_struct(t):
        return T.StructType(
            [T.StructField(f.name, _arrow_type_to_spark(f.type, where), f.nullable) for f in t]
        )
    if pa.types.is_dictionary(t):
        return _arrow_type_to_spark(t.value_type, where)
    raise UnsupportedTable(f"{where}: Arrow type {t} has no Spark equivalent")


def arrow_to_spark(schema: pa.Schema, where: str = "schema") -> T.StructType:
    """The Spark schema of an Arrow (Delta) schema."""
    return T.StructType(
        [
            T.StructField(f.name, _arrow_type_to_spark(f.type, f"{where}: column {f.name!r}"), f.nullable)
            for f in schema
        ]
    )


def _spark_type_to_arrow(t: T.DataType, where: str) -> pa.DataType:
    simple: list[tuple[type[T.DataType], pa.DataType]] = [
        (T.BooleanType, pa.bool_()),
        (T.ByteType, pa.int8()),
        (T.ShortType, pa.int16()),
        (T.IntegerType, pa.int32()),
        (T.LongType, pa.int64()),
        (T.FloatType, pa.float32()),
        (T.DoubleType, pa.float64()),
        (T.StringType, pa.string()),
        (T.BinaryType, pa.binary()),
        (T.DateType, pa.date32()),
        (T.TimestampNTZType, pa.timestamp("us")),
        (T.TimestampType, pa.timestamp("us", tz="UTC")),
    ]
    for spark_type, arrow_type in simple:
        if isinstance(t, spark_type):
            return arrow_type
    if isinstance(t, T.DecimalType):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, T.ArrayType):
        return pa.list_(pa.field("element", _spark_type_to_arrow(t.elementType, where), t.containsNull))
    if isinstance(t, T.MapType):
        return pa.map_(
            _spark_type_to_arrow(t.keyType, where),
            pa.field("value", _spark_type_to_arrow(t.valueType, where), t.valueContainsNull),
        )
    if isinstance(t, T.StructType):
        return pa.struct(
            [pa.field(f.name, _spark_type_to_arrow(f.dataType, where), f.nullable) for f in t.fields]
        )
    raise UnsupportedTable(f"{where}: Spark type {t.simpleString()} has no Delta equivalent")


def spark_to_arrow(schema: T.StructType, where: str = "schema") -> pa.Schema:
    """The Arrow schema (as shoal commits it to Delta) of a Spark schema."""
    return pa.schema(
        [
            pa.field(f.name, _spark_type_to_arrow(f.dataType, f"{where}: column {f.name!r}"), f.nullable)
            for f in schema.fields
        ]
    )
