"""open_store: every URL kind, capabilities from the server, tier checks, failures without secrets."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

import mosaic_storage as ms


def test_sqlite_store_creates_the_file_and_its_directory(tmp_path):
    path = tmp_path / "deep" / "dir" / "brain.db"
    with ms.open_store(f"sqlite:///{path}") as store:
        assert store.tier is ms.StorageTier.LOCAL
        assert store.dialect == "sqlite"
        assert not store.capabilities.vector
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert path.exists()


def test_bare_pgvector_url_infers_federated_capabilities(pgvector_store):
    caps = pgvector_store.capabilities
    assert caps.dialect == "postgresql"
    assert caps.vector and caps.vector_available
    assert caps.server_version.startswith("18")
    assert pgvector_store.tier is ms.StorageTier.FEDERATED


def test_unix_socket_url_is_accepted(pgvector_url):
    # The embedded server listens on a unix socket only: postgresql://user@/db?host=/dir
    assert "host=/" in pgvector_url or "@/" not in pgvector_url
    with ms.open_store(pgvector_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1


def test_plain_postgres_without_pgvector_is_standalone(postgres_url):
    with ms.open_store(postgres_url) as store:
        assert not store.capabilities.vector
        assert not store.capabilities.vector_available
        assert store.tier is ms.StorageTier.STANDALONE


def test_federated_tier_on_a_server_without_pgvector_fails_fast(postgres_url, redis_url):
    config = ms.MosaicConfig(
        tier=ms.StorageTier.FEDERATED,
        storage=ms.StorageConfig(url=postgres_url),
        queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=redis_url),
    )
    with pytest.raises(ms.TierDetectionError) as info:
        ms.open_store(config)
    assert info.value.service == "pgvector"
    assert "install pgvector" in str(info.value)


def test_embedded_url_starts_and_stops_a_server(tmp_path):
    data_dir = tmp_path / "pg"
    with ms.open_store(f"embedded://{data_dir}") as store:
        assert store.tier is ms.StorageTier.LOCAL
        assert store.capabilities.vector
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("select current_database()").scalar() == "mosaic"
        assert (data_dir / "postmaster.pid").exists()
    assert not (data_dir / "postmaster.pid").exists()


def test_wrong_password_fails_with_the_service_and_no_password(password_pg):
    with ms.open_store(password_pg.good_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("select current_user").scalar() == password_pg.user
    with pytest.raises(ms.TierDetectionError) as info:
        ms.open_store(password_pg.bad_url)
    err = info.value
    assert err.service == "postgres"
    assert "password" in err.remediation
    assert password_pg.password not in str(err) + repr(err)


def test_missing_database_says_create_it(pgvector_server):
    url = pgvector_server.create_database("gone")
    pgvector_server.drop_database(url)
    with pytest.raises(ms.TierDetectionError, match="does not exist") as info:
        ms.open_store(url)
    assert "createdb" in info.value.remediation


def test_closed_port_is_refused_quickly(closed_port_url):
    with pytest.raises(ms.TierDetectionError) as info:
        ms.open_store(closed_port_url)
    assert info.value.service == "postgres"
    assert "refused" in str(info.value).lower()


def test_standalone_tier_needs_postgres_not_sqlite(tmp_path):
    config = ms.MosaicConfig(
        tier=ms.StorageTier.STANDALONE,
        storage=ms.StorageConfig(url=f"sqlite:///{tmp_path}/x.db"),
    )
    with pytest.raises(ms.TierDetectionError, match="needs PostgreSQL") as info:
        ms.open_store(config)
    assert info.value.service == "config"


def test_standalone_tier_checks_the_queue(pgvector_url, closed_port_url):
    port = closed_port_url.rsplit(":", 1)[1].split("/")[0]
    config = ms.MosaicConfig(
        tier=ms.StorageTier.STANDALONE,
        storage=ms.StorageConfig(url=pgvector_url, connect_timeout=2),
        queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=f"redis://:RedisPw99@127.0.0.1:{port}/0"),
    )
    with pytest.raises(ms.TierDetectionError) as info:
        ms.open_store(config)
    assert info.value.service == "redis"
    assert "RedisPw99" not in str(info.value)


def test_standalone_tier_with_a_database_queue_is_refused(pgvector_url):
    config = ms.MosaicConfig(tier=ms.StorageTier.STANDALONE, storage=ms.StorageConfig(url=pgvector_url))
    with pytest.raises(ms.TierDetectionError, match="Redis") as info:
        ms.open_store(config)
    assert info.value.service == "config"


def test_config_schema_puts_tables_in_that_schema(pgvector_url, redis_url):
    config = ms.MosaicConfig(
        tier=ms.StorageTier.FEDERATED,
        storage=ms.StorageConfig(url=pgvector_url, schema="brain"),
        queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=redis_url),
    )
    with ms.open_store(config) as store:
        ms.upgrade(store)
        assert ms.current(store) == ms.head()
        assert ms.schema_diff(store) == []
        with store.engine.connect() as conn:
            schemas = set(
                conn.exec_driver_sql(
                    "select table_schema from information_schema.tables where table_name = 'insights'"
                ).scalars()
            )
    assert schemas == {"brain"}


def test_sqlite_refuses_a_schema(tmp_path):
    config = ms.MosaicConfig(storage=ms.StorageConfig(url=f"sqlite:///{tmp_path}/x.db", schema="brain"))
    with pytest.raises(ms.ConfigError, match="PostgreSQL"):
        ms.open_store(config)


def test_open_store_without_arguments_reads_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mosaic.config.json").write_text('{"storage": {"url": "sqlite:///here.db"}}')
    with ms.open_store() as store:
        assert store.url == f"sqlite:///{tmp_path.resolve() / 'here.db'}"


def test_repr_and_url_never_show_the_password(password_pg):
    with ms.open_store(password_pg.good_url) as store:
        assert password_pg.password not in repr(store)
        assert password_pg.password not in store.url


def test_close_is_idempotent_and_disposes_the_engine(tmp_path):
    store = ms.open_store(f"sqlite:///{tmp_path}/x.db")
    with store.engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    store.close()
    store.close()
    assert store.engine.pool.checkedout() == 0


def test_a_missing_extra_names_the_pip_install(tmp_path):
    # Hide psycopg from a fresh interpreter, as on a base (SQLite-only) install.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None
        import mosaic_storage as ms
        try:
            ms.open_store("postgresql://u@localhost/db")
        except ms.MissingExtraError as err:
            print(err)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'mosaic-stack[postgres]'" in out.stdout


def test_import_loads_no_driver_or_heavy_package():
    code = textwrap.dedent(
        """
        import sys
        import mosaic_storage
        heavy = ["psycopg", "redis", "numpy", "pgvector", "pgserver", "alembic", "openai", "anthropic"]
        print(",".join(name for name in heavy if name in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )
    assert out.stdout.strip() == ""


def test_unix_socket_url_built_by_hand(tmp_path):
    with ms.open_store(f"embedded://{tmp_path}/pg") as embedded:
        socket_dir = embedded.engine.url.query["host"]
        url = f"postgresql://postgres@/mosaic?host={socket_dir}"
        with ms.open_store(url) as store, store.engine.connect() as conn:
            assert conn.exec_driver_sql("select current_database()").scalar() == "mosaic"


def test_two_stores_on_one_embedded_directory_close_independently(tmp_path):
    first = ms.open_store(f"embedded://{tmp_path}/pg")
    second = ms.open_store(f"embedded://{tmp_path}/pg")
    first.close()
    with second.engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    second.close()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_a_role_that_cannot_create_pgvector_gets_a_bytes_store(pgvector_server, pgvector_url):
    import psycopg

    with psycopg.connect(pgvector_url, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN CREATE ROLE plain_user LOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
        conn.execute("GRANT ALL ON SCHEMA public TO plain_user")
    url = pgvector_url.replace("postgres:@", "plain_user@", 1).replace("postgres@", "plain_user@", 1)
    if "plain_user@" not in url:
        pytest.skip("the pgvector server URL has no user name to swap")
    with ms.open_store(url) as store:
        assert store.capabilities.vector_available
        assert not store.capabilities.vector
        ms.upgrade(store)
        assert ms.schema_diff(store) == []


@pytest.mark.parametrize(
    "url",
    ["sqlite:relative.db", "sqlite:", "postgresql://u@h:notaport/db"],
)
def test_unparsable_urls_are_config_errors(url):
    with pytest.raises(ms.ConfigError):
        ms.open_store(url)


def test_named_schema_ignores_a_store_in_public(pgvector_url, redis_url):
    with ms.open_store(pgvector_url) as public:
        ms.upgrade(public)
        with public.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO preferences (id, user_id, key, value, source, mutable, created_at,"
                " updated_at) VALUES ('p1', 'u', 'k', '1', 'user', true, now(), now())"
            )

    def tenant(schema: str) -> ms.MosaicConfig:
        return ms.MosaicConfig(
            tier=ms.StorageTier.FEDERATED,
            storage=ms.StorageConfig(url=pgvector_url, schema=schema),
            queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=redis_url),
        )

    for schema in ("tenant_a", "tenant_b"):
        with ms.open_store(tenant(schema)) as store:
            assert ms.current(store) is None
            ms.upgrade(store)
            assert ms.schema_diff(store) == []
    with ms.open_store(tenant("tenant_a")) as store:
        ms.downgrade(store, "base")
    with ms.open_store(pgvector_url) as public, public.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from public.preferences").scalar() == 1
        assert conn.exec_driver_sql("select count(*) from tenant_b.insights").scalar() == 0


def test_wide_embeddings_get_a_half_precision_index(pgvector_url, redis_url):
    config = ms.MosaicConfig(
        tier=ms.StorageTier.FEDERATED,
        storage=ms.StorageConfig(url=pgvector_url),
        queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=redis_url),
        memory=ms.MemoryConfig(embedder=ms.EmbedderConfig(dim=3072)),
    )
    with ms.open_store(config) as store:
        ms.upgrade(store)
        with store.engine.connect() as conn:
            index = conn.exec_driver_sql(
                "select indexdef from pg_indexes where indexname = 'ix_insights_embedding_hnsw'"
            ).scalar()
        assert "halfvec(3072)" in index
        assert ms.schema_diff(store) == []
