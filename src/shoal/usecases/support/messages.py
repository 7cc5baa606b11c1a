"""The support event message classes, built at runtime from ``ticket_events.proto``.

The ``.proto`` file is the single source of truth: :func:`shoal.decode.message_class` compiles it
with grpcio-tools' protoc into a private descriptor pool, so there is no checked-in ``_pb2`` code
whose gencode version must match the protobuf runtime.
"""

from __future__ import annotations

from typing import Any

from shoal.decode import message_class as _message_class
from shoal.usecases.support import PROTO_FILE

PACKAGE = "shoal.support.v1"


def message_class(name: str) -> Any:
    """The class of ``shoal.support.v1.<name>`` (or a fully qualified name)."""
    full = name if "." in name else f"{PACKAGE}.{name}"
    return _message_class(full, proto_file=PROTO_FILE)


# Message objects are typed Any: the classes are built at runtime, so mypy cannot see fields.
TicketEvent: Any = message_class("TicketEvent")
TicketCreated: Any = message_class("TicketCreated")
TicketAssigned: Any = message_class("TicketAssigned")
CustomerReplied: Any = message_class("CustomerReplied")
AgentReplied: Any = message_class("AgentReplied")
StatusChanged: Any = message_class("StatusChanged")
Escalated: Any = message_class("Escalated")
Resolved: Any = message_class("Resolved")
Reopened: Any = message_class("Reopened")
SatisfactionRated: Any = message_class("SatisfactionRated")
