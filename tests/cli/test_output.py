"""`print_json`: every string redacted, and the output always valid JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mosaic_cli._output import print_json, print_json_line

SECRETS = [
    "export OPENAI_API_KEY=sk-proj-abcdefghijklmnop",
    "postgresql://bob:hunter2@db/x",
    'password="s3cret" and token=abc123',
    "Authorization: Bearer abc.def.ghi",
]


@pytest.mark.parametrize("text", SECRETS)
def test_secrets_in_values_and_keys_are_masked_and_the_json_stays_valid(text, capsys):
    print_json({"content": text, text: [text, {"nested": text}], "n": 1})
    out = capsys.readouterr().out
    data = json.loads(out)
    for secret in ("sk-proj-abcdefghijklmnop", "hunter2", "s3cret", "abc123", "abc.def.ghi"):
        assert secret not in out
    assert data["n"] == 1 and len(data) == 3


@given(
    st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=8)
)
def test_any_json_data_prints_as_valid_json(data):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_json({"payload": data, "key=": "value=x", "tail": "a=b"})
    json.loads(out.getvalue())


def test_values_under_secret_named_keys_are_masked_at_any_depth(capsys):
    # A job payload or a header list holds the secret as a plain value: the key tells.
    print_json(
        {
            "payload": {"smtp": {"password": "S3cretPw", "port": 25}, "api_key": 12345678},
            "headers": [("Authorization", "S3cretTok"), ("Accept", "json")],
            "scopes": ["auth", "billing"],
            "user": "ann",
        }
    )
    out = capsys.readouterr().out
    assert "S3cret" not in out and "12345678" not in out
    data = json.loads(out)
    assert data["payload"]["smtp"] == {"password": "***", "port": 25}
    assert data["headers"] == [["Authorization", "***"], ["Accept", "json"]]
    assert data["scopes"] == ["auth", "billing"]  # a plain list of words is not a pair
    assert data["user"] == "ann"


def test_a_json_line_stays_valid_json_with_a_secret_in_a_value(capsys):
    print_json_line({"msg": "password=S3cretPw", "n": 1})
    line = capsys.readouterr().out
    assert json.loads(line) == {"msg": "password=***", "n": 1}


def test_bags_of_secrets_and_names_with_spaces_are_masked_whole(capsys):
    print_json(
        {
            "secrets": {"db": "S3cretDb", "smtp": ["S3cretSmtp"]},
            "aws_credentials": {"id": "AKIDEXAMPLE", "key": "S3cretAws"},
            "creds": "S3cretCreds",
            "api key": "S3cretKey",
            "headers": [("Client Secret", "S3cretClient")],
            "credentials_count": 2,
            "usage": {"max_tokens": 1024, "output_tokens": 7},
            # Flattened config keys, plurals, other separators.
            "spring.datasource.password": "S3cretSpring",
            "secrets.db": "S3cretDotted",
            "api_keys": ["S3cretK1", "S3cretK2"],
            "password:": "S3cretColon",
            "api\tkey": "S3cretTab",
            # Name/value entries: environment lists, headers as records.
            "env": [{"name": "DB_PASSWORD", "value": "S3cretEnv"}, {"name": "HOME", "value": "/root"}],
            "har": [{"name": "Authorization", "value": "S3cretHar", "comment": ""}],
            # Headers read back from JSON (pairs as lists); cookie lists.
            "header_list": [["X-Api-Key", "S3cretList"], ["Accept", "json"], "plain"],
            "Env": [{"Name": "PGPASSWORD", "Value": "S3cretCased"}],
            "old_passwords": ["S3cretOld"],
            "credential": "S3cretSingular",
            "prod.secrets": {"db": "S3cretLastPart"},
            "cookies": [{"name": "sessionid", "value": "S3cretCookie"}],
            # A preference record (key/value) named like a secret holds no secret: it prints.
            "preference": {"key": "auth", "value": "sso"},
        }
    )
    out = capsys.readouterr().out
    assert "S3cret" not in out and "AKIDEXAMPLE" not in out
    data = json.loads(out)
    assert data["secrets"] == data["aws_credentials"] == data["creds"] == data["api key"] == "***"
    assert data["headers"] == [["Client Secret", "***"]]
    assert data["credentials_count"] == 2
    assert data["usage"] == {"max_tokens": 1024, "output_tokens": 7}  # counts, not secrets
    assert data["api_keys"] == data["secrets.db"] == data["spring.datasource.password"] == "***"
    assert data["env"] == [{"name": "DB_PASSWORD", "value": "***"}, {"name": "HOME", "value": "/root"}]
    assert data["har"][0]["value"] == "***"
    assert data["preference"] == {"key": "auth", "value": "sso"}
    assert data["header_list"] == [["X-Api-Key", "***"], ["Accept", "json"], "plain"]
    assert data["Env"] == [{"Name": "PGPASSWORD", "Value": "***"}]
    assert data["old_passwords"] == data["credential"] == data["prod.secrets"] == "***"
    assert data["cookies"] == "***"
