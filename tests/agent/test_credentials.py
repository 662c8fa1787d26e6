"""Provider credentials: encrypted at rest with Fernet, per user and provider, never shown in clear."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

import mosaic_storage as ms
from mosaic_agent import (
    AgentConfig,
    CredentialError,
    Message,
    ProviderCredentials,
    Router,
    Secret,
    generate_secret_key,
    resolve_api_key,
)
from mosaic_storage.brain import Brain

PLAIN = "sk-stored-PLAINTEXT-abcdef123456"


@pytest.fixture
def users(migrated_store):
    brain = Brain(migrated_store)
    return migrated_store, brain.users.create(name="ann").id, brain.users.create(name="bob").id


@pytest.fixture
def sqlite_users(sqlite_store):
    ms.upgrade(sqlite_store)
    brain = Brain(sqlite_store)
    return sqlite_store, brain.users.create(name="ann").id, brain.users.create(name="bob").id


def test_set_get_delete_per_user_and_provider_on_every_backend(users):
    store, ann, bob = users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    creds.set(ann, "openai", PLAIN)
    creds.set(ann, "claude", "sk-other-value-0000")
    assert creds.get(ann, "openai") == Secret(PLAIN)
    assert creds.get(ann, "openai").reveal() == PLAIN
    assert creds.get(bob, "openai") is None
    assert creds.providers(ann) == ("claude", "openai")
    creds.set(ann, "openai", "sk-replaced-value-1111")
    assert creds.get(ann, "openai").reveal() == "sk-replaced-value-1111"
    assert creds.delete(ann, "openai") is True
    assert creds.delete(ann, "openai") is False
    assert creds.get(ann, "openai") is None
    assert creds.providers(ann) == ("claude",)


def test_the_database_holds_only_ciphertext(sqlite_users):
    store, ann, _ = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    creds.set(ann, "openai", PLAIN)
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM provider_credentials")).mappings().one()
    assert PLAIN.encode() not in bytes(row["encrypted_secret"])
    assert PLAIN not in repr(dict(row))


def test_secrets_never_show_in_reprs_or_logs(sqlite_users, caplog):
    caplog.set_level(logging.DEBUG)
    store, ann, _ = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    creds.set(ann, "openai", PLAIN)
    secret = creds.get(ann, "openai")
    logging.getLogger("test").info("got %s / %r", secret, secret)
    for text in (repr(secret), str(secret), f"{secret}", repr(creds), caplog.text, ms.redact(f"key={PLAIN}")):
        assert PLAIN not in text


def test_a_missing_key_says_which_variable_to_set(sqlite_users):
    store, ann, _ = sqlite_users
    creds = ProviderCredentials(store, key_env="APP_CRED_KEY", env={})
    with pytest.raises(CredentialError) as info:
        creds.set(ann, "openai", PLAIN)
    assert "$APP_CRED_KEY is not set" in str(info.value)
    assert "Fernet.generate_key" in str(info.value)
    assert PLAIN not in str(info.value)


def test_a_malformed_key_is_refused_without_echoing_it(sqlite_users):
    store, ann, _ = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": "not-a-fernet-key-hunter2"})
    with pytest.raises(CredentialError) as info:
        creds.set(ann, "openai", PLAIN)
    assert "does not hold a Fernet key" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_wrong_key_is_a_clear_error_and_rotation_keeps_old_credentials(sqlite_users):
    store, ann, _ = sqlite_users
    old, new = generate_secret_key(), generate_secret_key()
    ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": old}).set(ann, "openai", PLAIN)
    with pytest.raises(CredentialError) as info:
        ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": new}).get(ann, "openai")
    assert "cannot be decrypted" in str(info.value) and PLAIN not in str(info.value)
    rotated = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": f"{new},{old}"})
    assert rotated.get(ann, "openai").reveal() == PLAIN
    rotated.set(ann, "openai", PLAIN)  # re-encrypted with the new key
    assert ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": new}).get(ann, "openai").reveal() == PLAIN


def test_a_credential_for_an_unknown_user_is_refused(sqlite_users):
    store, _, _ = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": Fernet.generate_key().decode()})
    with pytest.raises(CredentialError, match="does not exist"):
        creds.set("no-such-user", "openai", PLAIN)


def test_lookup_order_is_stored_credential_then_env_var(sqlite_users):
    store, ann, bob = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    creds.set(ann, "local", PLAIN)
    provider = AgentConfig.from_dict(
        {"providers": {"local": {"type": "openai", "api_key_env": "LOCAL_KEY", "models": ["m1"]}}}
    ).providers["local"]
    env = {"LOCAL_KEY": "sk-from-env-999999"}
    assert resolve_api_key(provider, user_id=ann, credentials=creds, env=env).reveal() == PLAIN
    assert resolve_api_key(provider, user_id=bob, credentials=creds, env=env).reveal() == "sk-from-env-999999"
    assert resolve_api_key(provider, user_id=bob, credentials=creds, env={}) is None


def test_the_router_sends_the_users_stored_key(sqlite_users, openai_server):
    store, ann, bob = sqlite_users
    key_env = {"VAULT_KEY": generate_secret_key()}
    config = AgentConfig.from_dict(
        {
            "providers": {
                "local": {
                    "type": "openai",
                    "base_url": openai_server.base_url,
                    "api_key_env": "LOCAL_KEY",
                    "models": ["m1"],
                }
            },
            "credentials_key_env": "VAULT_KEY",
        }
    )
    creds = ProviderCredentials(store, key_env=config.credentials_key_env, env=key_env)
    creds.set(ann, "local", PLAIN)
    openai_server.push(openai_server.text("for ann"), openai_server.text("for bob"))
    for user in (ann, bob):
        with Router.from_config(
            config, user_id=user, credentials=creds, env={"LOCAL_KEY": "sk-env-bob-77777"}
        ) as r:
            r.chat([Message.user("hi")])
    first, second = openai_server.chat_requests
    assert first.headers["authorization"] == f"Bearer {PLAIN}"
    assert second.headers["authorization"] == "Bearer sk-env-bob-77777"
