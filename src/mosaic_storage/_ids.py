"""Identifiers: time-ordered UUIDs (version 7 layout) as text, sortable and unique across machines."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    """A new UUIDv7 string: 48-bit Unix milliseconds then 74 random bits.

    Ids sort by creation time to the millisecond; within one millisecond their order is random.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))
