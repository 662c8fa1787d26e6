"""The ``mosaic`` command: init, quickstart, db; exit codes; no tracebacks, no secrets."""

from __future__ import annotations

import json

import mosaic_storage as ms
from tests._services import closed_port


def test_version(mosaic):
    out = mosaic("--version")
    assert out.returncode == 0
    assert ms.__version__ in out.stdout


def test_quickstart_on_a_fresh_machine_writes_and_reads_back(mosaic, tmp_path):
    out = mosaic("quickstart", "--json", env={"MOSAIC_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["revision"] == ms.head()
    actions = [step["action"] for step in report["steps"]]
    assert actions[:3] == ["store", "schema", "write"]
    assert any("Try Mosaic" in step["detail"] for step in report["steps"])
    assert (tmp_path / "home" / "quickstart.db").exists()


def test_init_writes_a_config_and_migrates(mosaic, tmp_path):
    out = mosaic("init", "--url", "sqlite:///brain.db", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "mosaic.config.json").read_text())
    assert config["tier"] == "local"
    current = mosaic("db", "current", "--json", "--config", str(tmp_path / "mosaic.config.json"))
    assert current.returncode == 0, current.stderr
    assert json.loads(current.stdout)["up_to_date"] is True
    again = mosaic("init", "--dir", str(tmp_path))
    assert again.returncode == 2
    assert "--force" in again.stderr


def test_db_upgrade_current_downgrade(mosaic, tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    assert json.loads(mosaic("db", "current", "--url", url, "--json").stdout)["current"] is None
    assert mosaic("db", "upgrade", "--url", url).returncode == 0
    assert json.loads(mosaic("db", "current", "--url", url, "--json").stdout)["current"] == ms.head()
    assert mosaic("db", "downgrade", "base", "--url", url, "--yes").returncode == 0
    assert json.loads(mosaic("db", "current", "--url", url, "--json").stdout)["current"] is None


def test_unreachable_database_exits_1_without_password_or_traceback(mosaic):
    with closed_port() as (host, port):
        out = mosaic("db", "current", "--url", f"postgresql://mosaic:TopSecretPw1@{host}:{port}/x")
    assert out.returncode == 1
    assert "TopSecretPw1" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert "postgres" in out.stderr


def test_failed_init_writes_no_config(mosaic, tmp_path):
    out = mosaic("init", "--tier", "standalone", "--dir", str(tmp_path))
    assert out.returncode == 1
    assert "needs PostgreSQL" in out.stderr
    assert not (tmp_path / "mosaic.config.json").exists()


def test_init_config_file_is_private(mosaic, tmp_path):
    assert mosaic("init", "--url", "sqlite:///b.db", "--dir", str(tmp_path)).returncode == 0
    assert (tmp_path / "mosaic.config.json").stat().st_mode & 0o077 == 0


def test_unknown_revision_is_one_line_not_a_traceback(mosaic, tmp_path):
    out = mosaic("db", "upgrade", "--url", f"sqlite:///{tmp_path}/x.db", "--revision", "9999")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "9999" in out.stderr


def test_downgrade_asks_before_dropping(mosaic, tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    assert mosaic("db", "upgrade", "--url", url).returncode == 0
    out = mosaic("db", "downgrade", "base", "--url", url)  # stdin empty: no confirmation
    assert out.returncode == 1
    assert json.loads(mosaic("db", "current", "--url", url, "--json").stdout)["current"] == ms.head()


def test_malformed_url_is_a_usage_error(mosaic):
    out = mosaic("db", "current", "--url", "mysql://root:Hunter2Pw@db/x")
    assert out.returncode == 2
    assert "Hunter2Pw" not in out.stderr
    assert "allowed" in out.stderr


def test_bad_config_file_is_a_usage_error_naming_the_field(mosaic, tmp_path):
    path = tmp_path / "mosaic.config.json"
    path.write_text('{"tier": "galactic"}')
    out = mosaic("db", "current", "--config", str(path))
    assert out.returncode == 2
    assert "tier" in out.stderr
    assert "local, standalone, federated" in out.stderr


def test_unknown_option_is_a_usage_error(mosaic):
    assert mosaic("db", "upgrade", "--no-such-flag").returncode == 2
