"""`print_json`: every string redacted, and the output always valid JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mosaic_cli._output import print_json

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
