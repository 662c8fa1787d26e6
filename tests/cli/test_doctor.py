"""``mosaic doctor``: a table or JSON, exit 0/1/2, within the timeout, no traceback, no secret."""

from __future__ import annotations

import json
import time

import mosaic_storage as ms
from tests._services import blackhole_listener, closed_port


def _write_config(tmp_path, data):
    path = tmp_path / "mosaic.config.json"
    path.write_text(json.dumps(data))
    return path


def test_healthy_local_tier_exits_0_with_a_table(mosaic, tmp_path):
    config = _write_config(tmp_path, {"storage": {"url": f"sqlite:///{tmp_path}/brain.db"}})
    assert mosaic("db", "upgrade", "--config", str(config)).returncode == 0
    out = mosaic("doctor", "--config", str(config))
    assert out.returncode == 0, out.stderr
    for word in ("service", "sqlite", "postgres", "redis", "skipped", "The local tier can run"):
        assert word in out.stdout


def test_json_follows_the_documented_shape(mosaic, tmp_path):
    config = _write_config(tmp_path, {"storage": {"url": f"sqlite:///{tmp_path}/brain.db"}})
    out = mosaic("doctor", "--json", "--config", str(config))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {"tier", "ok", "timeout_s", "elapsed_ms", "storage_url", "queue_url", "probes"}
    assert report["tier"] == "local"
    assert report["ok"] is True
    assert [p["service"] for p in report["probes"]] == ["config", "sqlite", "postgres", "pgvector", "redis"]
    keys = {"service", "status", "ok", "latency_ms", "version", "detail", "error", "remediation"}
    assert all(set(probe) == keys for probe in report["probes"])
    assert report["probes"][1]["status"] == "warn"  # never migrated: run `mosaic db upgrade`


def test_federated_tier_all_down_exits_1_in_time_without_secrets(mosaic, tmp_path):
    with blackhole_listener() as (host, port), closed_port() as (r_host, r_port):
        config = _write_config(
            tmp_path,
            {
                "tier": "federated",
                "storage": {"url": f"postgresql://mosaic:Doctor-Pw-1@{host}:{port}/brain"},
                "queue": {"url": f"redis://:Doctor-Pw-2@{r_host}:{r_port}/0"},
            },
        )
        started = time.monotonic()
        out = mosaic("doctor", "--json", "--config", str(config), "--timeout", "1")
        wall = time.monotonic() - started
    assert out.returncode == 1, out.stderr
    assert wall < 10  # interpreter start-up included; the report itself is bounded below
    report = json.loads(out.stdout)
    assert report["ok"] is False
    assert report["elapsed_ms"] < 2000
    probes = {p["service"]: p for p in report["probes"]}
    assert "no answer" in probes["postgres"]["error"]
    assert "connection refused" in probes["redis"]["error"]
    assert "Doctor-Pw" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_table_names_the_failure_and_what_to_do(mosaic, tmp_path, pgvector_url):
    config = _write_config(tmp_path, {"tier": "federated", "storage": {"url": pgvector_url}})
    out = mosaic("doctor", "--config", str(config))
    assert out.returncode == 1
    assert "needs a Redis/Valkey queue" in out.stdout
    assert "MOSAIC_REDIS_URL" in out.stdout
    assert "The federated tier cannot run" in out.stdout


def test_malformed_url_or_config_is_a_usage_error(mosaic, tmp_path):
    bad_url = _write_config(tmp_path, {"storage": {"url": "postgresql://u:Hunter2-Pw@db:notaport/x"}})
    out = mosaic("doctor", "--config", str(bad_url))
    assert out.returncode == 2
    assert "storage.url" in out.stderr
    assert "Hunter2-Pw" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    (tmp_path / "broken.json").write_text("{not json")
    out = mosaic("doctor", "--config", str(tmp_path / "broken.json"))
    assert out.returncode == 2
    assert "invalid JSON" in out.stderr
    assert mosaic("doctor", "--config", str(tmp_path / "missing.json")).returncode == 2


def test_bad_timeout_is_a_usage_error(mosaic, tmp_path):
    out = mosaic("doctor", "--timeout", "0")
    assert out.returncode == 2
    assert "--timeout" in out.stderr


def test_doctor_reads_the_environment_like_load_config(mosaic, tmp_path):
    env = {"MOSAIC_DATABASE_URL": f"sqlite:///{tmp_path}/env.db", "MOSAIC_HOME": str(tmp_path)}
    out = mosaic("doctor", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["storage_url"] == f"sqlite:///{tmp_path}/env.db"
    assert ms.StorageTier.LOCAL.value == json.loads(out.stdout)["tier"]
