"""Run the real ``mosaic`` command in a subprocess, from this checkout's sources."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def mosaic(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``mosaic(*args, env=None, cwd=None)``: run the CLI, return the completed process."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "mosaic_cli", *args],
            capture_output=True,
            check=False,
            text=True,
            env=full_env,
            cwd=cwd or tmp_path,
            timeout=timeout,
            input=input,
        )

    return run
