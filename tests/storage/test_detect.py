"""Tier detection on real services: healthy tiers, each way a service can be down, and no secret leaks."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import string
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mosaic_storage as ms
from mosaic_storage._detect import DEADLINE_GRACE_S, REMEDIATIONS
from tests._services import blackhole_listener, closed_port, silent_listener

DOCS = Path(__file__).resolve().parents[2] / "docs" / "doctor.md"
STANDALONE = ms.StorageTier.STANDALONE
FEDERATED = ms.StorageTier.FEDERATED
# Tests of what a probe finds (not of how long it takes) allow for a loaded CI machine.
SLOW_MACHINE_TIMEOUT = 30.0


def _config(tier: ms.StorageTier, url: str, queue_url: str | None = None, **storage) -> ms.MosaicConfig:
    queue = ms.QueueConfig(type=ms.QueueType.REDIS, url=queue_url) if queue_url else ms.QueueConfig()
    storage.setdefault("connect_timeout", SLOW_MACHINE_TIMEOUT)
    return ms.MosaicConfig(tier=tier, storage=ms.StorageConfig(url=url, **storage), queue=queue)


def _detect(config: ms.MosaicConfig) -> ms.TierReport:
    return ms.detect_tier(config, timeout=SLOW_MACHINE_TIMEOUT)


def _statuses(report: ms.TierReport) -> dict[str, str]:
    return {probe.service: probe.status.value for probe in report.probes}


# --- the records and the protocol ----------------------------------------------------------------


def test_the_default_detector_implements_the_protocol(tmp_path):
    detector = ms.DefaultTierDetector()
    assert isinstance(detector, ms.TierDetector)
    report = detector.detect(_config(ms.StorageTier.LOCAL, f"sqlite:///{tmp_path}/x.db"))
    assert [probe.service for probe in report.probes] == ["config", "sqlite", "postgres", "pgvector", "redis"]
    assert not isinstance(object(), ms.TierDetector)


def test_a_failed_or_warning_result_must_say_what_to_do():
    with pytest.raises(ValueError, match="remediation"):
        ms.ProbeResult(service="redis", status="fail", error="down")
    with pytest.raises(ValueError, match="error"):
        ms.ProbeResult(service="redis", status="ok", error="down")
    with pytest.raises(ValueError):
        ms.ProbeResult(service="mysql", status="ok")
    result = ms.ProbeResult(service="redis", status="warn", detail="x", remediation="do y")
    assert result.ok
    assert result.to_dict()["status"] == "warn"


def test_every_remediation_is_documented():
    text = DOCS.read_text()
    missing = [key for key, line in REMEDIATIONS.items() if line.replace("{major}", "NN") not in text]
    assert missing == []


# --- healthy tiers -----------------------------------------------------------------------------


def test_local_tier_on_a_migrated_sqlite_file_is_all_ok(tmp_path):
    config = _config(ms.StorageTier.LOCAL, f"sqlite:///{tmp_path}/brain.db")
    with ms.open_store(config) as store:
        ms.upgrade(store)
    report = _detect(config)
    assert report.ok
    assert _statuses(report) == {
        "config": "ok",
        "sqlite": "ok",
        "postgres": "skipped",
        "pgvector": "skipped",
        "redis": "skipped",
    }
    sqlite_probe = report.probe("sqlite")
    assert sqlite_probe.version == sqlite3.sqlite_version
    assert sqlite_probe.latency_ms is not None and sqlite_probe.latency_ms < 1000
    assert "journal_mode wal" in sqlite_probe.detail
    assert f"schema at head ({ms.head()})" in sqlite_probe.detail


def test_local_tier_before_the_first_open_warns_to_migrate_and_creates_nothing(tmp_path):
    path = tmp_path / "new" / "brain.db"
    report = _detect(_config(ms.StorageTier.LOCAL, f"sqlite:///{path}"))
    assert report.ok
    assert report.probe("sqlite").status is ms.ProbeStatus.WARN
    assert report.probe("sqlite").remediation == REMEDIATIONS["schema_upgrade"]
    assert not path.exists()


def test_standalone_tier_healthy(postgres_store, redis_url):
    ms.upgrade(postgres_store)
    report = _detect(postgres_store.config)
    assert report.ok, report.to_json()
    assert _statuses(report)["postgres"] == "ok"
    assert _statuses(report)["redis"] == "ok"
    assert _statuses(report)["pgvector"] in ("skipped", "ok")
    assert report.probe("postgres").version == postgres_store.capabilities.server_version
    assert report.probe("redis").version
    assert report.probe("redis").latency_ms is not None


def test_federated_tier_healthy(pgvector_url, redis_url):
    config = _config(FEDERATED, pgvector_url, redis_url)
    with ms.open_store(config) as store:
        ms.upgrade(store)
    report = ms.assert_tier(config, timeout=SLOW_MACHINE_TIMEOUT)
    assert report.ok
    assert set(_statuses(report).values()) == {"ok", "skipped"}
    assert _statuses(report)["pgvector"] == "ok"
    assert report.probe("pgvector").version.startswith("0.8")
    assert report.probe("postgres").version.startswith("18")


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A directory for an embedded server outside pytest's tmp_path.

    As root, pgserver runs initdb as another user and opens up the parent directories for it;
    a concurrent pytest session resets its /tmp/pytest-of-USER to 0700, which can lock initdb out.
    """
    parent = Path(tempfile.mkdtemp(prefix="mosaic-doctor-"))
    yield parent / "pg"
    shutil.rmtree(parent, ignore_errors=True)


