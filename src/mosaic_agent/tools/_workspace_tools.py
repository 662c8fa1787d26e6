"""Workspace tools: files, git and an allowlisted shell, all confined to one `Workspace`."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from ._config import ToolsConfig
from ._process import SAFE_PATH, Completed, run, scrubbed_env
from ._registry import ToolError, ToolSet
from ._sandbox import SandboxError, Workspace

# No shell runs, so these would be passed on literally; refusing them tells the model at once
# that pipes, redirects, substitution and chaining do not exist here.
_METACHARACTERS = frozenset(";|&$`<>\n\r")
_MAX_ARGS = 64
_MAX_ARG_CHARS = 4096
_MAX_SCAN_ENTRIES = 100_000

# Git reads no system or global config, runs no hooks, no fsmonitor, no external diff or
# textconv program, no pager, and talks to no remote.
_GIT_OPTIONS = (
    "--no-pager",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.pager=cat",
    "-c", "diff.external=",
    "-c", "protocol.allow=never",
    "-c", "commit.gpgsign=false",
    "-c", "submodule.recurse=false",
)  # fmt: skip


class WorkspaceTools(ToolSet):
    """Tools over one workspace: read, write, list and search files; git; an allowlisted shell.

    Args:
        workspace: the directory the tools are confined to.
        config: the shell allowlist, timeouts and size limits (default: `ToolsConfig()`).
        author: the name and email git commits are made with.
    """

    group = "workspace"
    names = (
        "read_file",
        "write_file",
        "list_dir",
        "search_files",
        "git_status",
        "git_diff",
        "git_log",
        "git_commit",
        "shell",
    )

    def __init__(
        self,
        workspace: Workspace,
        config: ToolsConfig | None = None,
        *,
        author: tuple[str, str] = ("Mosaic agent", "agent@mosaic.invalid"),
    ) -> None:
        self.workspace = workspace
        self.config = config or workspace.config
        self.author = author

    def read_file(self, path: str) -> str:
        """Read a text file of the workspace.

        Args:
            path: the file, relative to the workspace root (for example "notes/todo.md").
        """
        return self.workspace.read_text(path)

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        """Create or replace a text file in the workspace (missing directories are created).

        Args:
            path: the file, relative to the workspace root.
            content: the whole new content of the file.
        """
        size = self.workspace.write_bytes(path, content.encode("utf-8"))
        return {"path": "/".join(self.workspace.parts(path)), "bytes": size}

    def list_dir(self, path: str = ".") -> dict[str, Any]:
        """List a directory of the workspace: each entry's name, type and size.

        Args:
            path: the directory, relative to the workspace root ("." is the root).
        """
        return self.workspace.list_dir(path)

    def search_files(self, text: str, path: str = ".", ignore_case: bool = False) -> dict[str, Any]:
        """Find the lines of text files that contain a text (plain text, not a regex).

        A search stops at its limits (200 matches, files, entries, bytes read, 10 s) and then
        says which in stopped_by; narrow the path to search the rest.

        Args:
            text: what to look for.
            path: the directory to search, relative to the workspace root.
            ignore_case: match regardless of case.
        """
        return self.workspace.search(text, path, ignore_case=ignore_case)

    # -- git ---------------------------------------------------------------------------------

    def git_status(self) -> str:
        """Show the git status of the workspace (branch, changed and untracked files)."""
        return self._git("status", "--porcelain=v1", "--branch")

    def git_diff(self, staged: bool = False, path: str | None = None) -> str:
        """Show the changes of the workspace's git repository.

        Args:
            staged: show the changes staged for the next commit instead of unstaged ones.
            path: limit the diff to this file or directory.
        """
        args = ["diff", "--no-ext-diff", "--no-textconv"]
        if staged:
            args.append("--cached")
        if path is not None:
            args += ["--", self._git_path(path)]
        return self._git(*args) or "(no changes)"

    def git_log(self, limit: int = 10) -> str:
        """Show the latest commits: hash, author, date and subject.

        Args:
            limit: how many commits, 1 to 100.
        """
        if not 1 <= limit <= 100:
            raise ToolError("limit must be between 1 and 100")
        return self._git(
            "log",
            "--no-ext-diff",
            f"-n{limit}",
            "--date=iso-strict",
            "--pretty=format:%H%x09%an%x09%ad%x09%s",
        )

    def git_commit(self, message: str, paths: list[str] | None = None) -> str:
        """Stage files and commit them.

        Args:
            message: the commit message.
            paths: the files to stage, relative to the workspace root; all changes when left out.
        """
        if not message.strip() or "\x00" in message or len(message) > 10_000:
            raise ToolError("the commit message must be non-empty text under 10000 characters, without NUL")
        if paths:
            self._git("add", "--", *[self._git_path(p) for p in paths])
        else:
            self._git("add", "-A")
        return self._git("commit", "--no-verify", "-q", "-m", message) or "committed"

    def _git_path(self, path: str) -> str:
        parts = self.workspace.parts(path)
        if any(part.lower() == ".git" for part in parts):
            raise SandboxError("paths under .git are not given to git tools")
        return "/".join(parts) or "."

    def _git(self, *args: str) -> str:
        root = self.workspace.root
        dot_git = root / ".git"
        try:
            mode = os.lstat(dot_git).st_mode
        except FileNotFoundError:
            raise ToolError("the workspace is not a git repository") from None
        if not stat.S_ISDIR(mode):
            # A .git file ("gitdir: ...") or symlink would send git to a repository elsewhere.
            raise SandboxError(".git is not a plain directory here; git tools refuse to follow it")
        # git reads work-tree files by name (status, diff, add): through a hard link or a symlink
        # it would show or commit a file outside the workspace.
        self.check_workspace_links("git")
        git = shutil.which("git", path=SAFE_PATH)
        if git is None:
            raise ToolError("git is not installed")
        name, email = self.author
        env = scrubbed_env(
            root,
            {
                "GIT_DIR": str(dot_git),
                "GIT_WORK_TREE": str(root),
                "GIT_CEILING_DIRECTORIES": str(root.parent),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_OPTIONAL_LOCKS": "0",
                "GIT_LITERAL_PATHSPECS": "1",
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email,
            },
        )
        done = self._run([git, *_GIT_OPTIONS, *args], env, self.config.git_timeout)
        text = done.output.decode("utf-8", "replace")
        if done.exit_code != 0:
            raise ToolError(f"git {args[0]} failed (exit {done.exit_code}): {text.strip()[:2000]}")
        return text

    # -- shell -------------------------------------------------------------------------------

    def shell(self, command: list[str]) -> dict[str, Any]:
        """Run one allowlisted command in the workspace, without a shell: no pipes, redirects or variables.

        Args:
            command: the program and its arguments, one list item each,
                e.g. ["grep", "-n", "TODO", "notes.md"].
        """
        argv = self.check_command(command)
        self.check_workspace_links()
        program = shutil.which(argv[0], path=SAFE_PATH)
        if program is None:
            raise ToolError(f"{argv[0]!r} is allowed but not installed")
        done = self._run([program, *argv[1:]], scrubbed_env(self.workspace.root), self.config.shell_timeout)
        return {"exit_code": done.exit_code, "output": done.output.decode("utf-8", "replace")}

    def check_command(self, command: list[str]) -> list[str]:
        """``command`` if it may run; else `SandboxError` saying which argument is refused and why."""
        if not command:
            raise ToolError("give the command as a list: the program, then its arguments")
        if len(command) > _MAX_ARGS:
            raise SandboxError(f"at most {_MAX_ARGS} arguments are allowed")
        program = command[0]
        if program not in self.config.shell_allow:
            raise SandboxError(
                f"{program[:80]!r} is not an allowed command; allowed: {', '.join(self.config.shell_allow)}"
            )
        for index, arg in enumerate(command[1:], 1):
            if len(arg) > _MAX_ARG_CHARS:
                raise SandboxError(f"argument {index} is longer than {_MAX_ARG_CHARS} characters")
            if "\x00" in arg:
                raise SandboxError(f"argument {index} contains a NUL byte")
            bad = sorted(set(arg) & _METACHARACTERS)
            if bad:
                raise SandboxError(
                    f"argument {index} contains shell metacharacter(s) {''.join(bad)!r}: commands run "
                    "without a shell, so pipes, redirects, variables and chaining do not exist; "
                    "run one command per call"
                )
            self._check_path_argument(index, arg)
        return list(command)

    def _check_path_argument(self, index: int, arg: str) -> None:
        # Any argument may be a path to the program: none may be absolute, climb with "..",
        # start at "~", or reach into .git. An option's value must come after "=" (or as the
        # next argument), so "-f/etc/passwd" cannot hide a path behind a short option.
        # "key=value" arguments (dd-style) may carry a path on either side of the "=".
        pieces = arg.split("=")
        if arg.startswith("-"):
            option, _, value = arg.partition("=")
            if "/" in option or "~" in option:
                raise SandboxError(
                    f"argument {index} ({arg[:80]!r}) attaches a path to an option; "
                    "write the value after '=' or as the next argument, relative to the workspace"
                )
            if "files0-from" in option:
                raise SandboxError(
                    f"argument {index} ({arg[:80]!r}) reads file names from a file, which could "
                    "name files outside the workspace; give the files as arguments"
                )
            pieces = value.split("=") if value else []
        for piece in pieces:
            if piece.startswith(("/", "~")):
                raise SandboxError(
                    f"argument {index} ({arg[:80]!r}) is an absolute or home path; "
                    "give paths relative to the workspace"
                )
            components = piece.replace("\\", "/").split("/")
            if ".." in components:
                raise SandboxError(
                    f"argument {index} ({arg[:80]!r}) climbs with '..'; stay inside the workspace"
                )
            if any(c.lower() == ".git" for c in components):
                raise SandboxError(f"argument {index} ({arg[:80]!r}) reaches into .git; use the git tools")

    def check_workspace_links(self, tool: str = "the shell tool") -> None:
        """`SandboxError` if a symlink leads outside the workspace or a file has several hard links.

        A program given a workspace path follows symlinks and reads through hard links, so the
        shell and git run only in a workspace where both lead nowhere else. Files under
        ``.git/objects`` may be hard links (``git clone`` of a local repository links them):
        git reads them only as its own content-addressed objects.
        """
        root = str(self.workspace.root)
        objects = os.path.join(root, ".git", "objects")
        seen = 0
        stack = [root]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > _MAX_SCAN_ENTRIES:
                        raise SandboxError(
                            f"the workspace holds more than {_MAX_SCAN_ENTRIES} entries; {tool} "
                            "checks every one for links out and refuses to run in one this big"
                        )
                    if entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if target != root and not target.startswith(root + os.sep):
                            raise SandboxError(
                                f"{os.path.relpath(entry.path, root)!r} is a symlink leading outside the "
                                f"workspace; {tool} does not run while one exists (remove it first)"
                            )
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        links = entry.stat(follow_symlinks=False).st_nlink
                        if links > 1 and not entry.path.startswith(objects + os.sep):
                            raise SandboxError(
                                f"{os.path.relpath(entry.path, root)!r} has {links} hard links and may be a "
                                f"file outside the workspace; {tool} does not run while one exists "
                                "(remove it, or replace it with a copy)"
                            )

    def _run(self, argv: list[str], env: dict[str, str], timeout: float) -> Completed:
        limit = self.config.max_output_bytes
        try:
            done = run(argv, cwd=self.workspace.root, env=env, timeout=timeout, max_output_bytes=limit)
        except OSError as err:
            raise ToolError(
                f"{Path(argv[0]).name} could not be started ({os.strerror(err.errno or 0)})"
            ) from None
        if done.timed_out:
            raise ToolError(f"{Path(argv[0]).name} was stopped after {timeout:g} s (the time limit)")
        if done.overflowed:
            head = done.output[:1000].decode("utf-8", "replace")
            raise ToolError(
                f"{Path(argv[0]).name} printed more than {limit} bytes and was stopped; narrow the "
                f"command (head, grep, a smaller path). It began:\n{head}"
            )
        return done
