"""Lazy imports of optional dependencies, with an error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from ._errors import MissingExtraError


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise `MissingExtraError` naming ``pip install 'mosaic-stack[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = err.name or module
        if missing.split(".")[0] != module.split(".", maxsplit=1)[0]:
            raise
        raise MissingExtraError(module.split(".", maxsplit=1)[0], extra, purpose) from None
