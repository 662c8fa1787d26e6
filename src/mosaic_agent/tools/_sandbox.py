"""The workspace sandbox: file access confined to one directory, whatever path a model sends.

Every path is checked as text first (relative, no ``..``, no NUL or control characters, not too
long) and then opened one component at a time from a descriptor of the workspace root, each
with ``O_NOFOLLOW`` (directories also ``O_DIRECTORY``). Nothing is checked and then opened
by name again, so a symlink swapped in after the check is met by the open itself and refused.

Hard links cannot be told apart from the name they were made from: a file with more than one
link may be another name of a file outside the workspace. Such files are neither read nor
written. Writes go to a new file in the same directory that is then renamed over the target,
so even a link that appears after the check is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mosaic_storage.brain import workspace_path

from ._config import ToolsConfig
from ._registry import ToolError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_COMPONENT_BYTES = 255
_MAX_DEPTH = 64
MAX_LIST_ENTRIES = 1000
MAX_SEARCH_MATCHES = 200
MAX_SEARCH_FILES = 20_000
# A search also stops after this many directory entries (directories count), bytes read or seconds.
MAX_SEARCH_ENTRIES = 50_000
MAX_SEARCH_BYTES = 64 * 1024 * 1024
SEARCH_TIME_LIMIT = 10.0


class SandboxError(ToolError):
    """A path or command was refused because it could reach outside the workspace."""


class Workspace:
    """One directory a session's tools may read and write, and nothing outside it.

    Args:
        root: the workspace directory; it must exist. Symlinks in ``root`` itself are resolved
            once, here; below it none is ever followed.
        config: limits (file size, path length).
    """

    def __init__(self, root: str | Path, *, config: ToolsConfig | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise ToolError(f"workspace {self.root} is not a directory; create it first")
        self.config = config or ToolsConfig()

    @classmethod
    def for_owner(
        cls,
        root: str | Path,
        *,
        user_id: str | None = None,
        team_id: str | None = None,
        config: ToolsConfig | None = None,
    ) -> Workspace:
        """The workspace ``root/users/<user_id>`` or ``root/teams/<team_id>``, created if missing.

        Use `mosaic_storage.brain.Workspaces.path` first when the acting user must be checked
        against the store (a team's workspace is for its members only).
        """
        path = workspace_path(root, user_id=user_id, team_id=team_id)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path, config=config)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- paths -----------------------------------------------------------------------------

    def parts(self, path: str) -> list[str]:
        """The components of a workspace-relative ``path``, or `SandboxError` saying why it is refused."""
        if not isinstance(path, str):
            raise SandboxError("a path must be a string")
        if "\x00" in path:
            raise SandboxError("the path contains a NUL byte; give a plain relative path")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
            raise SandboxError("the path contains control characters; give a plain relative path")
        limit = self.config.max_path_length
        if len(path) > limit:
            raise SandboxError(f"the path is {len(path)} characters long; the limit is {limit}")
        if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
            raise SandboxError(
                f"absolute paths are not allowed ({path[:80]!r}); give a path relative to the workspace"
            )
        if path.startswith("~"):
            raise SandboxError("'~' is not expanded; give a path relative to the workspace")
        parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
        if ".." in parts:
            raise SandboxError(f"'..' is not allowed in paths ({path[:80]!r}); stay inside the workspace")
        for part in parts:
            if len(part.encode("utf-8", "surrogatepass")) > _MAX_COMPONENT_BYTES:
                raise SandboxError(f"a path component is longer than {_MAX_COMPONENT_BYTES} bytes")
        if len(parts) > _MAX_DEPTH:
            raise SandboxError(f"the path is more than {_MAX_DEPTH} directories deep")
        return parts

    @contextlib.contextmanager
    def _directory(self, parts: list[str], *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``parts`` names, reached without following any symlink."""
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except OSError:
            raise SandboxError(
                "the workspace directory is missing or was replaced; start a new session"
            ) from None
        try:
            for depth, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise SandboxError(f"{_show(parts[: depth + 1])!r} does not exist") from None
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    child = self._open_dir_again(fd, part, parts[: depth + 1])
                except OSError as err:
                    raise self._refusal(fd, part, parts[: depth + 1], err) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _open_dir_again(self, fd: int, part: str, shown: list[str]) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as err:
            raise self._refusal(fd, part, shown, err) from None

    def _refusal(self, fd: int, part: str, shown: list[str], err: OSError) -> SandboxError:
        try:
            mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode) or err.errno == errno.ELOOP:
            return SandboxError(f"{_show(shown)!r} is a symlink; workspace tools never follow symlinks")
        if err.errno == errno.ENOTDIR or (mode and not stat.S_ISDIR(mode)):
            return SandboxError(f"{_show(shown)!r} is not a directory")
        if err.errno == errno.EACCES:
            return SandboxError(f"{_show(shown)!r}: permission denied")
        return SandboxError(f"{_show(shown)!r} cannot be opened ({os.strerror(err.errno or 0)})")

    def _open_file(self, dir_fd: int, name: str, shown: list[str]) -> int:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise SandboxError(f"{_show(shown)!r} does not exist") from None
        except OSError as err:
            raise self._refusal(dir_fd, name, shown, err) from None
        try:
            self._check_file(os.fstat(fd), shown)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read(self, fd: int) -> bytes:
        """At most ``max_file_bytes + 1`` bytes of an open file, then close it."""
        # os.read with the size fstat gave: a buffered read(n) would allocate n bytes up front.
        try:
            left = self.config.max_file_bytes + 1
            chunks = []
            size = min(os.fstat(fd).st_size + 1, left)
            while left > 0:
                chunk = os.read(fd, max(min(size, left), 1))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
                size = 65536
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _check_file(self, st: os.stat_result, shown: list[str], *, check_size: bool = True) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise SandboxError(f"{_show(shown)!r} is a directory; use list_dir")
        if not stat.S_ISREG(st.st_mode):
            raise SandboxError(f"{_show(shown)!r} is not a regular file")
        if st.st_nlink > 1:
            raise SandboxError(
                f"{_show(shown)!r} has {st.st_nlink} hard links; a hard-linked file may be another "
                "name of a file outside the workspace, so it is neither read nor written"
            )
        if check_size and st.st_size > self.config.max_file_bytes:
            raise SandboxError(
                f"{_show(shown)!r} is {st.st_size} bytes; files over {self.config.max_file_bytes} bytes "
                "are not read whole: use search_files to find what you need"
            )

    # -- operations ------------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        """The contents of a regular, singly linked file inside the workspace."""
        parts = self.parts(path)
        if not parts:
            raise SandboxError("give the path of a file, not the workspace itself")
        with self._directory(parts[:-1]) as dir_fd:
            data = self._read(self._open_file(dir_fd, parts[-1], parts))
        if len(data) > self.config.max_file_bytes:
            raise SandboxError(f"{_show(parts)!r} grew past {self.config.max_file_bytes} bytes while read")
        return data

    def read_text(self, path: str) -> str:
        """The contents of a UTF-8 text file inside the workspace."""
        data = self.read_bytes(path)
        if b"\x00" in data:
            raise SandboxError(f"{path!r} looks like a binary file; only text files are read")
        return data.decode("utf-8", "replace")

    def write_bytes(self, path: str, data: bytes) -> int:
        """Replace (or create) a file inside the workspace with ``data``, all or nothing; returns its size."""
        parts = self.parts(path)
        if not parts:
            raise SandboxError("give the path of a file, not the workspace itself")
        if any(part.lower() == ".git" for part in parts):
            raise SandboxError("files under .git are not written by tools (hooks and config run code)")
        if len(data) > self.config.max_file_bytes:
            raise SandboxError(
                f"the content is {len(data)} bytes; "
                f"files over {self.config.max_file_bytes} bytes are not written"
            )
        with self._directory(parts[:-1], create=True) as dir_fd:
            name = parts[-1]
            mode = 0o644
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                if stat.S_ISLNK(st.st_mode):
                    raise SandboxError(
                        f"{_show(parts)!r} is a symlink; workspace tools never follow symlinks"
                    )
                self._check_file(st, parts, check_size=False)
                mode = stat.S_IMODE(st.st_mode)
            tmp = f".mosaic-{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, _NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                # Renaming replaces the name: a symlink or hard link put there since the check
                # is replaced itself, and nothing is written through it.
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
        return len(data)

    def list_dir(self, path: str = ".") -> dict[str, Any]:
        """The entries of a directory: name, type (file, dir, symlink, other) and size of files."""
        parts = self.parts(path)
        entries: list[dict[str, Any]] = []
        truncated = False
        with self._directory(parts) as dir_fd, os.scandir(dir_fd) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if len(entries) >= MAX_LIST_ENTRIES:
                    truncated = True
                    break
                st = entry.stat(follow_symlinks=False)
                kind = _kind(st.st_mode)
                item: dict[str, Any] = {"name": entry.name, "type": kind}
                if kind == "file":
                    item["size"] = st.st_size
                entries.append(item)
        return {"path": _show(parts), "entries": entries, "truncated": truncated}

    def search(
        self,
        text: str,
        path: str = ".",
        *,
        ignore_case: bool = False,
        max_entries: int = MAX_SEARCH_ENTRIES,
        max_bytes: int = MAX_SEARCH_BYTES,
        time_limit: float = SEARCH_TIME_LIMIT,
    ) -> dict[str, Any]:
        """Lines of text files under ``path`` that contain ``text`` (no regex); ``.git`` is skipped.

        The search stops at the first limit it meets: `MAX_SEARCH_MATCHES` matches,
        `MAX_SEARCH_FILES` files, ``max_entries`` directory entries seen (directories count),
        ``max_bytes`` read or ``time_limit`` seconds. It then returns what it found with
        ``truncated`` true and ``stopped_by`` naming the limit (None when it searched everything).
        """
        if not text:
            raise ToolError("give a non-empty text to search for")
        parts = self.parts(path)
        needle = text.casefold() if ignore_case else text
        needle_bytes = text.encode("utf-8")
        matches: list[dict[str, Any]] = []
        skipped = scanned = entries = read = 0
        stopped_by: str | None = None
        deadline = time.monotonic() + time_limit

        def limit_hit() -> str | None:
            if len(matches) >= MAX_SEARCH_MATCHES:
                return f"{MAX_SEARCH_MATCHES} matches"
            if scanned > MAX_SEARCH_FILES:
                return f"{MAX_SEARCH_FILES} files"
            if entries > max_entries:
                return f"{max_entries} entries (files and directories)"
            if read > max_bytes:
                return f"{max_bytes} bytes read"
            if time.monotonic() > deadline:
                return f"{time_limit:g} s"
            return None

        with self._directory(parts) as dir_fd:
            for top, dirs, files, top_fd in os.fwalk(".", dir_fd=dir_fd, follow_symlinks=False):
                dirs[:] = sorted(d for d in dirs if d != ".git")
                entries += len(dirs) + len(files)
                stopped_by = limit_hit()
                if stopped_by:
                    break
                here = [*parts, *Path(top).parts]
                for name in sorted(files):
                    rel = [*here, name]
                    scanned += 1
                    stopped_by = limit_hit()
                    if stopped_by:
                        break
                    try:
                        fd = self._open_file(top_fd, name, rel)
                    except SandboxError:
                        skipped += 1
                        continue
                    data = self._read(fd)[: self.config.max_file_bytes]
                    read += len(data)
                    if b"\x00" in data:
                        skipped += 1
                        continue
                    if not ignore_case and needle_bytes not in data:
                        continue
                    content = data.decode("utf-8", "replace")
                    if ignore_case and needle not in content.casefold():
                        continue
                    for number, line in enumerate(content.splitlines(), 1):
                        haystack = line.casefold() if ignore_case else line
                        if needle in haystack:
                            matches.append({"path": _show(rel), "line": number, "text": line[:300]})
                            if len(matches) >= MAX_SEARCH_MATCHES:
                                break
                if stopped_by:
                    break
        if stopped_by is None and len(matches) >= MAX_SEARCH_MATCHES:
            stopped_by = f"{MAX_SEARCH_MATCHES} matches"
        return {
            "matches": matches,
            "skipped_files": skipped,
            "truncated": stopped_by is not None,
            "stopped_by": stopped_by,
        }


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _show(parts: list[str]) -> str:
    return "/".join(parts) or "."
