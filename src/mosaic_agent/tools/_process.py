"""Running one program for a tool: argv only (no shell), a scrubbed environment, a deadline, capped output."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def scrubbed_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment a tool's program sees: no variable of this process is passed on."""
    env = {"PATH": SAFE_PATH, "HOME": str(home), "PWD": str(home), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(extra or {})
    return env


@attrs.frozen
class Completed:
    """What a program did: exit code (None if it was killed), its output, and why it was stopped."""

    exit_code: int | None
    output: bytes
    timed_out: bool
    overflowed: bool


def run(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float, max_output_bytes: int
) -> Completed:
    """Run ``argv`` (stdout and stderr merged, stdin empty); kill its process group at the deadline or cap.

    Raises:
        OSError: the program could not be started.
    """
    proc = subprocess.Popen(  # noqa: S603 - argv from an allowlist, never a shell
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    timed_out = overflowed = False
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not selector.select(min(left, 0.5)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_output_bytes:
                overflowed = True
                break
    if timed_out or overflowed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.stdout.close()
    try:
        exit_code: int | None = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired:
        # It closed its output but keeps running: stop it all the same.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        timed_out = True
    if timed_out or overflowed:
        exit_code = None
    return Completed(exit_code, b"".join(chunks)[:max_output_bytes], timed_out, overflowed)
