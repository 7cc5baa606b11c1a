"""Use case: support tickets -> CSAT.

- ``ticket_events.proto``: the ``shoal.support.v1.TicketEvent`` schema (:data:`PROTO_FILE`).
- :mod:`.simulator`: ``SupportSimulator`` — a seeded simulation of a support organisation.
- :mod:`.produce`: ``produce_events`` — write ``(key, value)`` pairs to a Kafka topic.
- :mod:`.reference`: the pure-Python definition of the models (the test oracle).
- :mod:`.models`: ``models()`` — ``support.tickets`` and ``support.csat_daily`` SQL models.
- ``pipeline.yaml``: a pipeline file template for the topic (:data:`PIPELINE_TEMPLATE`).
"""

from __future__ import annotations

from pathlib import Path

from shoal.usecases.registry import UseCase

PROTO_FILE = Path(__file__).with_name("ticket_events.proto")
PIPELINE_TEMPLATE = Path(__file__).with_name("pipeline.yaml")
MESSAGE = "shoal.support.v1.TicketEvent"

# Registered as the ``support`` entry point of ``shoal.usecases`` (pyproject.toml).
USECASE = UseCase(
    name="support",
    title="support tickets → CSAT",
    models="shoal.usecases.support.models",
    demo_step="shoal.usecases.support.demo_step:run",
)

__all__ = ["MESSAGE", "PIPELINE_TEMPLATE", "PROTO_FILE", "USECASE"]
