"""Identifiers: time-ordered UUIDs (version 7 layout) as text, sortable and unique across machines."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_millis = 0
_last_counter = 0
_COUNTER_MAX = 0xFFF


def new_id() -> str:
    """A new UUIDv7 string: 48-bit Unix milliseconds, a 12-bit counter, then 62 random bits.

    Within one process ids are strictly increasing, also inside one millisecond (RFC 9562,
    method 1: the counter lives in ``rand_a``), so keyset paging on ``id`` never skips a row
    created in the same millisecond. Across processes they sort by millisecond.
    """
    global _last_millis, _last_counter
    rand = int.from_bytes(os.urandom(8), "big")
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis > _last_millis:
            counter = (rand >> 62) & 0x3FF  # a random start leaves room to count up
        else:
            millis = _last_millis
            counter = _last_counter + 1
            if counter > _COUNTER_MAX:
                millis += 1
                counter = 0
        _last_millis, _last_counter = millis, counter
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64  # rand_a: the counter
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))
