"""Redaction: no password, token or secret query parameter survives, in any form."""

from __future__ import annotations

import logging
import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mosaic_storage as ms
from mosaic_storage import redact


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://mosaic:S3cretPw@db.internal:5432/mosaic",
        "postgresql+psycopg://mosaic:S3cretPw@db/mosaic?sslmode=require",
        "postgres://mosaic:S3cretPw@/mosaic?host=/run/postgresql",
        "redis://:S3cretPw@cache:6379/0",
        "rediss://default:S3cretPw@cache:6380/0",
        "valkey://S3cretPw@cache:6379",
        "redis://cache:6379/0?password=S3cretPw",
        "postgresql://db/mosaic?user=u&password=S3cretPw&sslmode=require",
        "host=db user=u password=S3cretPw dbname=mosaic",
        "host=db password = 'S3cret Pw' dbname=mosaic",
        'connection string {"password": "S3cretPw"}',
        "Authorization: Bearer S3cretPw.token-value",
        "https://api.example.com/v1?api_key=S3cretPw",
        "token=S3cretPw",
        "password: S3cretPw",
        "redis:\n  password: 'S3cret Pw'\n  host: cache",
        "REDIS_PASSWORD:\tS3cretPw",
        "password: correct S3cret battery staple",
        "password: 'it''s S3cret'",
        '{"password": 5S3cret5, "user": 1}',
        "Authorization: ghp_S3cretPw",
        "userPassword:: S3cretPw==",
        "password: [S3cretPw, other]",
        'password: "S3cret Pw',
        "authorization=Basic S3cretPwdXNl",
        "token=Bearer S3cretTok",
        '{"password":5S3cret5, "user": 1}',
        "Headers([('x-api-key', 'S3cretPw'), ('host', 'h')])",
        "https://S3cretTok@github.com/org/repo.git",
        '{"detail": "{\\"password\\": \\"S3cretPw\\"}"}',
        '{"msg": "password=\\"Pw S3cret\\""}',
        "Client(auth=('user', 'S3cretPw'))",
        "Cfg(password=b'Pw S3cret')",
        "auth=HTTPBasicAuth('user', 'S3cretPw')",
        "[(b'X-Api-Key', b'S3cretPw'), (b'Cookie', b'session=S3cretPw')]",
        '{\\"password\\": 5S3cret5, \\"user\\": 1}',
        "privateKey: S3cretPw",
        "SecretAccessKey: S3cretPw",
        "Authorization:S3cretPw",
        "git+https://S3cretTok@github.com/o/r",
        "hg+https://S3cretTok@hg.example.com/repo",  # any part of a compound scheme counts
        "wss://S3cretTok@stream.example.com",
        "authorization=Negotiate S3cretPw",
        "X-Api-Key: S3cretPw",
        'db_token:\t"S3cret Pw"',
        f"postgresql://mosaic:{quote('S3cret@Pw/:%', safe='')}@db/mosaic",
    ],
)
def test_known_secret_forms_are_masked(text):
    out = redact(text)
    assert "S3cret" not in out
    assert "***" in out


def test_user_names_hosts_and_databases_stay_readable():
    out = redact("postgresql://mosaic:pw123456@db.internal:5432/brain")
    assert out == "postgresql://mosaic:***@db.internal:5432/brain"


def test_a_secret_from_config_is_masked_wherever_it_reappears():
    ms.config_from_dict({"storage": {"url": "postgresql://u:Unusual-Passphrase-42@h/d"}})
    assert redact("server said: bad password Unusual-Passphrase-42") == "server said: bad password ***"


_secret = st.text(
    string.ascii_letters + string.digits + "!$&'()*+,;=-._~@:/?#[]%", min_size=6, max_size=24
).map(lambda s: "Zq" + s + "Xk")
_scheme = st.sampled_from(["postgres", "postgresql", "postgresql+psycopg", "redis", "rediss", "valkey"])


def _url_forms(scheme: str, secret: str) -> list[str]:
    encoded = quote(secret, safe="")
    return [
        f"{scheme}://user:{encoded}@host:1234/db",
        f"{scheme}://:{encoded}@host:1234/0",
        f"{scheme}://host:1234/db?password={encoded}",
        f"{scheme}://host/db?sslmode=require&token={encoded}",
    ]


@given(_scheme, _secret)
def test_no_secret_reaches_errors_reprs_or_logs(scheme, secret):
    encoded = quote(secret, safe="")
    for url in [*_url_forms(scheme, secret), f"host=db password='{secret}'"]:
        err = ms.TierDetectionError(f"cannot reach {url}", service="postgres", remediation=f"check {url}")
        for rendered in (str(err), repr(err), redact(url)):
            assert secret not in rendered
            assert encoded not in rendered


