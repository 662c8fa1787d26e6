"""Keyword search stays right and user-scoped when SQLite renumbers rowids; index check and rebuild."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_memory import check_keyword_index, open_memory, rebuild_keyword_index

# One word per insight that no other insight has, alternating users so a shifted key lands on
# the other user's row.
WORDS = ["apple", "banana", "cherry", "damson", "elderberry", "fig", "guava", "huckleberry", "kiwi", "lemon"]


def _fill(memory):
    owners = {}
    for i, word in enumerate(WORDS):
        user = "u1" if i % 2 == 0 else "u2"
        owners[word] = (user, memory.insights.add(f"remembers the {word} story", user_id=user, dedupe=False))
    # Gaps at the start of the table: a rebuild that renumbers rowids shifts every later row.
    for word in WORDS[:3]:
        user, iid = owners.pop(word)
        memory.insights.delete(iid, user_id=user)
    return owners


def _assert_keyword_search_is_right(memory, owners):
    for word, (user, iid) in owners.items():
        hits = memory.insights.search(word, user_id=user, mode="keyword")
        assert [h.id for h in hits] == [iid], word
        assert f"the {word} story" in hits[0].text
        other = "u2" if user == "u1" else "u1"
        assert memory.insights.search(word, user_id=other, mode="keyword") == [], word


@pytest.fixture
def sqlite_memory(sqlite_store):
    ms.upgrade(sqlite_store)
    with open_memory(sqlite_store) as memory:
        yield memory


def test_keyword_search_survives_vacuum(sqlite_memory, sqlite_store):
    owners = _fill(sqlite_memory)
    with sqlite_store.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM")
    _assert_keyword_search_is_right(sqlite_memory, owners)
    assert check_keyword_index(sqlite_store).ok


def test_keyword_search_survives_a_batch_table_rebuild(sqlite_memory, sqlite_store):
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from mosaic_storage._migrations import _migration_connection

    owners = _fill(sqlite_memory)
    with sqlite_store.engine.connect() as conn:
        before = dict(conn.exec_driver_sql("SELECT id, rowid FROM insights").all())
    # What a future batch-mode revision does to insights: copy into a new table, drop the old.
    with _migration_connection(sqlite_store) as conn:
        with Operations(MigrationContext.configure(conn)).batch_alter_table(
            "insights", recreate="always"
        ) as batch:
            batch.alter_column("category", existing_type=sa.String(100), nullable=True)
    with sqlite_store.engine.connect() as conn:
        after = dict(conn.exec_driver_sql("SELECT id, rowid FROM insights").all())
    assert before != after  # the rowids did move
    _assert_keyword_search_is_right(sqlite_memory, owners)

    # Dropping the old table dropped its triggers: the check says so, the rebuild restores them.
    report = check_keyword_index(sqlite_store)
    assert not report.ok and any("trigger" in problem for problem in report.problems)
    assert "reindex" in (report.remediation or "")
    assert rebuild_keyword_index(sqlite_store).ok
    iid = sqlite_memory.insights.add("remembers the mango story", user_id="u2")
    owners["mango"] = ("u2", iid)
    _assert_keyword_search_is_right(sqlite_memory, owners)
    assert check_keyword_index(sqlite_store).ok


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell for .dump")
def test_keyword_search_survives_dump_and_restore(sqlite_memory, sqlite_store, tmp_path):
    owners = _fill(sqlite_memory)
    # The sqlite3 shell's .dump writes INSERTs without rowids: the restored rows are renumbered.
    dump = subprocess.run(
        ["sqlite3", sqlite_store.engine.url.database, ".dump"], check=True, capture_output=True, text=True
    ).stdout
    restored_path = tmp_path / "restored.db"
    subprocess.run(["sqlite3", str(restored_path)], input=dump, check=True, capture_output=True, text=True)
    with ms.open_store(f"sqlite:///{restored_path}") as restored_store, open_memory(restored_store) as memory:
        with restored_store.engine.connect() as conn:
            rowids = dict(conn.exec_driver_sql("SELECT id, rowid FROM insights").all())
        assert sorted(rowids.values()) == list(range(1, len(owners) + 1))  # renumbered from 1
        _assert_keyword_search_is_right(memory, owners)
        assert check_keyword_index(restored_store).ok
        # New insights in the restored copy are keyed after the highest key, not on a taken one.
        iid = memory.insights.add("remembers the nectarine story", user_id="u1")
        owners["nectarine"] = ("u1", iid)
        _assert_keyword_search_is_right(memory, owners)


def test_the_check_finds_stale_missing_and_orphaned_entries_and_the_rebuild_fixes_them(
    sqlite_memory, sqlite_store
):
    owners = _fill(sqlite_memory)
    assert check_keyword_index(sqlite_store).ok
    _, iid = owners["fig"]
    with sqlite_store.engine.begin() as conn:
        # damson's entry goes missing, fig's text changes behind the index, a ghost entry appears.
        conn.exec_driver_sql("DELETE FROM insights_fts WHERE rowid = (SELECT min(search_key) FROM insights)")
        conn.exec_driver_sql("INSERT INTO insights_fts (rowid, text) VALUES (999, 'ghost entry')")
        conn.exec_driver_sql("DROP TRIGGER insights_fts_key")
        conn.exec_driver_sql("DROP TRIGGER insights_fts_update")
        conn.exec_driver_sql(
            "INSERT INTO insights (id, user_id, text, source, metadata, created_at, updated_at) "
            "VALUES ('outside', 'u1', 'written by another tool about quince', 'agent', '{}', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
        conn.exec_driver_sql("UPDATE insights SET text = 'remembers the plum story' WHERE id = ?", (iid,))
    report = check_keyword_index(sqlite_store)
    text = "\n".join(report.problems)
    assert "insights_fts_key is missing" in text and "insights_fts_update is missing" in text
    assert "1 insights have no search_key" in text
    assert "1 insights are missing from the keyword index or indexed with another text" not in text
    assert "2 insights are missing from the keyword index or indexed with another text" in text
    assert "1 keyword index entries belong to no insight" in text

    fixed = rebuild_keyword_index(sqlite_store)
    assert fixed.ok and fixed.insights == fixed.indexed == len(owners) + 1
    owners["plum"] = owners.pop("fig")
    _assert_keyword_search_is_right(sqlite_memory, owners)
    quince = sqlite_memory.insights.search("quince", user_id="u1", mode="keyword")
    assert [h.id for h in quince] == ["outside"]


def test_texts_and_keys_changed_in_place_stay_indexed(sqlite_memory, sqlite_store):
    owners = _fill(sqlite_memory)
    user, iid = owners.pop("guava")
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE insights SET search_key = search_key + 1000 WHERE id = ?", (iid,))
        conn.exec_driver_sql("UPDATE insights SET text = 'remembers the papaya story' WHERE id = ?", (iid,))
    owners["papaya"] = (user, iid)
    _assert_keyword_search_is_right(sqlite_memory, owners)
    assert check_keyword_index(sqlite_store).ok


def test_the_check_is_clean_after_upgrade_on_every_backend(migrated_store):
    with open_memory(migrated_store) as memory:
        memory.insights.add("remembers the apple story", user_id="u1")
    report = check_keyword_index(migrated_store)
    assert report.ok and report.insights == report.indexed == 1
    assert rebuild_keyword_index(migrated_store).ok


def test_the_search_key_migration_keys_existing_insights_and_downgrades(sqlite_store):
    ms.upgrade(sqlite_store, "0005")
    with sqlite_store.engine.begin() as conn:
        for i, word in enumerate(WORDS[:4]):
            conn.exec_driver_sql(
                "INSERT INTO insights (id, user_id, text, source, metadata, created_at, updated_at) "
                f"VALUES ('i{i}', 'u{i % 2}', 'likes {word}', 'agent', '{{}}', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        conn.exec_driver_sql("DELETE FROM insights WHERE id = 'i0'")
    ms.upgrade(sqlite_store)
    assert ms.schema_diff(sqlite_store) == [] and check_keyword_index(sqlite_store).ok
    ms.downgrade(sqlite_store, "0005")
    with sqlite_store.engine.connect() as conn:
        hit = conn.exec_driver_sql(
            "SELECT i.id FROM insights_fts f JOIN insights i ON i.rowid = f.rowid "
            "WHERE insights_fts MATCH 'cherry'"
        ).scalars()
        assert list(hit) == ["i2"]
        columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(insights)")}
        assert "search_key" not in columns
    ms.upgrade(sqlite_store)
    with open_memory(sqlite_store) as memory:
        assert [h.id for h in memory.insights.search("cherry", user_id="u0", mode="keyword")] == ["i2"]
        assert memory.insights.search("cherry", user_id="u1", mode="keyword") == []


def test_doctor_warns_about_a_broken_keyword_index(tmp_path):
    from mosaic_storage._detect import REMEDIATIONS

    config = ms.MosaicConfig(
        tier=ms.StorageTier.LOCAL, storage=ms.StorageConfig(url=f"sqlite:///{tmp_path}/b.db")
    )
    with ms.open_store(config) as store:
        ms.upgrade(store)
        with open_memory(store) as memory:
            memory.insights.add("remembers the apple story", user_id="u1")
    assert ms.detect_tier(config).probe("sqlite").status is ms.ProbeStatus.OK
    with ms.open_store(config) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM insights_fts")
    probe = ms.detect_tier(config).probe("sqlite")
    assert probe.status is ms.ProbeStatus.WARN and probe.ok
    assert "1 insights are missing from the keyword index" in probe.detail
    assert probe.remediation == REMEDIATIONS["keyword_index"]


RAW_INSERT = (
    "INSERT INTO insights (id, user_id, text, source, metadata, created_at, updated_at, search_key) "
    "VALUES ('{id}', 'u1', '{text}', 'agent', '{{}}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, NULL)"
)


def test_batch_adds_index_their_own_rows_and_other_writers_keep_the_triggers(sqlite_memory, sqlite_store):
    # The library's batch insert keys its rows after the highest key and indexes them itself.
    first = sqlite_memory.insights.add_many(["likes apple pie", "likes banana bread"], user_id="u1")
    with sqlite_store.engine.begin() as conn:
        # Another writer: no key (the keying trigger) and a positive key (the insert trigger).
        conn.exec_driver_sql(RAW_INSERT.format(id="raw1", text="likes cherry tart"))
        conn.exec_driver_sql(RAW_INSERT.format(id="raw2", text="likes damson jam").replace("NULL", "500"))
    second = sqlite_memory.insights.add_many(["likes elderberry wine"], user_id="u1")
    with sqlite_store.engine.connect() as conn:
        keys = dict(conn.exec_driver_sql("SELECT id, search_key FROM insights").all())
    assert [keys[i] for i in first] == [1, 2] and keys["raw1"] == 3 and keys["raw2"] == 500
    assert [keys[i] for i in second] == [501]
    for word, iid in zip(
        ["apple", "banana", "cherry", "damson", "elderberry"], [*first, "raw1", "raw2", *second], strict=True
    ):
        assert [h.id for h in sqlite_memory.insights.search(word, user_id="u1", mode="keyword")] == [iid]
    report = check_keyword_index(sqlite_store)
    assert report.ok and report.insights == report.indexed == 5


def test_the_batch_key_migration_round_trips(sqlite_store):
    ms.upgrade(sqlite_store, "0007")
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql(RAW_INSERT.format(id="old", text="likes apple pie"))
    ms.upgrade(sqlite_store)
    with open_memory(sqlite_store) as memory:
        new = memory.insights.add("likes banana bread", user_id="u1")
    assert check_keyword_index(sqlite_store).ok
    ms.downgrade(sqlite_store, "0007")
    with sqlite_store.engine.begin() as conn:  # the old trigger indexes keyed rows too
        conn.exec_driver_sql(RAW_INSERT.format(id="neg", text="likes cherry tart").replace("NULL", "50"))
    ms.upgrade(sqlite_store)
    assert check_keyword_index(sqlite_store).ok
    with open_memory(sqlite_store) as memory:
        for word, iid in [("apple", "old"), ("banana", new), ("cherry", "neg")]:
            assert [h.id for h in memory.insights.search(word, user_id="u1", mode="keyword")] == [iid]


def test_a_table_copy_that_keeps_the_keys_is_indexed(sqlite_memory, sqlite_store, tmp_path):
    with ms.open_store(f"sqlite:///{tmp_path}/other.db") as other:
        ms.upgrade(other)
        with open_memory(other) as memory:
            ids = memory.insights.add_many(["likes apple pie", "likes banana bread"], user_id="u1")
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql(f"ATTACH DATABASE '{tmp_path}/other.db' AS other")
        conn.exec_driver_sql("INSERT INTO main.insights SELECT * FROM other.insights")
    report = check_keyword_index(sqlite_store)
    assert report.ok and report.indexed == 2
    for word, iid in zip(["apple", "banana"], ids, strict=True):
        assert [h.id for h in sqlite_memory.insights.search(word, user_id="u1", mode="keyword")] == [iid]
    # The next batch is keyed past the copied keys.
    assert sqlite_memory.insights.add("likes cherry tart", user_id="u1")
    assert check_keyword_index(sqlite_store).ok


def test_a_batch_is_keyed_past_an_orphaned_index_entry(sqlite_memory, sqlite_store):
    sqlite_memory.insights.add("likes apple pie", user_id="u1")
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO insights_fts (rowid, text) VALUES (7, 'ghost entry')")
    iid = sqlite_memory.insights.add("likes banana bread", user_id="u1")
    assert [h.id for h in sqlite_memory.insights.search("banana", user_id="u1", mode="keyword")] == [iid]
