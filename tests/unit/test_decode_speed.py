"""Decode throughput smoke test (and benchmark: `python tests/unit/test_decode_speed.py [N]`).

Target on one core: >= 150k msgs/s for the ~15-field TicketEvent with a oneof payload. The test asserts a
much lower floor because CI machines are shared and noisy; the script prints the real rate.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

from shoal.decode import Decoder, DecodeSpec, build_decoder, message_class

PROTOS = Path(__file__).parent / "protos"
MESSAGE = "shoal.bench.TicketEvent"


def make_events(n: int, seed: int = 1) -> list[bytes]:
    cls: Any = message_class(MESSAGE, proto_file=PROTOS / "ticket.proto")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        m = cls(
            event_id=f"ev-{i:08d}",
            ticket_id=f"T{i % 5000}",
            customer_id=f"C{i % 900}",
            agent_id=f"A{i % 40}",
            service="vps",
            region=rng.choice(["eu-west", "us-east", "ap-south"]),
            priority=rng.randint(0, 4),
            sequence=i,
            sla_hours=rng.random() * 48,
            escalated=rng.random() < 0.1,
            tags=["billing", "urgent"][: i % 3],
            attempt=i % 3,
        )
        m.occurred_at.seconds = 1_760_000_000 + i
        m.occurred_at.nanos = 1000 * (i % 1000)
        if i % 7 == 0:
            m.parent_ticket_id = "T1"
        kind = i % 3
        if kind == 0:
            m.created.subject, m.created.channel, m.created.priority = "disk full", "email", 2
        elif kind == 1:
            m.status_changed.from_status, m.status_changed.to_status = "open", "pending"
        else:
            m.replied.author_id, m.replied.public, m.replied.body_length = "A1", True, 120
        out.append(m.SerializeToString())
    return out


def decoder() -> Decoder:
    return build_decoder(DecodeSpec(format="protobuf", message=MESSAGE, proto_file=PROTOS / "ticket.proto"))


def rate(dec: Decoder, values: list[bytes], repeats: int = 3) -> float:
    """Best-of-n msgs/s, by CPU time of this process (wall time is meaningless on a shared box)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        res = dec.decode(values)
        best = min(best, time.process_time() - t0)
        assert res.batch.num_rows == len(values)
    return len(values) / best


def test_decode_rate_floor() -> None:
    values = make_events(20_000)
    msgs_per_s = rate(decoder(), values)
    assert msgs_per_s > 40_000, f"{msgs_per_s:,.0f} msgs/s"


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    vals = make_events(n)
    print(f"{n} messages, {sum(map(len, vals)) / n:.0f} bytes avg: {rate(decoder(), vals, 5):,.0f} msgs/s")
