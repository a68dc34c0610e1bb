"""Which input keys the state file may hold: a Bloom filter, so a new input stream (every event, every
new session's points) costs no SQLite read on the event loop. "Not there" is certain; "maybe" is
confirmed on disk. Keys are already uniformly random digests, so their own bits are the hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_HASHES = 4
_BITS_LOG2 = 25  # 4 MiB: ~0.2 % false "maybe" at 2 million keys (the default on-disk cap)


class KeyFilter:
    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        self._bits = bytearray(1 << (_BITS_LOG2 - 3))  # zero pages cost no memory until a bit is set
        self.added = 0  # since built: keys pruned from disk stay set, so the owner rebuilds after many
        for key in keys:
            self.add(key)

    @staticmethod
    def _positions(key: bytes) -> list[int]:
        if len(key) * 8 < _HASHES * _BITS_LOG2:  # not a 16-byte digest: make one
            key = hashlib.blake2b(key, digest_size=16).digest()
        bits = int.from_bytes(key, "little")
        mask = (1 << _BITS_LOG2) - 1
        return [(bits >> (_BITS_LOG2 * i)) & mask for i in range(_HASHES)]

    def add(self, key: bytes) -> None:
        table = self._bits
        for position in self._positions(key):
            table[position >> 3] |= 1 << (position & 7)
        self.added += 1

    def __contains__(self, key: bytes) -> bool:
        table = self._bits
        return all(table[position >> 3] & (1 << (position & 7)) for position in self._positions(key))
