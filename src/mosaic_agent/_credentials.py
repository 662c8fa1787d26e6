"""Provider credentials per user, encrypted at rest with Fernet; a key from an environment variable."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mosaic_storage._extras import require
from mosaic_storage._redact import remember_secret

from ._config import DEFAULT_KEY_ENV, ProviderConfig
from ._errors import CredentialError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from mosaic_storage import Store


def _table() -> sa.Table:
    # The ORM schema loads on first use, so `import mosaic_agent` stays light.
    from mosaic_storage.schema import ProviderCredential

    table: sa.Table = ProviderCredential.__table__  # type: ignore[assignment]
    return table


# The encrypted payload names the row it belongs to, so a ciphertext copied to another user's
# (or provider's) row does not decrypt there: Fernet has no associated data, so it is inside.
_PAYLOAD_PREFIX = b"mosaic-credential-v2\n"

_GENERATE = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class Secret:
    """A secret string that never shows itself in ``repr``/``str``; `reveal` hands out the text."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        remember_secret(value)
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(other._value.encode(), self._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def generate_secret_key() -> str:
    """A new Fernet key for ``MOSAIC_SECRET_KEY`` (keep it: credentials stored with it need it)."""
    fernet = require("cryptography.fernet", extra="agent", purpose="Encrypted provider credentials")
    return str(fernet.Fernet.generate_key().decode())


class ProviderCredentials:
    """Set, get and delete a user's provider keys in ``provider_credentials``, encrypted with Fernet.

    The key comes from the environment variable ``key_env`` (``MOSAIC_SECRET_KEY`` unless the
    config's ``agent.credentials_key_env`` names another). Several comma-separated keys rotate
    (``NEW,OLD``): the first encrypts, any decrypts. A missing or wrong key raises
    `CredentialError`; the plaintext never reaches a repr, an error or a log line.

    Each ciphertext holds the user id, provider and name of its row: one copied to another
    row (by someone who can write the database but lacks the key) raises `CredentialError`
    instead of handing one user's key to another.
    """

    def __init__(
        self, store: Store, *, key_env: str = DEFAULT_KEY_ENV, env: Mapping[str, str] | None = None
    ) -> None:
        self._engine = store.engine
        self._key_env = key_env
        self._env = os.environ if env is None else env
        self._fernet: Any = None

    def __repr__(self) -> str:
        return f"ProviderCredentials(key_env={self._key_env!r})"

    def _cipher(self) -> Any:
        if self._fernet is not None:
            return self._fernet
        fernet = require("cryptography.fernet", extra="agent", purpose="Encrypted provider credentials")
        raw = self._env.get(self._key_env, "")
        keys = [part.strip() for part in raw.split(",") if part.strip()]
        if not keys:
            raise CredentialError(
                f"no encryption key for provider credentials: ${self._key_env} is not set",
                remediation=f"export {self._key_env}=$({_GENERATE}) and keep it safe",
            )
        try:
            for key in keys:
                remember_secret(key)
            ciphers = [fernet.Fernet(key.encode()) for key in keys]
        except (ValueError, TypeError):
            raise CredentialError(
                f"${self._key_env} does not hold a Fernet key (32 url-safe base64-encoded bytes); "
                "the value is not shown",
                remediation=f"generate one with {_GENERATE}",
            ) from None
        self._fernet = fernet.MultiFernet(ciphers)
        return self._fernet

    def set(self, user_id: str, provider: str, secret: str, *, name: str = "default") -> None:
        """Store (or replace) ``user_id``'s key for ``provider``, encrypted."""
        import sqlalchemy as sa

        from mosaic_storage._types import utcnow

        if not isinstance(secret, str) or not secret.strip():
            raise CredentialError("a credential must be a non-empty string")
        remember_secret(secret)
        from ._http import check_api_key

        secret = check_api_key(secret, provider=provider) or ""
        remember_secret(secret)
        payload = json.dumps({"user_id": user_id, "provider": provider, "name": name, "secret": secret})
        token = self._cipher().encrypt(_PAYLOAD_PREFIX + payload.encode())
        table = _table()
        where = (table.c.user_id == user_id) & (table.c.provider == provider) & (table.c.name == name)
        try:
            with self._engine.begin() as conn:
                updated = conn.execute(
                    sa.update(table).where(where).values(encrypted_secret=token, updated_at=utcnow())
                ).rowcount
                if not updated:
                    conn.execute(
                        sa.insert(table).values(
                            id=_new_id(),
                            user_id=user_id,
                            provider=provider,
                            name=name,
                            encrypted_secret=token,
                            metadata={},
                            created_at=utcnow(),
                            updated_at=utcnow(),
                        )
                    )
        except sa.exc.IntegrityError:
            raise CredentialError(
                f"cannot store a credential for user {user_id!r}: the user does not exist, "
                "or another writer stored one at the same moment",
                remediation="create the user first, or retry",
            ) from None

    def get(self, user_id: str, provider: str, *, name: str = "default") -> Secret | None:
        """``user_id``'s key for ``provider`` (a `Secret`), or None when none is stored."""
        import sqlalchemy as sa

        table = _table()
        with self._engine.connect() as conn:
            token = conn.execute(
                sa.select(table.c.encrypted_secret).where(
                    (table.c.user_id == user_id) & (table.c.provider == provider) & (table.c.name == name)
                )
            ).scalar_one_or_none()
        if token is None:
            return None
        fernet = require("cryptography.fernet", extra="agent", purpose="Encrypted provider credentials")
        try:
            plain = self._cipher().decrypt(bytes(token))
        except fernet.InvalidToken:
            raise CredentialError(
                f"the stored credential for provider {provider!r} cannot be decrypted with the key in "
                f"${self._key_env}: the key changed, or the row was altered",
                remediation=f"set ${self._key_env} to NEW,OLD (the first key encrypts, any key "
                "decrypts) with OLD the key it was stored with, or store the credential again",
            ) from None
        return Secret(self._unwrap(plain, user_id, provider, name))

    def _unwrap(self, plain: bytes, user_id: str, provider: str, name: str) -> str:
        """The secret in a decrypted payload, after checking it was written for this very row."""
        secret: str | None
        try:
            if not plain.startswith(_PAYLOAD_PREFIX):
                raise ValueError
            data = json.loads(plain[len(_PAYLOAD_PREFIX) :])
            bound = (data["user_id"], data["provider"], data["name"])
            secret = data["secret"]
            if not isinstance(secret, str):
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):
            secret = None
        if secret is None:
            # Outside the handler: a JSONDecodeError would hold the decrypted text (.doc).
            raise CredentialError(
                f"the stored credential for provider {provider!r} is in an older or unknown format",
                remediation="store the credential again (mosaic agent credentials set)",
            )
        remember_secret(secret)
        if bound != (user_id, provider, name):
            raise CredentialError(
                f"the stored credential for provider {provider!r} was written for another user, "
                "provider or name: the row was copied or altered, so it is not used",
                remediation="store the credential again for this user, and check who can write "
                "the provider_credentials table",
            )
        return secret

    def delete(self, user_id: str, provider: str, *, name: str = "default") -> bool:
        """Remove the credential; True when one was there."""
        import sqlalchemy as sa

        table = _table()
        with self._engine.begin() as conn:
            deleted = conn.execute(
                sa.delete(table).where(
                    (table.c.user_id == user_id) & (table.c.provider == provider) & (table.c.name == name)
                )
            ).rowcount
        return bool(deleted)

    def providers(self, user_id: str) -> tuple[str, ...]:
        """The providers ``user_id`` has stored credentials for (names only)."""
        import sqlalchemy as sa

        table = _table()
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.provider)
                .where(table.c.user_id == user_id)
                .distinct()
                .order_by(table.c.provider)
            )
            return tuple(str(row[0]) for row in rows)


def _new_id() -> str:
    from mosaic_storage import new_id

    return new_id()


def resolve_api_key(
    provider: ProviderConfig,
    *,
    user_id: str | None = None,
    credentials: ProviderCredentials | None = None,
    env: Mapping[str, str] | None = None,
    fallback_to_env: bool = True,
) -> Secret | None:
    """The key for ``provider``: the user's stored credential first, then ``$api_key_env``; else None.

    With ``fallback_to_env=False`` and a user given, a user without a stored credential gets
    None rather than the operator's key from the environment (for multi-tenant apps).
    """
    if credentials is not None and user_id is not None:
        stored = credentials.get(user_id, provider.name)
        if stored is not None:
            return stored
    if user_id is not None and not fallback_to_env:
        return None
    environ = os.environ if env is None else env
    if provider.api_key_env:
        value = environ.get(provider.api_key_env)
        if value:
            return Secret(value)
    return None
