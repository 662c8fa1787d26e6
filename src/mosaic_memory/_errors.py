"""Errors memory adds to the `mosaic_storage.MosaicError` hierarchy."""

from __future__ import annotations

from mosaic_storage import MosaicError, SchemaError


class NotFoundError(MosaicError, LookupError):
    """No such record for this user (records of other users are never found)."""


class EmbedderMismatchError(SchemaError):
    """The store's vectors were made by another embedder (name or dimension); they cannot be compared."""

    def __init__(
        self, message: str, *, stored_name: str | None, stored_dim: int, name: str, dim: int
    ) -> None:
        self.stored_name = stored_name
        self.stored_dim = stored_dim
        self.name = name
        self.dim = dim
        super().__init__(
            message,
            remediation=(
                f"open it with the embedder it was built with "
                f"({stored_name or 'unknown'}, dim {stored_dim}), "
                f"or re-embed every insight with the new one: `mosaic memory reembed` "
                f"(mosaic_memory.reembed(store, embedder)); re-embedding rewrites all vectors"
            ),
        )


class SummarizationError(MosaicError):
    """A summarization run failed for some users; their logs stay unsummarized for the next run."""