def test_local_tier_on_embedded_postgres_starts_probes_and_stops_it(embedded_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_dir = embedded_dir
    report = _detect(_config(ms.StorageTier.LOCAL, f"embedded://{data_dir}"))
    assert report.ok, report.to_json()
    assert report.probe("postgres").version.startswith("18")
    assert report.probe("pgvector").status in (ms.ProbeStatus.SKIPPED, ms.ProbeStatus.OK)
    assert "available" in report.probe("pgvector").detail
    assert not (data_dir / "postmaster.pid").exists()
    # open_store probes the server it started (not the embedded:// URL) before it opens. A fresh
    # directory: pgserver can misread the socket of a server restarted at once in the same one.
    with ms.open_store(_config(ms.StorageTier.LOCAL, f"embedded://{data_dir.parent / 'pg2'}")) as store:
        assert store.capabilities.vector
        assert store.tier is ms.StorageTier.LOCAL
    assert sorted(path.name for path in data_dir.parent.iterdir()) == ["pg", "pg2"]
    assert list(tmp_path.iterdir()) == []  # nothing started anywhere else


# --- PostgreSQL down or refusing ----------------------------------------------------------------


def test_postgres_port_closed_is_refused_at_once(redis_url):
    with closed_port() as (host, port):
        report = _detect(_config(FEDERATED, f"postgresql://mosaic@{host}:{port}/brain", redis_url))
    probe = report.probe("postgres")
    assert not report.ok
    assert probe.status is ms.ProbeStatus.FAIL
    assert f"{host}:{port}/brain" in probe.error
    assert "connection refused" in probe.error
    assert probe.remediation == REMEDIATIONS["postgres_refused"]
    assert probe.latency_ms < 1000
    assert report.probe("pgvector").status is ms.ProbeStatus.SKIPPED
    assert report.probe("redis").ok


def test_wrong_password_names_the_login_and_never_the_password(password_pg, redis_url):
    assert _detect(_config(STANDALONE, password_pg.good_url, redis_url)).ok
    report = _detect(_config(STANDALONE, password_pg.bad_url, redis_url))
    probe = report.probe("postgres")
    assert probe.status is ms.ProbeStatus.FAIL
    assert "password authentication failed" in probe.error
    assert probe.remediation == REMEDIATIONS["postgres_auth"]
    assert password_pg.password not in report.to_json()
    assert quote(password_pg.password, safe="") not in report.to_json()


def test_missing_database_says_create_it(pgvector_server, redis_url):
    url = pgvector_server.create_database("gone")
    pgvector_server.drop_database(url)
    probe = _detect(_config(STANDALONE, url, redis_url)).probe("postgres")
    assert probe.status is ms.ProbeStatus.FAIL
    assert "does not exist" in probe.error
    assert probe.remediation == REMEDIATIONS["postgres_database"]


# --- pgvector: installed, installable, absent ---------------------------------------------------


def test_pgvector_available_but_not_installed_says_create_extension(pgvector_url, redis_url):
    report = _detect(_config(FEDERATED, pgvector_url, redis_url))
    probe = report.probe("pgvector")
    assert probe.status is ms.ProbeStatus.WARN
    assert "not installed" in probe.detail
    assert probe.remediation == REMEDIATIONS["vector_create"]
    assert report.ok


def test_pgvector_missing_on_the_server_says_install_it(postgres_url, redis_url):
    report = _detect(_config(FEDERATED, postgres_url, redis_url))
    probe = report.probe("pgvector")
    major = report.probe("postgres").version.split(".")[0]
    assert probe.status is ms.ProbeStatus.FAIL
    assert f"apt install postgresql-{major}-pgvector" in probe.remediation
    assert "CREATE EXTENSION vector" in probe.remediation
    assert not report.ok
    with pytest.raises(ms.TierDetectionError) as info:
        ms.assert_tier(_config(FEDERATED, postgres_url, redis_url), timeout=SLOW_MACHINE_TIMEOUT)
    assert info.value.service == "pgvector"


def test_a_standalone_database_cannot_serve_the_federated_tier(pgvector_url, redis_url):
    with ms.open_store(_config(STANDALONE, pgvector_url, redis_url)) as store:
        ms.upgrade(store)
    federated = _config(FEDERATED, pgvector_url, redis_url)
    probe = _detect(federated).probe("pgvector")
    assert probe.status is ms.ProbeStatus.FAIL
    assert "bytes" in probe.error
    assert probe.remediation == REMEDIATIONS["vector_bytes"]
    with pytest.raises(ms.TierDetectionError, match="bytes"):
        ms.open_store(federated)


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_down_is_refused_without_its_password(pgvector_url):
    with closed_port() as (host, port):
        url = f"redis://:RedisPw-9931@{host}:{port}/0"
        report = _detect(_config(STANDALONE, pgvector_url, url))
    probe = report.probe("redis")
    assert probe.status is ms.ProbeStatus.FAIL
    assert "connection refused" in probe.error
    assert probe.remediation == REMEDIATIONS["redis_refused"]
    assert "RedisPw-9931" not in report.to_json()
    assert report.probe("postgres").ok


def test_redis_wrong_password_says_check_it(pgvector_url, redis_url):
    # An ACL user, so the shared server's default user (and other tests) need no password.
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("mosaic_probe", enabled=True, passwords=["+Right-Redis-Pw"], commands=["+@all"])
    try:
        right = redis_url.replace("redis://", "redis://mosaic_probe:Right-Redis-Pw@", 1)
        wrong = redis_url.replace("redis://", "redis://mosaic_probe:Wrong-Redis-Pw@", 1)
        assert _detect(_config(STANDALONE, pgvector_url, right)).probe("redis").ok
        report = _detect(_config(STANDALONE, pgvector_url, wrong))
    finally:
        admin.acl_deluser("mosaic_probe")
        admin.close()
    probe = report.probe("redis")
    assert probe.status is ms.ProbeStatus.FAIL
    assert probe.remediation == REMEDIATIONS["redis_auth"]
    assert "Wrong-Redis-Pw" not in report.to_json()


def test_redis_that_may_evict_queue_keys_is_a_warning(pgvector_url, redis_url):
    client = redis.Redis.from_url(redis_url)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        report = _detect(_config(STANDALONE, pgvector_url, redis_url))
    finally:
        client.config_set("maxmemory-policy", before)
        client.close()
    probe = report.probe("redis")
    assert probe.status is ms.ProbeStatus.WARN
    assert "allkeys-lru" in probe.detail
    assert probe.remediation == REMEDIATIONS["redis_eviction"]
    assert report.ok


def test_a_server_that_accepts_but_never_replies_is_named_as_such(pgvector_url):
    with silent_listener() as (host, port):
        probe = ms.detect_tier(
            _config(STANDALONE, pgvector_url, f"redis://{host}:{port}/0"), timeout=1
        ).probe("redis")
    assert probe.status is ms.ProbeStatus.FAIL
    assert "sent no reply" in probe.error
    assert probe.remediation == REMEDIATIONS["redis_silent"]


# --- deadlines -----------------------------------------------------------------------------------


def test_blackholed_services_end_within_about_one_timeout_with_a_distinct_message():
    timeout = 1.0
    with blackhole_listener() as (pg_host, pg_port), blackhole_listener() as (r_host, r_port):
        config = _config(
            FEDERATED, f"postgresql://mosaic@{pg_host}:{pg_port}/brain", f"redis://{r_host}:{r_port}/0"
        )
        started = time.monotonic()
        report = ms.detect_tier(config, timeout=timeout)
        wall = time.monotonic() - started
    assert wall < timeout + DEADLINE_GRACE_S + 0.5
    assert report.elapsed_ms / 1000 <= wall
    for service in ("postgres", "redis"):
        probe = report.probe(service)
        assert probe.status is ms.ProbeStatus.FAIL
        assert "no answer" in probe.error
        assert "connection refused" not in probe.error
        assert probe.remediation == REMEDIATIONS[f"{service}_no_answer"]
    with closed_port() as (host, port):
        refused = _detect(
            _config(FEDERATED, f"postgresql://mosaic@{host}:{port}/brain", f"redis://{host}:{port}/0")
        )
    assert refused.probe("postgres").error.split(":")[0] != report.probe("postgres").error.split(":")[0]
    assert refused.probe("postgres").remediation != report.probe("postgres").remediation


def test_open_store_fails_fast_on_a_blackholed_server():
    with blackhole_listener() as (host, port):
        config = _config(STANDALONE, f"postgresql://mosaic@{host}:{port}/brain", connect_timeout=1)
        started = time.monotonic()
        with pytest.raises(ms.TierDetectionError) as info:
            ms.open_store(config)
        assert time.monotonic() - started < 1 + DEADLINE_GRACE_S + 0.5
    assert info.value.service in ("config", "postgres")


# --- schema --------------------------------------------------------------------------------------


def test_schema_behind_head_warns_to_upgrade(tmp_path):
    config = _config(ms.StorageTier.LOCAL, f"sqlite:///{tmp_path}/brain.db")
    with ms.open_store(config) as store:
        ms.upgrade(store)
        ms.downgrade(store, "base")
    probe = _detect(config).probe("sqlite")
    assert probe.status is ms.ProbeStatus.WARN
    assert f"head {ms.head()}" in probe.detail
    assert probe.remediation == REMEDIATIONS["schema_upgrade"]


def test_schema_behind_head_on_postgres(pgvector_url, redis_url):
    probe = _detect(_config(FEDERATED, pgvector_url, redis_url)).probe("postgres")
    assert probe.status is ms.ProbeStatus.WARN
    assert "schema empty" in probe.detail
    assert probe.remediation == REMEDIATIONS["schema_upgrade"]


def test_schema_from_a_newer_sdk_fails_and_open_store_refuses_it(tmp_path):
    config = _config(ms.StorageTier.LOCAL, f"sqlite:///{tmp_path}/brain.db")
    with ms.open_store(config) as store:
        ms.upgrade(store)
        with store.engine.begin() as conn:
            conn.execute(sa.text("update mosaic_alembic_version set version_num = 'f00dfeed'"))
    probe = _detect(config).probe("sqlite")
    assert probe.status is ms.ProbeStatus.FAIL
    assert "f00dfeed" in probe.error
    assert probe.remediation == REMEDIATIONS["schema_newer"]
    with pytest.raises(ms.TierDetectionError, match="f00dfeed") as info:
        ms.open_store(config)
    assert info.value.service == "sqlite"


# --- config problems -----------------------------------------------------------------------------


def test_federated_tier_with_a_database_queue_is_a_config_failure(pgvector_url):
    config = _config(FEDERATED, pgvector_url)
    report = _detect(config)
    probe = report.probe("config")
    assert probe.status is ms.ProbeStatus.FAIL
    assert "needs a Redis/Valkey queue" in probe.error
    assert probe.remediation == REMEDIATIONS["needs_redis"]
    assert report.probe("redis").status is ms.ProbeStatus.SKIPPED
    with pytest.raises(ms.TierDetectionError) as info:
        ms.assert_tier(config, timeout=SLOW_MACHINE_TIMEOUT)
    assert info.value.service == "config"


def test_every_config_problem_is_reported_at_once(tmp_path):
    probe = _detect(_config(STANDALONE, f"sqlite:///{tmp_path}/x.db")).probe("config")
    assert "needs PostgreSQL" in probe.error
    assert "Redis/Valkey queue" in probe.error
    assert REMEDIATIONS["needs_postgres"] in probe.remediation
    assert REMEDIATIONS["needs_redis"] in probe.remediation


def test_assert_tier_and_open_store_say_the_same_thing(redis_url):
    with closed_port() as (host, port):
        config = _config(FEDERATED, f"postgresql://mosaic:Pw-551234@{host}:{port}/brain", redis_url)
        with pytest.raises(ms.TierDetectionError) as detected:
            ms.assert_tier(config, timeout=SLOW_MACHINE_TIMEOUT)
        with pytest.raises(ms.TierDetectionError) as opened:
            ms.open_store(config)
    assert str(detected.value) == str(opened.value)
    assert detected.value.remediation == opened.value.remediation == REMEDIATIONS["postgres_refused"]
    assert "Pw-551234" not in str(detected.value) + repr(detected.value)


@pytest.mark.parametrize(
    ("storage_url", "queue_url", "field"),
    [
        ("postgresql://mosaic:Pw-7781@db:notaport/brain", None, "storage.url"),
        ("postgresql://mosaic:Pw-7781@db:70000/brain", None, "storage.url"),
        ("sqlite:///x.db", "redis://:Pw-7781@cache:port/0", "queue.url"),
        ("sqlite:///x.db", "http://:Pw-7781@cache:6379/0", "queue.url"),
    ],
)
def test_a_malformed_url_is_a_config_error_without_its_secret(storage_url, queue_url, field):
    # Caught when the config is built, or at the latest when it is checked.
    with pytest.raises(ms.ConfigError) as info:
        config = ms.MosaicConfig(
            storage=ms.StorageConfig(url=storage_url), queue=ms.QueueConfig(url=queue_url)
        )
        _detect(config)
    assert info.value.field == field
    assert "Pw-7781" not in str(info.value) + repr(info.value)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_positive_number_is_a_config_error(tmp_path, timeout):
    with pytest.raises(ms.ConfigError, match="timeout"):
        ms.detect_tier(_config(ms.StorageTier.LOCAL, f"sqlite:///{tmp_path}/x.db"), timeout=timeout)


# --- secrets never leak --------------------------------------------------------------------------

_secret = st.text(
    string.ascii_letters + string.digits + "!$&'()*+,;=-._~@:/?#[]%", min_size=6, max_size=24
).map(lambda s: "Zq" + s + "Xk")


def _postgres_forms(secret: str, host: str, port: int) -> list[str]:
    encoded = quote(secret, safe="")
    return [
        f"postgresql://mosaic:{encoded}@{host}:{port}/brain",
        f"postgresql+psycopg://mosaic:{encoded}@{host}:{port}/brain",
        f"postgres://mosaic:{encoded}@{host}:{port}/brain?sslmode=disable",
        f"postgresql://mosaic@{host}:{port}/brain?password={encoded}",
    ]


def _redis_forms(secret: str, host: str, port: int) -> list[str]:
    encoded = quote(secret, safe="")
    return [
        f"redis://:{encoded}@{host}:{port}/0",
        f"rediss://default:{encoded}@{host}:{port}/0",
        f"valkey://{encoded}@{host}:{port}/0",
        f"redis://{host}:{port}/0?password={encoded}",
    ]


@contextlib.contextmanager
def _captured_logs():
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    root = logging.getLogger()
    handler = Capture(level=logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(secret=_secret, pg_form=st.integers(0, 3), redis_form=st.integers(0, 3))
def test_no_secret_reaches_errors_reports_or_logs(secret, pg_form, redis_form):
    forms = {secret, quote(secret, safe=""), quote(secret)}
    with closed_port() as (host, port), _captured_logs() as logs:
        config = _config(
            FEDERATED,
            _postgres_forms(secret, host, port)[pg_form],
            _redis_forms(secret, host, port)[redis_form],
        )
        report = ms.detect_tier(config, timeout=1)
        with pytest.raises(ms.TierDetectionError) as info:
            ms.assert_tier(config, timeout=1)
    assert not report.ok
    assert logs
    rendered = [str(info.value), repr(info.value), report.to_json(), repr(report), repr(config), *logs]
    for text in rendered:
        for form in forms:
            assert form not in text


@given(secret=_secret.filter(lambda s: "'" not in s and "\\" not in s), quoted=st.booleans())
def test_libpq_key_value_strings_are_refused_without_their_secret(secret, quoted):
    value = f"'{secret}'" if quoted else secret
    with pytest.raises(ms.ConfigError) as info:
        ms.StorageConfig(url=f"host=db user=mosaic password={value} dbname=brain")
    with pytest.raises(ms.ConfigError) as loaded:
        ms.config_from_dict({"storage": {"url": f"host=db password={value}"}})
    for err in (info.value, loaded.value):
        assert "libpq" in str(err)
        assert secret not in str(err) + repr(err)