@given(_scheme, _secret)
def test_no_secret_reaches_captured_logs(scheme, secret):
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    logger = logging.getLogger("mosaic-test-redact")
    handler = Capture()
    logger.addHandler(handler)
    try:
        for url in _url_forms(scheme, secret):
            logger.warning("failed: %s", ms.MosaicError(f"open {url}"))
    finally:
        logger.removeHandler(handler)
    assert records
    assert all(secret not in line and quote(secret, safe="") not in line for line in records)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://rev:Pa/ss?w#rdLeak@/revdb?host=/tmp/x",
        "postgresql://rev:Pa@ss@wLeak@db:5432/x",
        "postgresql://db/x?user=u&password=first%20secondLeak",
    ],
)
def test_passwords_with_unencoded_reserved_characters_are_masked(url):
    assert "Leak" not in redact(url)
    try:
        config = ms.config_from_dict({"storage": {"url": url}})
    except ms.ConfigError as err:  # refused as ambiguous: the message must not leak either
        rendered = [str(err), repr(err)]
    else:
        rendered = [repr(config), str(config.redacted())]
    assert all("Leak" not in text for text in rendered)


def test_secrets_in_dict_reprs_env_assignments_and_base_urls_are_masked():
    assert "DictPW123" not in redact("got {'password': 'DictPW123'}")
    assert "EnvPw1234" not in redact("PGPASSWORD=EnvPw1234 psql")
    assert "RedisPw12" not in redact("REDIS_PASSWORD='RedisPw12'")
    config = ms.config_from_dict(
        {
            "memory": {
                "embedder": {"type": "openai", "base_url": "https://u:ProxyKey123@proxy/v1?api_key=QK7777"}
            }
        }
    )
    text = repr(config) + str(config.redacted())
    assert "ProxyKey123" not in text
    assert "QK7777" not in text


def test_a_remembered_secret_is_masked_only_as_a_whole_token():
    ms.config_from_dict({"storage": {"url": "postgresql://app:postgres@db/postgres"}})
    # The scheme is left whole (no "***ql://"); the user name equal to the password is masked.
    assert redact("opened postgresql://postgres@host/mosaic") == "opened postgresql://***@host/mosaic"


def test_values_seen_in_messages_are_not_remembered():
    redact("flag token=truthy")
    assert redact("it is truthy") == "it is truthy"


def test_redaction_stays_fast_on_long_input():
    import time

    text = "a" * 200_000
    start = time.perf_counter()
    assert redact(text) == text
    # Linear, not quadratic: the old pattern took seconds on 16k characters.
    assert time.perf_counter() - start < 1.0


def test_queue_url_with_unencoded_characters_in_the_password_is_refused_redacted():
    with pytest.raises(ms.ConfigError, match="percent-encode") as info:
        ms.config_from_dict({"queue": {"url": "redis://:Sec/ret99x@127.0.0.1:6379/0"}})
    assert "ret99x" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://admin:Tr0ub4dor@horse-battery-staple@127.0.0.1:1/db",
        "postgresql://127.0.0.1:1/db?user=u&password=p@ssword22",
        "postgresql://u:a b@127.0.0.1:1/db",
    ],
)
def test_ambiguous_credentials_are_refused_without_echoing_the_url(url):
    with pytest.raises(ms.ConfigError, match="percent-encode") as info:
        ms.config_from_dict({"storage": {"url": url}})
    text = str(info.value) + repr(info.value)
    for fragment in ("horse-battery", "ssword22", "Tr0ub4dor", "a b@"):
        assert fragment not in text


def test_redis_auth_arguments_echoed_by_the_server_are_masked():
    long_secret = "LngA1b2C3d4" * 15
    echoed = f"unknown command 'HELLO', with args beginning with: '3' 'AUTH' 'default' '{long_secret[:100]}'"
    assert long_secret[:20] not in redact(echoed)
    assert "pw'" not in redact("with args beginning with: 'AUTH' 'default' 'pw'")


def test_queue_config_validates_its_url_when_built_directly():
    with pytest.raises(ms.ConfigError):
        ms.QueueConfig(type=ms.QueueType.REDIS, url="http://:Sec@h/0")


_ADVERSARIAL = {
    "dash runs": "a-" * 500_000,
    "underscore runs": "a_" * 500_000,
    "equals and dashes": "=-" * 500_000,
    "one long token": "x" * 1_000_000,
    "one long key": "a-" * 499_990 + "password=",
    "many keys": "key=" * 250_000,
    "many secret keys": "password=" * 111_111,
    "keys and spaces": "api_key= " * 100_000,
    "quoted keys": "'a-" * 333_333,
    "query keys": "?a-" * 333_333,
    "mapping keys": '"token": "' * 100_000,
    "unclosed quote": "password='\\' " * 76_000,
    "schemes": "a://" * 250_000,
    "bearer words": "token " * 166_000,
    "auth words": "AUTH\t" * 200_000,
    "api key prefixes": "sk-" * 333_333,
    "colons": "a:" * 500_000,
    "secret keys and colons": "password:" * 111_111,
    "colon keys and spaces": "api_key: \t" * 90_000,
    "colon keys and open quotes": "password: '" * 90_000,
    "quoted keys and colons": '"password": ' * 80_000,
    "double colons": "pass:: " * 140_000,
    "open pairs": "('token', " * 100_000,
    "backslash runs": "\\" * 1_000_000,
    "escaped keys": '\\"password\\": \\"' * 60_000,
    "escaped values": 'password=\\"' * 80_000,
    "open groups": "password=(" * 100_000,
    "open constructor groups": "auth=Basic" + "Auth(" * 200_000,
    "header colons": "cookie:" * 140_000,
    "scheme values": "token=Bearer " * 80_000,
}


