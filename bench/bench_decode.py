"""Decode and event-generation throughput, each against its baseline in the same run.

    .venv/bin/python bench/bench_decode.py [--events 200000] [--repeats 5]

- decode: shoal's protobuf → Arrow decoder on realistic ``TicketEvent``s (support use case),
  against the bare baseline of parsing each message with upb (``FromString``) and nothing else;
  with a breakdown: the same decoder in batches of 10,000 (the ingest worker's consume batch) and
  its message path alone (upb messages → columns, what it does for schemas or records the
  vectorised wire-bytes path leaves alone).
- generators: events/s of the support and billing simulators (``.encoded()``: build + serialise),
  against serialising the same number of already-built messages.

Times are CPU seconds of this process (medians of ``--repeats``): wall time on a shared 2-core
machine measures the neighbours. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from shoal.decode import DecodeSpec, ProtobufDecoder, build_decoder
from shoal.usecases.billing import BillingSimulator
from shoal.usecases.support import MESSAGE, PROTO_FILE
from shoal.usecases.support.messages import TicketEvent
from shoal.usecases.support.simulator import SupportSimulator

START = datetime(2026, 1, 5, tzinfo=UTC)


def cpu_median(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, r = args.events, args.repeats

    support = SupportSimulator(9, START, days=60, tickets_per_day=2000)
    values = [v for _, v in islice(support.encoded(), n)]
    n = len(values)
    decoder = build_decoder(DecodeSpec(format="protobuf", message=MESSAGE, proto_file=PROTO_FILE))
    parse = TicketEvent.FromString
    raw_s = cpu_median(lambda: [parse(v) for v in values], r)
    decode_s = cpu_median(lambda: decoder.decode(values), r)
    chunks = [values[i : i + 10_000] for i in range(0, n, 10_000)]
    chunked_s = cpu_median(lambda: [decoder.decode(c) for c in chunks], r)
    assert isinstance(decoder, ProtobufDecoder)
    messages_only = ProtobufDecoder(decoder.descriptor, delta_compatible_types=True, wire_columns=False)
    message_path_s = cpu_median(lambda: messages_only.decode(values), r)

    messages = [parse(v) for v in values]
    serialise_s = cpu_median(lambda: [m.SerializeToString() for m in messages], r)
    support_s = cpu_median(
        lambda: sum(
            1 for _ in islice(SupportSimulator(9, START, days=60, tickets_per_day=2000).encoded(), n)
        ),
        r,
    )
    billing_s = cpu_median(
        lambda: sum(1 for _ in islice(BillingSimulator(2, START, 30, 3000).encoded(), n)), r
    )

    out: dict[str, Any] = {
        "events": n,
        "avg_bytes": round(sum(map(len, values)) / n, 1),
        "decode": {
            "baseline_upb_parse_per_cpu_s": round(n / raw_s),
            "shoal_decode_to_arrow_per_cpu_s": round(n / decode_s),
            "ratio_to_baseline": round(raw_s / decode_s, 3),
            "shoal_decode_10k_batches_per_cpu_s": round(n / chunked_s),
            "message_path_only_per_cpu_s": round(n / message_path_s),
        },
        "generators": {
            "baseline_serialise_per_cpu_s": round(n / serialise_s),
            "support_simulator_per_cpu_s": round(n / support_s),
            "billing_simulator_per_cpu_s": round(n / billing_s),
        },
        "repeats": r,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
