"""Stable series ids for Prometheus series.

A series is identified by its metric name plus its label set (``__name__`` excluded, label
order irrelevant). The id is the first 8 bytes of ``blake2b`` over the canonical encoding::

    utf8(metric) + b"\\xff" + b"\\xff".join(utf8(key) + b"\\xfe" + utf8(value) for sorted labels)

read as a little-endian *signed* 64-bit integer (so it fits Arrow/Delta/DuckDB ``int64``).
``0xfe``/``0xff`` never occur in UTF-8, so the encoding is unambiguous. The id depends on
nothing but the name and labels: it is the same across processes, hosts and releases.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import blake2b

_LABEL_SEP = b"\xfe"
_PAIR_SEP = b"\xff"


def canonical_series_bytes(metric: str, labels: Mapping[str, str]) -> bytes:
    """The byte string the series id hashes (see module docstring)."""
    parts = [metric.encode()]
    for key in sorted(labels):
        if key == "__name__":
            continue
        parts.append(key.encode() + _LABEL_SEP + labels[key].encode())
    return _PAIR_SEP.join(parts)


def series_id(metric: str, labels: Mapping[str, str]) -> int:
    """Signed 64-bit id of the series ``metric{labels}``."""
    digest = blake2b(canonical_series_bytes(metric, labels), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
