"""The Redis/Valkey probe: PING, version, and a maxmemory-policy that could evict queued jobs."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from .._config import MosaicConfig, QueueType, url_scheme
from .._errors import MissingExtraError
from .._redact import redact
from .remediations import REMEDIATIONS
from .report import ProbeResult, ProbeStatus, elapsed_ms, no_answer_message, skipped


def redis_target(url: str) -> str:
    """Where a Redis URL points, for messages: host:port/db or the socket path; never secrets."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"socket {parts.path}"
        port = parts.port or 6379
    except ValueError:
        return "the queue URL"
    db = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{port}/{db}"


def redis_probe(config: MosaicConfig, timeout: float) -> tuple[ProbeResult, ...]:
    url = config.queue.url
    if config.queue.type is not QueueType.REDIS or not url:
        return (skipped("redis", f"the queue is a table in the store ({config.queue.type.value})"),)
    try:
        from .._extras import require

        redis = require("redis", extra="redis", purpose="the Redis queue")
    except MissingExtraError as err:
        return (
            ProbeResult(
                service="redis",
                status=ProbeStatus.FAIL,
                error=err.message,
                remediation=REMEDIATIONS["redis_driver"],
            ),
        )
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    started = time.perf_counter()
    target = redis_target(url)
    scheme = url_scheme(url)
    if scheme in ("valkey", "valkeys"):
        url = {"valkey": "redis", "valkeys": "rediss"}[scheme] + url[len(scheme) :]
    # No retries: the probe's timeout is the whole wait (redis-py would retry 3 times).
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )

    def fail(error: str, key: str) -> tuple[ProbeResult, ...]:
        return (
            ProbeResult(
                service="redis",
                status=ProbeStatus.FAIL,
                latency_ms=elapsed_ms(started),
                error=error,
                remediation=REMEDIATIONS[key],
            ),
        )

    try:
        client.ping()
        latency = elapsed_ms(started)
        try:
            info = client.info()
        except redis.ResponseError:
            info = {}
    except redis.AuthenticationError as err:
        return fail(f"{target} refused the login: {redact(err)}", "redis_auth")
    except redis.TimeoutError as err:
        if "connecting" in str(err).lower():
            return fail(no_answer_message(target, timeout), "redis_no_answer")
        return fail(
            f"connected to {target}, but it sent no reply within {timeout:g} s "
            "(not a Redis server, a TLS mismatch, or a stuck server)",
            "redis_silent",
        )
    except redis.ConnectionError as err:
        text = redact(err)
        lower = text.lower()
        if "refused" in lower:
            return fail(
                f"cannot connect to {target}: connection refused (nothing listens there)", "redis_refused"
            )
        if "name or service not known" in lower or "resolve" in lower or "nodename" in lower:
            return fail(f"cannot connect to {target}: {text}", "redis_host")
        return fail(f"cannot connect to {target}: {text}", "redis_other")
    except redis.ResponseError as err:
        text = redact(err)
        if any(word in text.upper() for word in ("NOAUTH", "WRONGPASS", "AUTH")):
            return fail(f"{target} refused the login: {text}", "redis_auth")
        return fail(f"{target} answered with an error: {text}", "redis_other")
    finally:
        client.close()
    flavour = "valkey" if "valkey_version" in info else "redis"
    version = info.get("valkey_version") or info.get("redis_version")
    policy = info.get("maxmemory_policy")
    facts = f"{flavour} at {target}"
    if policy and policy != "noeviction":
        return (
            ProbeResult(
                service="redis",
                status=ProbeStatus.WARN,
                latency_ms=latency,
                version=None if version is None else str(version),
                detail=f"{facts}; maxmemory-policy {policy} may evict queued jobs when memory is full",
                remediation=REMEDIATIONS["redis_eviction"],
            ),
        )
    return (
        ProbeResult(
            service="redis",
            status=ProbeStatus.OK,
            latency_ms=latency,
            version=None if version is None else str(version),
            detail=f"{facts}; maxmemory-policy {policy or 'unknown'}",
        ),
    )