@pytest.mark.parametrize("name", sorted(_ADVERSARIAL))
def test_redaction_stays_linear_on_a_megabyte_of_adversarial_input(name):
    import time

    text = _ADVERSARIAL[name]
    start = time.process_time()  # CPU time: other processes on a busy machine do not count
    out = redact(text)
    elapsed = time.process_time() - start
    # A model chooses what tool results hold: the old key pattern took minutes on 21 kB of "a-".
    # Linear redaction takes well under half a second here on an idle machine.
    assert elapsed < 2.0, f"{name}: {elapsed:.1f} s"
    if name in ("dash runs", "underscore runs", "equals and dashes", "one long token", "colons"):
        assert out == text
    if name == "one long key":
        assert out == text  # a key with no value is left alone
    if name == "many secret keys":
        assert out == "password=***"


def test_bare_key_colon_lines_mask_the_rest_of_their_line_and_nothing_else():
    # YAML, log and header lines: the value is the rest of its line, never the next line; a
    # quoted value that closes on the line and ends it keeps what follows (JSON).
    assert redact("password: S3cretPw user: ann") == "password: ***"
    assert redact("password:\nhost: db") == "password:\nhost: db"
    assert redact("password: 'S3cret\nhost: db") == "password: '***'\nhost: db"
    assert redact('{"password": "S3cretPw", "user": "ann"}') == '{"password": "***", "user": "ann"}'
    assert redact("password authentication failed for user ann") == (
        "password authentication failed for user ann"
    )
    # host:port (no space after the colon) is never a key and its value.
    for text in (
        "postgresql://u:S3cretPw@pgpass:5432/db",
        "redis://user@oauth:6379/0",
        "https://x.auth:8443/realms/main",
        "Error 111 connecting to redis-auth:6379. Connection refused.",
    ):
        out = redact(text)
        assert "S3cret" not in out
        assert out.split("@")[-1] == text.split("@")[-1], out


def test_passwords_with_quotes_or_angle_brackets_are_refused_unechoed():
    # Redaction reads a URL up to a quote or bracket: such a password would be shown in part.
    for url in ("postgresql://mosaic:Tr0ub'S3cret@db/mosaic", "postgresql://m:a<S3cret@db/x"):
        with pytest.raises(ms.ConfigError) as err:
            ms.MosaicConfig(storage=ms.StorageConfig(url=url))
        assert "S3cret" not in str(err.value) and "quote" in str(err.value)
    with pytest.raises(ms.ConfigError) as err:
        ms.QueueConfig(type=ms.QueueType.REDIS, url="redis://:S3c'ret@cache:6379/0")
    assert "S3c" not in str(err.value)


def test_only_a_pair_whose_name_is_secret_is_masked():
    assert redact("[('token', 'S3cretPw'), ('user', 'ann')]") == "[('token', '***'), ('user', 'ann')]"
    assert redact("('user', 'token')") == "('user', 'token')"


def test_a_secret_key_after_any_letter_or_separator_is_masked():
    for text in ("épassword=S3cretPw", "name-password=S3cretPw", "--token=S3cretPw", "x:PGPASSWORD=S3cretPw"):
        assert "S3cret" not in redact(text), text
    assert redact("password=S3cretPw and user=ann") == "password=*** and user=ann"


@pytest.mark.parametrize("odd", ["\u0130", "\u0131", "\u017f", "\u212a"])
def test_letters_that_fold_to_ascii_do_not_hide_a_bearer_token(odd):
    # Under (?i) these match i, s or k; lower() keeps or lengthens some, so the fast path steps aside.
    for text in (f"{odd} Authorization: Bearer S3cretPwValue", f"ba\u017fic S3cretPwValue {odd}"):
        assert "S3cret" not in redact(text), text


_FRAGMENTS = [
    "password", "PASSWORD", "PgPassword", "pwd", "token", "Bearer ", "basic ", "api-key", "api_key",
    "secret_key", "=", "= ", " ", "'", '"', ":", ": ", "?", "&", ";", "://", "@", "redis", "postgres",
    "AUTH", "AUTH ", "sk-", "xoxb-", "-", "_", "a", "\\", "\n", "\t", "12345678", ",", "/", "#", "<",
    "\u017f", "\u212a", "\u0131", "\u0130", "é", "(", ")", ", ", "::", ":=", "\"", "authorization",
    '\\"', "\\\\", "b'", "[", "]",
]  # fmt: skip


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=16).map("".join))
def test_trying_patterns_only_where_a_match_can_start_changes_nothing(text):
    from mosaic_storage import _redact

    expected = text
    for secret in sorted(_redact._known_secrets, key=len, reverse=True):  # remembered by other tests
        expected = _redact._known_secrets[secret].sub("***", expected)
    for _needle, _hint, pattern, repl in _redact._STAGES:
        expected = pattern.sub(repl, expected)
    assert redact(text) == expected
