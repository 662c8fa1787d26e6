"""Column types and ids: aware UTC timestamps on every backend, time-ordered UUIDv7 ids."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import mosaic_storage as ms
from mosaic_storage.schema import Verification


def test_timestamps_come_back_aware_and_in_utc(migrated_store):
    tokyo = dt.timezone(dt.timedelta(hours=9))
    when = dt.datetime(2026, 1, 2, 12, 30, 15, 123456, tzinfo=tokyo)
    with Session(migrated_store.engine) as session, session.begin():
        session.add(Verification(id="v1", identifier="a@b.c", value="x", expires_at=when))
    with Session(migrated_store.engine) as session:
        stored = session.scalars(sa.select(Verification.expires_at)).one()
    assert stored.tzinfo is not None
    assert stored.utcoffset() == dt.timedelta(0)
    assert stored == when


def test_naive_timestamps_are_refused(migrated_store):
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        with Session(migrated_store.engine) as session, session.begin():
            session.add(Verification(identifier="a", value="x", expires_at=dt.datetime(2026, 1, 1)))


def test_ids_are_uuid7_and_strictly_increasing():
    first = ms.new_id()
    parsed = uuid.UUID(first)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    ids = [ms.new_id() for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert ids == sorted(ids)  # strictly increasing within a process, even inside a millisecond
