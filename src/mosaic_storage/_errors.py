"""The exceptions users catch: one base class and a few subclasses with actionable text."""

from __future__ import annotations

from ._redact import redact


class MosaicError(Exception):
    """Base class of every error the SDK raises on purpose.

    The message is redacted when the error is made, so no password or token from a
    URL can reach ``str()``, ``repr()``, a log line or ``--json`` output.
    """

    def __init__(self, message: str, *, remediation: str | None = None) -> None:
        self.message = redact(message)
        self.remediation = redact(remediation) if remediation else None
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.remediation:
            return f"{self.message}\n  -> {self.remediation}"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(MosaicError, ValueError):
    """The configuration is invalid: names the file, the field, the bad value and what is allowed."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        remediation: str | None = None,
    ) -> None:
        self.source = source
        self.field = field
        where = ", ".join(part for part in (source, f"field {field!r}" if field else None) if part)
        super().__init__(f"{where}: {message}" if where else message, remediation=remediation)


class MissingExtraError(MosaicError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{purpose} needs the {module!r} package, which is not installed.",
            remediation=f"pip install 'mosaic-stack[{extra}]'",
        )


class TierDetectionError(MosaicError):
    """A service the configured tier needs is missing or unreachable."""

    def __init__(self, message: str, *, service: str, remediation: str) -> None:
        self.service = service
        super().__init__(f"{service}: {message}", remediation=remediation)


class SchemaError(MosaicError):
    """The database schema is not what this version of the SDK expects."""


class MigrationError(MosaicError):
    """Moving data between tiers failed; nothing after the last committed batch was written."""


class AccessDenied(MosaicError, PermissionError):
    """The acting user may not do this."""


class ConflictError(MosaicError):
    """The record changed since it was read, or the change contradicts a rule; nothing was written."""
