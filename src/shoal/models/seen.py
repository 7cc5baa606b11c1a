"""The ids a model's table holds, as pairs of 64-bit hashes: re-deliveries found without a read.

A model with ``dedupe_by`` (``billing.charges_hourly``: ``event_id``) ignores an upstream row whose
id its table already holds: a producer re-sent the event. Finding that out used to cost a read of
the slice the re-sent event falls in, from its hour on: a scan of every file of those hours,
for ~1% of a stream's events (ADR 0055). The runner instead keeps, beside its restate marks, the
hashes of the ids of the loaded groups' rows, and drops a change row whose id it holds.

An id is held as two 64-bit hashes of its bytes, with different constants and word orders
(:func:`id_hashes`, in numpy: no DuckDB statement per commit). A row is taken for a re-delivery
only when both match: a false match needs a 128-bit collision (about ``n·m / 2**128`` for ``n`` ids held and
``m`` looked up; at a billion of each, 3e-21), rarer than a collision of the UUIDs the ids are.
Memory: 16 bytes per row of the loaded groups (a month of ``billing.charges_hourly`` for 35,000
resources metered hourly, 26M rows, is ~420 MB; the benchmark's 168 hours, 6.3M rows, 100 MB).

The pairs are sorted by the first hash in two parts: a recent part that takes each commit's ids
(an insert into a small array) and a base it is merged into once it reaches an eighth of the base,
so an add costs in proportion to the change (amortised), not to the set.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class SeenIds:
    """A set of ids, held as pairs of hashes (see the module docstring)."""

    def __init__(self) -> None:
        self._base = _empty()
        self._recent = _empty()

    def __len__(self) -> int:
        return len(self._base[0]) + len(self._recent[0])

    def add(self, first: np.ndarray, second: np.ndarray) -> None:
        if not len(first):
            return
        order = np.argsort(first, kind="stable")
        new = (np.asarray(first, dtype=np.uint64)[order], np.asarray(second, dtype=np.uint64)[order])
        self._recent = _merged(self._recent, new)
        if len(self._recent[0]) * 8 >= len(self._base[0]):
            self._base = _merged(self._base, self._recent)
            self._recent = _empty()

    def contains(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Per pair: whether the set holds it (both hashes)."""
        out = np.zeros(len(first), dtype=bool)
        for keys, checks in (self._base, self._recent):
            if not len(keys):
                continue
            lo = np.searchsorted(keys, first, side="left")
            hi = np.searchsorted(keys, first, side="right")
            one = hi - lo == 1
            out[one] |= checks[lo[one]] == second[one]
            for i in np.flatnonzero(hi - lo > 1):  # the first hash repeats in the set: rare
                out[i] |= bool(np.any(checks[lo[i] : hi[i]] == second[i]))
        return out


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The two hashes :class:`SeenIds` holds for each of ``ids`` (strings, none NULL): a function
    of the id's bytes alone, computed in numpy over 8-byte words, the ids of one length at a time
    (event ids are UUIDs: one length, their bytes one contiguous block)."""
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())  # one offset width (and no string views) below
    n = len(arr)
    first, second = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    if n == 0:
        return first, second
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else _NO_BYTES
    lengths = np.diff(offsets)
    one = int(lengths.min()) == int(lengths.max())
    for length in [int(lengths[0])] if one else np.unique(lengths).tolist():
        rows = None if one else np.flatnonzero(lengths == length)
        starts = offsets[:-1] if rows is None else offsets[:-1][rows]
        width = -(-length // 8) * 8 or 8
        block = np.zeros((len(starts), width), dtype=np.uint8)
        if length and rows is None:  # one length: the bytes are one block, row after row
            block[:, :length] = data[offsets[0] : offsets[0] + n * length].reshape(n, length)
        elif length:
            block[:, :length] = data[starts[:, None] + np.arange(length)]
        words = block.view("<u8")
        a, b = _hash_words(words, length)
        if rows is None:
            first[:], second[:] = a, b
        else:
            first[rows], second[rows] = a, b
    return first, second


_NO_BYTES = np.zeros(0, dtype=np.uint8)
# odd 64-bit constants (from splitmix64 and murmur3); the two hashes use different ones, and
# the second reads the words in the opposite order
_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)
_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


def _hash_words(words: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes of each row of ``words`` (an id's bytes, zero-padded, and its length)."""
    seed = np.uint64(length)
    n = words.shape[1]
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64 is the point
        a = np.full(len(words), seed * _K1 + _M2, dtype=np.uint64)
        b = np.full(len(words), seed * _K2 + _M1, dtype=np.uint64)
        shift = np.uint64(29)
        for j in range(n):
            a = (a ^ words[:, j]) * _K1
            a ^= a >> shift
            b = (b ^ words[:, n - 1 - j]) * _K2
            b ^= b >> shift
        return _fmix(a ^ seed), _fmix(b + seed)


def _fmix(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser: every input bit moves every output bit."""
    h = h ^ (h >> np.uint64(33))
    h = h * _M1
    h = h ^ (h >> np.uint64(33))
    h = h * _M2
    out: np.ndarray = h ^ (h >> np.uint64(33))
    return out


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64)


def _merged(
    into: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Both sorted by the first hash: one array, still sorted (the second hashes moved alike)."""
    at = np.searchsorted(into[0], new[0])
    return np.insert(into[0], at, new[0]), np.insert(into[1], at, new[1])
