"""Printing: rich for people, JSON for scripts, errors redacted, exit codes as documented."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mosaic_storage import ConfigError, MosaicError, redact, redact_data

# Exit codes, documented in docs/cli.md.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def print_json(data: Any) -> None:
    """Print one JSON document on stdout, redacted (`mosaic_storage.redact_data`).

    Each string (keys too) is redacted before encoding, never the encoded text: a pattern
    such as ``KEY=value`` would run on into the closing quote and break the JSON.
    """
    text = json.dumps(redact_data(data), indent=2, default=lambda value: redact(str(value)))
    sys.stdout.write(text + "\n")


def print_json_line(data: Any) -> None:
    """One compact JSON document on its own line (JSON Lines), redacted, flushed at once."""
    # Not redacted again once encoded: a KEY=value pattern would run into the closing quote.
    text = json.dumps(redact_data(data), default=lambda value: redact(str(value)))
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def fail(message: str, *, code: int = EXIT_FAILURE, remediation: str | None = None) -> NoReturn:
    """Print an error (redacted) on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False)
    if remediation:
        err_console.print(f"  -> {escape(redact(remediation))}", highlight=False)
    raise typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into a redacted message and an exit code: 2 for config, 1 otherwise."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigError as err:
            fail(err.message, code=EXIT_USAGE, remediation=err.remediation)
        except MosaicError as err:
            fail(err.message, remediation=err.remediation)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as err:
            # Never a traceback: a bug or an unexpected driver error still prints one redacted line.
            fail(
                f"unexpected {type(err).__name__}: {err}",
                remediation="please report this at https://github.com/mosaic-stack/mosaic-stack-python/issues",
            )

    return wrapper
