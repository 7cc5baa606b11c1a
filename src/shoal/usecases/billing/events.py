"""The billing event record and its protobuf codec (``usage_events.proto``).

The message class is built at runtime from the shipped ``.proto`` (compiled to a
descriptor set with grpcio-tools' bundled protoc), so there is no generated
``_pb2`` module to keep in sync with the schema.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

PROTO_PATH = Path(__file__).with_name("usage_events.proto")
MESSAGE_NAME = "shoal.billing.v1.UsageEvent"

CREATED = "EVENT_TYPE_RESOURCE_CREATED"
RESIZED = "EVENT_TYPE_RESOURCE_RESIZED"
DESTROYED = "EVENT_TYPE_RESOURCE_DESTROYED"
USAGE = "EVENT_TYPE_USAGE"
EVENT_TYPES = (CREATED, RESIZED, DESTROYED, USAGE)


class BillingEvent(NamedTuple):
    """One event as the producer sends it (field names = proto field names)."""

    event_id: str
    event_type: str
    user_id: str
    team_id: str
    region: str
    resource_id: str
    product: str
    plan: str
    unit: str
    quantity_micros: int
    hourly_price_micros: int
    monthly_cap_micros: int | None
    currency: str
    occurred_at: datetime
    billing_hour: datetime
    billing_month: str


@functools.cache
def message_class() -> Any:
    """The ``UsageEvent`` protobuf class (compiled once per process)."""
    from shoal.decode import message_class as compiled_class

    return compiled_class(MESSAGE_NAME, proto_file=PROTO_PATH)


def _epoch_us(ts: datetime) -> int:
    # integer arithmetic: exact microseconds, no float rounding
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_events(events: Iterable[BillingEvent]) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs: key = resource_id (UTF-8), value = serialized UsageEvent."""
    cls = message_class()
    enum_value = cls.DESCRIPTOR.fields_by_name["event_type"].enum_type.values_by_name
    type_numbers = {name: enum_value[name].number for name in EVENT_TYPES}
    for ev in events:
        msg = cls(
            event_id=ev.event_id,
            event_type=type_numbers[ev.event_type],
            user_id=ev.user_id,
            team_id=ev.team_id,
            region=ev.region,
            resource_id=ev.resource_id,
            product=ev.product,
            plan=ev.plan,
            unit=ev.unit,
            quantity_micros=ev.quantity_micros,
            hourly_price_micros=ev.hourly_price_micros,
            currency=ev.currency,
            billing_month=ev.billing_month,
        )
        if ev.monthly_cap_micros is not None:
            msg.monthly_cap_micros = ev.monthly_cap_micros
        us = _epoch_us(ev.occurred_at)
        msg.occurred_at.seconds, msg.occurred_at.nanos = us // 1_000_000, (us % 1_000_000) * 1000
        us = _epoch_us(ev.billing_hour)
        msg.billing_hour.seconds, msg.billing_hour.nanos = us // 1_000_000, (us % 1_000_000) * 1000
        yield ev.resource_id.encode(), msg.SerializeToString()


def decode_event(value: bytes) -> BillingEvent:
    """Inverse of :func:`encode_events` for one value (tests, debugging)."""
    cls = message_class()
    msg = cls.FromString(value)
    type_name = cls.DESCRIPTOR.fields_by_name["event_type"].enum_type.values_by_number[msg.event_type].name
    return BillingEvent(
        event_id=msg.event_id,
        event_type=type_name,
        user_id=msg.user_id,
        team_id=msg.team_id,
        region=msg.region,
        resource_id=msg.resource_id,
        product=msg.product,
        plan=msg.plan,
        unit=msg.unit,
        quantity_micros=msg.quantity_micros,
        hourly_price_micros=msg.hourly_price_micros,
        monthly_cap_micros=msg.monthly_cap_micros if msg.HasField("monthly_cap_micros") else None,
        currency=msg.currency,
        occurred_at=msg.occurred_at.ToDatetime(tzinfo=UTC),
        billing_hour=msg.billing_hour.ToDatetime(tzinfo=UTC),
        billing_month=msg.billing_month,
    )
