"""Options every command group shares, and opening the store they name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import mosaic_storage as ms

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to mosaic.config.json (default: searched for)."),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Storage URL to use instead of the config (sqlite:///, postgresql://, embedded://)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def open_named_store(config: Path | None, url: str | None) -> ms.Store:
    """The store ``--url`` names, else the one the config (``--config`` or found) names."""
    if url is not None:
        return ms.open_store(url)
    return ms.open_store(ms.load_config(config))
