"""Billing use case: revenue "from months to minutes", exact to the cent.

- ``usage_events.proto``: ``shoal.billing.v1.UsageEvent`` (money in int64 micro-units).
- :class:`BillingSimulator`: seeded customer base -> events in delivery order
  (late events and duplicates included); ``.encoded()`` gives Kafka (key, value).
- :mod:`.reference`: independent Decimal calculator of every billing output.
- :func:`models`: the ``billing.*`` incremental SQL models (rules in :mod:`.models`).
"""

from __future__ import annotations

from shoal.usecases.billing.events import BillingEvent, decode_event, encode_events, message_class
from shoal.usecases.billing.models import MODEL_SPECS, models
from shoal.usecases.billing.simulator import BillingSimulator
from shoal.usecases.registry import UseCase

# Registered as the ``billing`` entry point of ``shoal.usecases`` (pyproject.toml).
USECASE = UseCase(
    name="billing",
    title="billing → revenue",
    models="shoal.usecases.billing.models",
    demo_step="shoal.usecases.billing.demo_step:run",
)

__all__ = [
    "MODEL_SPECS",
    "USECASE",
    "BillingEvent",
    "BillingSimulator",
    "decode_event",
    "encode_events",
    "message_class",
    "models",
]
