"""The support event message classes, built at runtime from ``ticket_events.proto``.

The ``.proto`` file is the single source of truth: it is compiled with the protoc bundled in
grpcio-tools into a descriptor set, and the classes are built in a private descriptor pool.
That avoids checked-in ``_pb2`` code, whose gencode version must match the protobuf runtime,
and never collides with another copy of the same file loaded elsewhere (e.g. by a decoder).
"""

from __future__ import annotations

import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from shoal.errors import ConfigError
from shoal.usecases.support import PROTO_FILE

PACKAGE = "shoal.support.v1"


@cache
def file_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """Compile ``ticket_events.proto`` (with its imports) into a FileDescriptorSet."""
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(prefix="shoal-support-proto-") as tmp:
        out = Path(tmp) / "set.pb"
        rc = protoc.main(
            [
                "protoc",
                f"-I{PROTO_FILE.parent}",
                f"-I{well_known}",
                f"--descriptor_set_out={out}",
                "--include_imports",
                str(PROTO_FILE),
            ]
        )
        if rc != 0:
            raise ConfigError(f"protoc failed (exit {rc}) compiling {PROTO_FILE}")
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
    return fds


@cache
def message_classes() -> dict[str, Any]:
    """Full message name -> generated class, for every message in the compiled set."""
    pool = descriptor_pool.DescriptorPool()
    return dict(message_factory.GetMessages(list(file_descriptor_set().file), pool=pool))


def message_class(name: str) -> Any:
    """The class of ``shoal.support.v1.<name>`` (or a fully qualified name)."""
    full = name if "." in name else f"{PACKAGE}.{name}"
    try:
        return message_classes()[full]
    except KeyError:
        raise ConfigError(f"no message {full!r} in {PROTO_FILE.name}") from None


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
