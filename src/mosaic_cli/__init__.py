"""The ``mosaic`` command: a thin skin over the library; it parses, calls and prints."""

from __future__ import annotations

from ._app import app, main

__all__ = ["app", "main"]
