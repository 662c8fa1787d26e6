"""Config: file discovery, environment overrides, validation errors, JSON round trips."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mosaic_storage as ms
from mosaic_storage._config import ENV_VARS, config_from_dict


def write_config(directory: Path, data: object) -> Path:
    path = directory / "mosaic.config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_no_file_gives_local_tier_on_sqlite_in_user_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = ms.load_config()
    assert config.tier is ms.StorageTier.LOCAL
    assert config.storage.url.startswith("sqlite:///")
    assert config.storage.url.endswith("mosaic.db")
    assert config.queue.type is ms.QueueType.DATABASE
    assert config.source is None


def test_file_in_cwd_wins_over_mosaic_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    write_config(home, {"tier": "local", "storage": {"url": "sqlite:///home.db"}})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    write_config(cwd, {"tier": "local", "storage": {"url": "sqlite:///cwd.db"}})
    monkeypatch.setenv("MOSAIC_HOME", str(home))
    monkeypatch.chdir(cwd)
    assert ms.load_config().storage.url == f"sqlite:///{cwd.resolve() / 'cwd.db'}"
    (cwd / "mosaic.config.json").unlink()
    config = ms.load_config()
    assert config.storage.url == f"sqlite:///{home.resolve() / 'home.db'}"
    assert config.source == home / "mosaic.config.json"


def test_platform_config_dir_is_the_last_place_looked(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.delenv("MOSAIC_HOME")
    monkeypatch.chdir(tmp_path)
    config_dir = Path(platformdirs.user_config_dir("mosaic", appauthor=False))
    config_dir.mkdir(parents=True, exist_ok=True)
    write_config(config_dir, {"tier": "local", "storage": {"url": "sqlite:////tmp/x.db"}})
    assert ms.load_config().storage.url == "sqlite:////tmp/x.db"


def test_environment_overrides_the_file(tmp_path):
    path = write_config(
        tmp_path, {"tier": "local", "storage": {"url": "sqlite:///a.db"}, "memory": {"embedder": {"dim": 8}}}
    )
    env = {
        "MOSAIC_STORAGE_TIER": "federated",
        "MOSAIC_DATABASE_URL": "postgresql://mosaic@db.internal/mosaic",
        "MOSAIC_REDIS_URL": "redis://cache.internal:6379/0",
        "MOSAIC_EMBEDDING_DIM": "768",
    }
    config = ms.load_config(path, env=env)
    assert config.tier is ms.StorageTier.FEDERATED
    assert config.storage.url == "postgresql://mosaic@db.internal/mosaic"
    assert config.queue.type is ms.QueueType.REDIS
    assert config.queue.url == "redis://cache.internal:6379/0"
    assert config.memory.embedder.dim == 768


def test_every_documented_environment_variable_is_applied():
    values = {
        "MOSAIC_STORAGE_TIER": "standalone",
        "MOSAIC_DATABASE_URL": "postgresql://u@h/d",
        "MOSAIC_DATABASE_SCHEMA": "brain",
        "MOSAIC_DATABASE_POOL_SIZE": "7",
        "MOSAIC_CONNECT_TIMEOUT": "2.5",
        "MOSAIC_QUEUE_TYPE": "redis",
        "MOSAIC_REDIS_URL": "redis://h:6379/1",
        "MOSAIC_EMBEDDER": "openai",
        "MOSAIC_EMBEDDING_DIM": "1536",
    }
    assert set(values) | {"MOSAIC_VALKEY_URL"} == set(ENV_VARS)
    config = ms.load_config(env=values)
    assert (config.tier, config.storage.schema, config.storage.pool_size) == (
        ms.StorageTier.STANDALONE,
        "brain",
        7,
    )
    assert config.storage.connect_timeout == 2.5
    assert (config.memory.embedder.type, config.memory.embedder.dim) == ("openai", 1536)
    assert config.queue.url == "redis://h:6379/1"


def test_team_tier_is_read_as_standalone_with_a_deprecation_warning(tmp_path):
    path = write_config(tmp_path, {"tier": "team", "storage": {"url": "postgresql://u@h/d"}})
    with pytest.warns(DeprecationWarning, match="standalone"):
        config = ms.load_config(path)
    assert config.tier is ms.StorageTier.STANDALONE


def test_relative_sqlite_and_embedded_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    path = write_config(tmp_path, {"storage": {"url": "embedded://pgdata"}})
    assert ms.load_config(path).storage.url == f"embedded://{tmp_path.resolve() / 'pgdata'}"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"tier": "galactic"}, "tier", "allowed values: local, standalone, federated"),
        ({"storage": {"url": "mysql://u:pw@h/d"}}, "storage.url", "allowed: sqlite"),
        ({"storage": {"pool_size": 0}}, "storage.pool_size", "from 1 to 1000"),
        ({"storage": {"schema": "Bad-Name"}}, "storage.schema", "identifier"),
        ({"queue": {"type": "kafka"}}, "queue.type", "allowed values: database, redis"),
        ({"queue": {"type": "redis"}}, "queue.url", "needs a url"),
        ({"queue": {"url": "http://h"}}, "queue.url", "allowed schemes"),
        ({"memory": {"embedder": {"type": "magic"}}}, "memory.embedder.type", "hashing"),
        ({"memory": {"embedder": {"dim": "384"}}}, "memory.embedder.dim", "integer"),
        ({"storgae": {}}, "storgae", "allowed keys: tier, storage"),
    ],
)
def test_invalid_config_names_file_field_value_and_allowed(tmp_path, data, field, fragment):
    path = write_config(tmp_path, data)
    with pytest.raises(ms.ConfigError) as info:
        ms.load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert info.value.field == field
    assert f"field {field!r}" in message
    assert fragment in message


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "mosaic.config.json"
    path.write_text('{"tier": "local",\n "storage": }', encoding="utf-8")
    with pytest.raises(ms.ConfigError, match=r"line 2 column"):
        ms.load_config(path)


def test_missing_explicit_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ms.ConfigError, match="not found") as info:
        ms.load_config(tmp_path / "nope.json")
    assert "mosaic init" in str(info.value)


def test_bad_value_with_a_secret_is_redacted(tmp_path):
    path = write_config(tmp_path, {"storage": {"url": "mysql://admin:Sup3rSecret!@db/x"}})
    with pytest.raises(ms.ConfigError) as info:
        ms.load_config(path)
    assert "Sup3rSecret" not in str(info.value)
    assert "Sup3rSecret" not in repr(info.value)


def test_libpq_key_value_strings_are_refused_redacted():
    with pytest.raises(ms.ConfigError, match="key=value") as info:
        config_from_dict({"storage": {"url": "host=db user=u password=Hunter2Secret dbname=x"}})
    assert "Hunter2Secret" not in str(info.value)
    assert "postgresql://" in str(info.value)


def test_repr_of_config_hides_passwords():
    config = config_from_dict(
        {
            "tier": "standalone",
            "storage": {"url": "postgresql://u:PgPassw0rd@h/d"},
            "queue": {"url": "redis://:RedisPassw0rd@h:6379/0"},
        }
    )
    text = repr(config) + str(config.redacted())
    assert "PgPassw0rd" not in text
    assert "RedisPassw0rd" not in text
    assert config.to_dict()["storage"]["url"] == "postgresql://u:PgPassw0rd@h/d"


def test_bad_environment_number_names_the_variable():
    with pytest.raises(ms.ConfigError, match="MOSAIC_EMBEDDING_DIM"):
        ms.load_config(env={"MOSAIC_EMBEDDING_DIM": "lots"})


# --- properties ------------------------------------------------------------------------------

_names = st.text(string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=12)
_sqlite_urls = _names.map(lambda name: f"sqlite:////tmp/{name}.db")
_pg_urls = st.builds(
    lambda user, pw, host, db: f"postgresql://{user}:{pw}@{host}:5432/{db}",
    _names,
    _names,
    _names,
    _names,
)
_storage = st.fixed_dictionaries(
    {"url": st.one_of(_sqlite_urls, _pg_urls, _names.map(lambda n: f"embedded:///tmp/{n}"))},
    optional={
        "pool_size": st.integers(1, 1000),
        "schema": st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True),
        "connect_timeout": st.floats(0.1, 600, allow_nan=False),
    },
)
_queue = st.one_of(
    st.just({"type": "database"}),
    st.builds(lambda host: {"type": "redis", "url": f"redis://{host}:6379/0"}, _names),
)
_valid_configs = st.fixed_dictionaries(
    {
        "tier": st.sampled_from(["local", "standalone", "federated"]),
        "storage": _storage,
        "queue": _queue,
        "memory": st.fixed_dictionaries(
            {
                "embedder": st.fixed_dictionaries(
                    {"type": st.sampled_from(["hashing", "openai", "minilm"]), "dim": st.integers(1, 16000)},
                    optional={"model": _names, "base_url": _names.map(lambda n: f"http://{n}")},
                )
            }
        ),
    }
)


@given(_valid_configs)
def test_any_valid_config_round_trips_through_json(data):
    config = config_from_dict(data)
    again = config_from_dict(json.loads(config.to_json()))
    assert again == config
    assert again.to_dict() == config.to_dict()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.one_of(
        _json_values,
        st.dictionaries(
            st.sampled_from(["tier", "storage", "queue", "memory", "extra"]), _json_values, max_size=4
        ),
        _valid_configs.flatmap(
            lambda base: st.tuples(st.sampled_from(["tier", "storage", "queue", "memory"]), _json_values).map(
                lambda kv: {**base, kv[0]: kv[1]}
            )
        ),
    )
)
def test_invalid_config_raises_config_error_and_nothing_else(data):
    try:
        config_from_dict(data)
    except ms.ConfigError:
        pass


_invalid_mutations = st.one_of(
    st.text(max_size=12)
    .filter(lambda t: t.lower() not in ("local", "standalone", "federated", "team"))
    .map(lambda t: ("tier", t)),
    st.integers().filter(lambda n: not 1 <= n <= 1000).map(lambda n: ("storage", {"pool_size": n})),
    st.sampled_from(["mysql://h/d", "http://h", "", "host=h password=x", "sqlite:x.db"]).map(
        lambda url: ("storage", {"url": url})
    ),
    st.text(min_size=1, max_size=8)
    .filter(lambda t: t not in ("database", "redis"))
    .map(lambda t: ("queue", {"type": t})),
    st.integers().filter(lambda n: not 1 <= n <= 16000).map(lambda n: ("memory", {"embedder": {"dim": n}})),
    st.floats(allow_nan=True)
    .filter(lambda f: not 0.1 <= f <= 600)
    .map(lambda f: ("storage", {"connect_timeout": f})),
)


@given(_valid_configs, _invalid_mutations)
def test_every_invalid_value_raises_config_error(base, mutation):
    key, value = mutation
    broken = {**base, key: value}
    if key == "storage" and "url" not in value:
        broken[key] = {"url": base["storage"]["url"], **value}
    with pytest.raises(ms.ConfigError):
        config_from_dict(broken)


def test_huge_numbers_are_config_errors_not_overflows():
    with pytest.raises(ms.ConfigError):
        config_from_dict({"storage": {"connect_timeout": 10**400}})


def test_direct_construction_validates_the_schema_name():
    with pytest.raises(ms.ConfigError, match="identifier"):
        ms.StorageConfig(url="postgresql://u@h/d", schema="Brain")


def test_relative_url_from_the_environment_is_relative_to_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    path = write_config(tmp_path / "conf", {"tier": "local"})
    monkeypatch.chdir(tmp_path)
    config = ms.load_config(path, env={"MOSAIC_DATABASE_URL": "sqlite:///data.db"})
    assert config.storage.url == "sqlite:///data.db"


def test_home_relative_sqlite_path_in_a_file_is_expanded(tmp_path):
    path = write_config(tmp_path, {"storage": {"url": "sqlite:///~/brain.db"}})
    assert ms.load_config(path).storage.url == f"sqlite:///{Path('~/brain.db').expanduser()}"


def test_agent_section_is_kept_for_the_agent_layer_read_only_and_round_trips(tmp_path):
    path = tmp_path / "mosaic.config.json"
    path.write_text(json.dumps({"agent": {"providers": {"local": {"base_url": "http://127.0.0.1:1"}}}}))
    config = ms.load_config(path, env={})
    assert config.agent["providers"]["local"]["base_url"] == "http://127.0.0.1:1"
    with pytest.raises(TypeError):
        config.agent["providers"] = {}  # type: ignore[index]
    assert ms.config_from_dict(config.to_dict()).agent == config.agent
    assert "agent" not in ms.MosaicConfig().to_dict()


def test_agent_section_must_be_an_object(tmp_path):
    with pytest.raises(ms.ConfigError, match="agent"):
        ms.config_from_dict({"agent": ["not", "an", "object"]})
