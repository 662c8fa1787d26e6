"""Provider credentials: encrypted at rest with Fernet, per user and provider, never shown in clear."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

import mosaic_storage as ms
from mosaic_agent import (
    AgentConfig,
    AllProvidersFailed,
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


def _copy_row(store, source_user, source_provider, target_user, target_provider):
    from mosaic_storage.schema import ProviderCredential

    table = ProviderCredential.__table__
    with store.engine.begin() as conn:
        token = conn.execute(
            sa.select(table.c.encrypted_secret).where(
                (table.c.user_id == source_user) & (table.c.provider == source_provider)
            )
        ).scalar_one()
        conn.execute(
            sa.update(table)
            .where((table.c.user_id == target_user) & (table.c.provider == target_provider))
            .values(encrypted_secret=token)
        )


def test_a_ciphertext_copied_to_another_users_row_is_refused(users):
    store, ann, bob = users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    creds.set(ann, "openai", PLAIN)
    creds.set(bob, "openai", "sk-bob-own-key-000000")
    _copy_row(store, ann, "openai", bob, "openai")
    with pytest.raises(CredentialError, match="another user") as info:
        creds.get(bob, "openai")
    assert PLAIN not in str(info.value) and PLAIN not in repr(info.value)
    assert creds.get(ann, "openai").reveal() == PLAIN


def test_a_ciphertext_copied_to_another_provider_is_refused(sqlite_users):
    store, ann, _ = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    creds.set(ann, "cheap", "sk-cheap-key-1111")
    creds.set(ann, "costly", "sk-costly-key-2222")
    _copy_row(store, ann, "costly", ann, "cheap")
    with pytest.raises(CredentialError, match="another user, provider or name"):
        creds.get(ann, "cheap")


def test_a_row_in_the_unbound_format_is_refused(sqlite_users):
    from mosaic_storage.schema import ProviderCredential

    store, ann, _ = sqlite_users
    key = generate_secret_key()
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": key})
    creds.set(ann, "openai", "sk-placeholder-0000")
    table = ProviderCredential.__table__
    with store.engine.begin() as conn:
        conn.execute(sa.update(table).values(encrypted_secret=Fernet(key.encode()).encrypt(PLAIN.encode())))
    with pytest.raises(CredentialError, match="older or unknown format") as info:
        creds.get(ann, "openai")
    assert PLAIN not in str(info.value)
    assert info.value.__context__ is None  # a JSONDecodeError would hold the decrypted text


def test_the_rotation_hint_names_the_new_key_first(sqlite_users):
    store, ann, _ = sqlite_users
    ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()}).set(ann, "p", PLAIN)
    with pytest.raises(CredentialError) as info:
        ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()}).get(ann, "p")
    assert "NEW,OLD" in str(info.value) and "first key encrypts" in str(info.value)


def test_a_key_that_cannot_be_a_header_is_not_stored(sqlite_users):
    store, ann, _ = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    with pytest.raises(CredentialError, match="not shown") as info:
        creds.set(ann, "p", "clé-secrète-99")
    assert "secrète" not in str(info.value)
    assert creds.get(ann, "p") is None
    creds.set(ann, "p", f"  {PLAIN}\n")
    assert creds.get(ann, "p").reveal() == PLAIN


def test_without_fallback_to_env_a_user_without_a_credential_gets_no_key(sqlite_users):
    store, ann, bob = sqlite_users
    creds = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    creds.set(ann, "local", PLAIN)
    provider = AgentConfig.from_dict(
        {"providers": {"local": {"type": "openai", "api_key_env": "LOCAL_KEY"}}}
    ).providers["local"]
    env = {"LOCAL_KEY": "sk-operator-key-5555"}
    kwargs = {"credentials": creds, "env": env, "fallback_to_env": False}
    assert resolve_api_key(provider, user_id=ann, **kwargs).reveal() == PLAIN
    assert resolve_api_key(provider, user_id=bob, **kwargs) is None


def test_an_unusable_stored_credential_fails_only_its_provider(sqlite_users, openai_server):
    store, ann, _ = sqlite_users
    ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()}).set(ann, "vault", PLAIN)
    rotated = ProviderCredentials(store, env={"MOSAIC_SECRET_KEY": generate_secret_key()})
    config = AgentConfig.from_dict(
        {
            "providers": {
                "vault": {"type": "openai", "base_url": openai_server.base_url, "models": ["m1"]},
                "env": {
                    "type": "openai",
                    "base_url": openai_server.base_url,
                    "api_key_env": "ENV_KEY",
                    "models": ["m2"],
                },
            },
            "routing": {"aliases": {"both": ["vault/m1", "env/m2"], "vault_only": ["vault/m1"]}},
        }
    )
    openai_server.push(openai_server.text("from env"))
    with Router.from_config(config, user_id=ann, credentials=rotated, env={"ENV_KEY": "sk-env-1"}) as r:
        answer = r.chat([Message.user("hi")], model="both")
        assert (answer.provider, answer.content) == ("env", "from env")
        assert "cannot be decrypted" in answer.attempts[0].error
        with pytest.raises(AllProvidersFailed, match="cannot be decrypted"):
            r.chat([Message.user("hi")], model="vault_only")
        assert {s.provider: s.probe.status for s in r.status(timeout=1)}["vault"] == "error"
    assert len(openai_server.chat_requests) == 1
