"""Sandbox escape suite: every trick is refused with a clear tool error and nothing outside is touched.

Each test keeps an ``outside`` directory next to the workspace root with a canary file in it,
and checks after the attempt that every file there has the same bytes and modification time
and that no file appeared (``untouched``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaic_agent.tools import ToolRegistry, ToolsConfig, Workspace, WorkspaceTools

CANARY = "CANARY-do-not-leak-7f3a"


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else b"", p.lstat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


class Scene:
    """A workspace (users/u1 under a root), an outside directory with a canary, and the tools."""

    def __init__(self, tmp_path: Path, config: ToolsConfig | None = None) -> None:
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        self.canary = self.outside / "canary.txt"
        self.canary.write_text(CANARY)
        self.workspace = Workspace.for_owner(tmp_path / "root", user_id="u1", config=config)
        self.ws = self.workspace.root
        self.tools = WorkspaceTools(self.workspace)
        self.registry = ToolRegistry()
        self.registry.extend(self.tools)
        self.before = _snapshot(self.outside)

    def call(self, name: str, **arguments):
        return self.registry.call(f"workspace.{name}", arguments)

    def refused(self, name: str, match: str, **arguments):
        result = self.call(name, **arguments)
        assert not result.ok, result
        assert result.content.startswith("error: ")
        assert match in result.content, result.content
        assert CANARY not in result.content
        assert "Traceback" not in result.content
        self.untouched()
        return result

    def untouched(self) -> None:
        assert _snapshot(self.outside) == self.before
        assert self.canary.read_text() == CANARY


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    return Scene(tmp_path)


# -- 1. "../" ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../../../outside/canary.txt",
        "a/../../../../outside/canary.txt",
        "./../x",
        "..",
        "..\\..\\..\\outside\\canary.txt",
    ],
)
def test_dot_dot_is_refused_for_reads(scene, path):
    scene.refused("read_file", "'..' is not allowed", path=path)


def test_dot_dot_is_refused_for_writes_and_lists(scene):
    scene.refused("write_file", "'..' is not allowed", path="../../../outside/canary.txt", content="pwned")
    scene.refused("write_file", "'..' is not allowed", path="../../../outside/new.txt", content="pwned")
    scene.refused("list_dir", "'..' is not allowed", path="../..")
    scene.refused("search_files", "'..' is not allowed", text="CANARY", path="../../../outside")


# -- 2. absolute paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "ABS_CANARY", "\\etc\\passwd", "C:\\Windows\\win.ini", "~/x"]
)
def test_absolute_and_home_paths_are_refused(scene, path):
    path = str(scene.canary) if path == "ABS_CANARY" else path
    result = scene.refused("read_file", "", path=path)
    assert "absolute" in result.content or "'~' is not expanded" in result.content
    scene.refused("write_file", "", path=path, content="pwned")


# -- 3. symlinks ---------------------------------------------------------------------------


def test_symlink_to_etc_is_never_followed(scene):
    (scene.ws / "etc").symlink_to("/etc")
    scene.refused("read_file", "'etc' is a symlink", path="etc/passwd")
    scene.refused("list_dir", "'etc' is a symlink", path="etc")
    scene.refused("write_file", "'etc' is a symlink", path="etc/mosaic-test-file", content="x")
    assert not Path("/etc/mosaic-test-file").exists()
    # search walks the workspace without descending into it
    result = scene.call("search_files", text="root")
    assert result.ok and result.data["matches"] == []


def test_symlink_to_a_file_outside_is_neither_read_nor_written(scene):
    (scene.ws / "notes.txt").symlink_to(scene.canary)
    scene.refused("read_file", "'notes.txt' is a symlink", path="notes.txt")
    scene.refused("write_file", "'notes.txt' is a symlink", path="notes.txt", content="pwned")
    result = scene.call("search_files", text="CANARY")
    assert result.ok and result.data["matches"] == []
    scene.untouched()


def test_symlinked_directory_in_the_middle_of_a_write_path_is_refused(scene):
    (scene.ws / "docs").symlink_to(scene.outside)
    scene.refused("write_file", "'docs' is a symlink", path="docs/new/file.txt", content="pwned")
    scene.refused("write_file", "'docs' is a symlink", path="docs/canary.txt", content="pwned")


class _SwappingWorkspace(Workspace):
    """Replaces ``sub`` with a symlink to the outside right after the path passed its checks."""

    target: Path

    def parts(self, path):
        checked = super().parts(path)
        sub = self.root / "sub"
        if sub.is_dir() and not sub.is_symlink():
            for child in sub.iterdir():
                child.unlink()
            sub.rmdir()
            sub.symlink_to(self.target)
        return checked


def test_symlink_swapped_after_the_check_is_met_by_the_open_itself(tmp_path):
    scene = Scene(tmp_path)
    swapping = _SwappingWorkspace(scene.ws)
    swapping.target = scene.outside
    tools = ToolRegistry()
    tools.extend(WorkspaceTools(swapping))
    (scene.ws / "sub").mkdir()
    (scene.ws / "sub" / "canary.txt").write_text("inside")
    read = tools.call("workspace.read_file", {"path": "sub/canary.txt"})
    assert not read.ok and "'sub' is a symlink" in read.content
    assert CANARY not in read.content
    (scene.ws / "sub").unlink()
    (scene.ws / "sub").mkdir()
    write = tools.call("workspace.write_file", {"path": "sub/canary.txt", "content": "pwned"})
    assert not write.ok and "'sub' is a symlink" in write.content
    scene.untouched()


def test_symlink_flipped_by_a_racing_thread_never_leaks_the_outside(scene):
    (scene.outside / "secret.txt").write_text(CANARY)
    scene.before = _snapshot(scene.outside)
    real = scene.ws / "real"
    real.mkdir()
    (real / "secret.txt").write_text("inside")
    link = scene.ws / "flip"
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            for make in (lambda: link.symlink_to(scene.outside), lambda: link.symlink_to(real)):
                make()
                link.unlink()

    thread = threading.Thread(target=flip)
    thread.start()
    seen = set()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            result = scene.call("read_file", path="flip/secret.txt")
            assert CANARY not in result.content
            seen.add(result.ok)
    finally:
        stop.set()
        thread.join()
    assert seen == {False}  # a symlink (either way) or missing: never followed
    scene.untouched()


# -- 4. hard links -------------------------------------------------------------------------


def test_hard_link_to_an_outside_file_is_not_read(scene):
    os.link(scene.canary, scene.ws / "linked.txt")
    scene.refused("read_file", "has 2 hard links", path="linked.txt")
    result = scene.call("search_files", text="CANARY")
    assert result.ok and result.data["matches"] == [] and result.data["skipped_files"] == 1


def test_hard_link_to_an_outside_file_is_not_written_through(scene):
    os.link(scene.canary, scene.ws / "linked.txt")
    scene.refused("write_file", "has 2 hard links", path="linked.txt", content="pwned")


class _LinkingWorkspace(Workspace):
    """Turns the target into a hard link to the canary right after it passed its checks."""

    canary: Path

    def _check_file(self, st, shown, *, check_size=True):
        super()._check_file(st, shown, check_size=check_size)
        target = self.root / "/".join(shown)
        target.unlink()
        os.link(self.canary, target)


def test_hard_link_made_after_the_check_is_replaced_not_written_through(tmp_path):
    scene = Scene(tmp_path)
    linking = _LinkingWorkspace(scene.ws)
    linking.canary = scene.canary
    (scene.ws / "note.txt").write_text("old")
    linking.write_bytes("note.txt", b"new")
    assert (scene.ws / "note.txt").read_text() == "new"
    assert (scene.ws / "note.txt").stat().st_nlink == 1
    scene.untouched()


# -- 5. very long paths, NUL bytes, control characters -------------------------------------


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("a/" * 3000 + "x", "characters long"),
        ("x" * 300, "longer than 255 bytes"),
        ("/".join(["d"] * 70), "directories deep"),
        ("notes\x00.txt", "NUL byte"),
        ("../\x00/etc/passwd", "NUL byte"),
        ("notes\n.txt", "control characters"),
    ],
)
def test_long_paths_nul_bytes_and_control_characters_are_refused(scene, path, match):
    scene.refused("read_file", match, path=path)
    scene.refused("write_file", match, path=path, content="x")
    scene.refused("list_dir", match, path=path)
    assert list(scene.ws.iterdir()) == []


# -- 6. shell metacharacters and arguments -------------------------------------------------


@pytest.mark.parametrize(
    "argument",
    [
        "x; cat ../../../outside/canary.txt",
        "x | tee ../../outside/canary.txt",
        "x && rm -rf ..",
        "$(cat /etc/passwd)",
        "`id`",
        "x > ../../../outside/canary.txt",
        "< /etc/passwd",
        "x\ncat /etc/passwd",
        "${HOME}",
    ],
)
def test_shell_metacharacters_are_refused(scene, argument):
    scene.refused("shell", "shell metacharacter", command=["echo", argument])


@pytest.mark.parametrize(
    ("command", "match"),
    [
        (["cat", "ABS_CANARY"], "absolute or home path"),
        (["cat", "~/.bashrc"], "absolute or home path"),
        (["cat", "../../../outside/canary.txt"], "climbs with '..'"),
        (["grep", "-f/etc/passwd", "x"], "attaches a path to an option"),
        (["grep", "--file=/etc/passwd", "x"], "absolute or home path"),
        (["grep", "--file=../../../outside/canary.txt", "x"], "climbs with '..'"),
        (["wc", "--files0-from=list"], "reads file names from a file"),
        (["cat", "if=../../../outside/canary.txt"], "climbs with '..'"),
        (["cat", "x=/etc/passwd"], "absolute or home path"),
        (["grep", "--regexp=a=/etc/passwd", "x"], "absolute or home path"),
        (["cat", ".git/config"], "reaches into .git"),
        (["sh", "-c", "cat /etc/passwd"], "is not an allowed command"),
        (["/bin/cat", "x"], "is not an allowed command"),
        (["python3", "-c", "print(1)"], "is not an allowed command"),
    ],
)
def test_shell_arguments_that_could_leave_the_workspace_are_refused(scene, command, match):
    command = [str(scene.canary) if arg == "ABS_CANARY" else arg for arg in command]
    scene.refused("shell", match, command=command)


def test_shell_does_not_run_while_a_symlink_leads_outside(scene):
    (scene.ws / "innocent.txt").symlink_to(scene.canary)
    scene.refused("shell", "symlink leading outside", command=["cat", "innocent.txt"])
    (scene.ws / "innocent.txt").unlink()
    (scene.ws / "real.txt").write_text("fine")
    (scene.ws / "alias.txt").symlink_to("real.txt")  # inside: allowed
    result = scene.call("shell", command=["cat", "alias.txt"])
    assert result.ok and result.data["output"] == "fine"


def test_shell_does_not_run_while_a_file_has_hard_links(scene):
    os.link(scene.canary, scene.ws / "innocent.txt")
    scene.refused("shell", "hard links", command=["cat", "innocent.txt"])


# -- 7. environment leaks ------------------------------------------------------------------


def test_no_environment_variable_of_the_process_reaches_the_shell(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "leak" * 8)
    monkeypatch.setenv("MOSAIC_SECRET_TOKEN", "tok-very-secret-1234")
    monkeypatch.setenv("PGPASSWORD", "hunter2-pg")
    scene = Scene(tmp_path, ToolsConfig(shell_allow=("printenv",)))
    result = scene.call("shell", command=["printenv"])
    assert result.ok, result
    names = {line.split("=", 1)[0] for line in result.data["output"].splitlines()}
    assert names <= {"PATH", "HOME", "PWD", "LANG", "LC_ALL"}
    for secret in ("leak" * 8, "tok-very-secret-1234", "hunter2-pg"):
        assert secret not in result.content
    home = {line.split("=", 1)[1] for line in result.data["output"].splitlines() if line.startswith("HOME=")}
    assert home == {str(scene.ws)}


def test_git_sees_no_environment_secret_and_no_global_config(scene, monkeypatch):
    monkeypatch.setenv("GIT_DIR", str(scene.outside))  # would point git elsewhere if passed on
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(scene.canary))
    subprocess.run(["git", "init", "-q", str(scene.ws)], check=True, env={"PATH": os.environ["PATH"]})
    (scene.ws / "a.txt").write_text("a")
    result = scene.call("git_commit", message="first")
    assert result.ok, result
    assert "a.txt" not in scene.call("git_status").content
    scene.untouched()


# -- 8. oversized output, files and slow commands ------------------------------------------


def test_oversized_shell_output_is_stopped_and_reported(tmp_path):
    scene = Scene(tmp_path, ToolsConfig(max_output_bytes=4096))
    (scene.ws / "big.txt").write_text("y" * 100_000)
    result = scene.refused("shell", "printed more than 4096 bytes", command=["cat", "big.txt"])
    assert len(result.content) < 2000


def test_oversized_files_are_neither_read_nor_written(tmp_path):
    scene = Scene(tmp_path, ToolsConfig(max_file_bytes=1000))
    (scene.ws / "big.txt").write_text("z" * 5000)
    scene.refused("read_file", "5000 bytes", path="big.txt")
    scene.refused("write_file", "files over 1000 bytes are not written", path="new.txt", content="z" * 5000)
    assert not (scene.ws / "new.txt").exists()
    assert [p.name for p in scene.ws.iterdir()] == ["big.txt"]  # no temp file left behind


def test_a_command_past_its_time_limit_is_killed(tmp_path):
    scene = Scene(tmp_path, ToolsConfig(shell_timeout=1))
    (scene.ws / "log.txt").write_text("line\n")
    started = time.monotonic()
    scene.refused("shell", "stopped after 1 s", command=["tail", "-f", "log.txt"])
    assert time.monotonic() - started < 15


def test_the_registry_caps_what_reaches_the_model(tmp_path):
    scene = Scene(tmp_path)
    scene.registry = ToolRegistry(max_result_chars=500)
    scene.registry.extend(scene.tools)
    (scene.ws / "long.txt").write_text("w" * 5000)
    result = scene.call("read_file", path="long.txt")
    assert result.ok and len(result.content) < 600 and "truncated: 4500 more characters" in result.content


# -- 9. git and special files --------------------------------------------------------------


def test_git_tools_refuse_a_gitdir_file_pointing_elsewhere(scene):
    subprocess.run(["git", "init", "-q", str(scene.outside / "repo")], check=True)
    scene.before = _snapshot(scene.outside)
    (scene.ws / ".git").write_text(f"gitdir: {scene.outside / 'repo' / '.git'}\n")
    scene.refused("git_status", ".git is not a plain directory")
    scene.refused("git_commit", ".git is not a plain directory", message="x")


def test_hooks_do_not_run_and_git_internals_are_not_writable(scene):
    subprocess.run(["git", "init", "-q", str(scene.ws)], check=True)
    # post-commit: --no-verify skips pre-commit hooks, but only core.hooksPath stops this one
    hook = scene.ws / ".git" / "hooks" / "post-commit"
    hook.write_text(f"#!/bin/sh\necho pwned > {scene.canary}\n")
    hook.chmod(0o755)
    scene.refused("write_file", "files under .git are not written", path=".git/hooks/pre-commit", content="x")
    scene.refused("write_file", "files under .git are not written", path=".GIT/config", content="x")
    (scene.ws / "a.txt").write_text("a")
    result = scene.call("git_commit", message="with a hook present", paths=["a.txt"])
    assert result.ok, result
    log = scene.call("git_log")
    assert log.ok and "with a hook present" in log.content
    scene.untouched()


def test_git_tools_do_not_run_while_a_file_has_hard_links(scene):
    subprocess.run(["git", "init", "-q", str(scene.ws)], check=True)
    os.link(scene.canary, scene.ws / "notes.txt")  # made before the session, outside the tools
    for name, arguments in [
        ("git_status", {}),
        ("git_diff", {}),
        ("git_diff", {"path": "notes.txt"}),
        ("git_log", {}),
        ("git_commit", {"message": "add", "paths": ["notes.txt"]}),
        ("git_commit", {"message": "all"}),
    ]:
        scene.refused(name, "hard links", **arguments)
    objects = subprocess.run(
        ["git", "-C", str(scene.ws), "count-objects"], check=True, capture_output=True, text=True
    )
    assert objects.stdout.startswith("0 objects"), "nothing was staged or committed"
    (scene.ws / "notes.txt").unlink()
    (scene.ws / "notes.txt").write_text("a copy\n")
    assert scene.call("git_commit", message="a copy").ok
    assert CANARY not in scene.call("git_diff").content


def test_git_tools_do_not_run_while_a_symlink_leads_outside(scene):
    subprocess.run(["git", "init", "-q", str(scene.ws)], check=True)
    (scene.ws / "link.txt").symlink_to(scene.canary)
    scene.refused("git_status", "symlink leading outside")
    scene.refused("git_commit", "symlink leading outside", message="x")


def test_git_tools_work_in_a_local_clone_whose_objects_are_hard_links(tmp_path):
    source = tmp_path / "source"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(source)], check=True)
    (source / "a.txt").write_text("hello\n")
    subprocess.run([*git, "-C", str(source), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(source), "commit", "-q", "-m", "first"], check=True)
    scene = Scene(tmp_path)
    subprocess.run(["git", "clone", "-q", "--local", str(source), str(scene.ws)], check=True)
    objects = [p for p in (scene.ws / ".git" / "objects").rglob("*") if p.is_file()]
    assert any(p.stat().st_nlink > 1 for p in objects), "git clone --local links objects"
    log = scene.call("git_log")
    assert log.ok and "first" in log.content
    assert scene.call("git_status").ok


def test_a_fifo_is_refused_without_blocking(scene):
    os.mkfifo(scene.ws / "pipe")
    scene.refused("read_file", "not a regular file", path="pipe")
    scene.refused("write_file", "not a regular file", path="pipe", content="x")


def test_inside_paths_still_work(scene):
    assert scene.call("write_file", path="a/b/c.txt", content="hello TODO").ok
    assert scene.call("read_file", path="./a//b/c.txt").content == "hello TODO"
    listing = scene.call("list_dir", path="a/b").data
    assert listing["entries"] == [{"name": "c.txt", "type": "file", "size": 10}]
    hits = scene.call("search_files", text="todo", ignore_case=True).data["matches"]
    assert hits == [{"path": "a/b/c.txt", "line": 1, "text": "hello TODO"}]
    grep = scene.call("shell", command=["grep", "-rn", "--include=*.txt", "TODO", "."])
    assert grep.ok and grep.data == {"exit_code": 0, "output": "./a/b/c.txt:1:hello TODO\n"}
    missing = scene.call("shell", command=["grep", "-n", "nothing", "a/b/c.txt"])
    assert missing.ok and missing.data["exit_code"] == 1
    subprocess.run(["git", "init", "-q", str(scene.ws)], check=True)
    assert scene.call("git_commit", message="first").ok
    assert scene.call("write_file", path="a/b/c.txt", content="hello DONE").ok
    diff = scene.call("git_diff", path="a/b/c.txt")
    assert diff.ok and "-hello TODO" in diff.content and "+hello DONE" in diff.content
    assert "a/b/c.txt" in scene.call("git_status").content
    scene.untouched()


def test_search_stops_at_its_entry_byte_and_time_limits(scene):
    for i in range(30):
        (scene.ws / f"d{i:02}").mkdir()  # empty directories count as entries too
    for i in range(5):
        (scene.ws / f"f{i}.txt").write_text("needle\n" + "x" * 1000)
    everything = scene.call("search_files", text="needle").data
    assert len(everything["matches"]) == 5
    assert everything["truncated"] is False and everything["stopped_by"] is None

    by_entries = scene.workspace.search("needle", max_entries=20)
    assert by_entries["truncated"] and by_entries["stopped_by"] == "20 entries (files and directories)"
    assert by_entries["matches"] == []  # the root alone holds 35 entries
    by_bytes = scene.workspace.search("needle", max_bytes=1500)
    assert by_bytes["stopped_by"] == "1500 bytes read" and len(by_bytes["matches"]) == 2
    by_time = scene.workspace.search("needle", time_limit=0)
    assert by_time["stopped_by"] == "0 s" and by_time["matches"] == []


# -- 10. any path at all -------------------------------------------------------------------

_PIECES = st.sampled_from(
    ["..", ".", "/", "\\", "~", "a", "etc", "outside", "canary.txt", "\x00", "link", "*"]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(path=st.lists(_PIECES, min_size=1, max_size=12).map("".join))
def test_no_path_reads_or_writes_outside(tmp_path, path):
    # One scene for all examples of this test run (function-scoped tmp_path is shared by them).
    if str(tmp_path) not in _PROPERTY_SCENES:
        _PROPERTY_SCENES[str(tmp_path)] = _property_scene(tmp_path)
    scene = _PROPERTY_SCENES[str(tmp_path)]
    read = scene.call("read_file", path=path)
    assert CANARY not in read.content
    write = scene.call("write_file", path=path, content="written")
    scene.untouched()
    if write.ok:
        written = scene.ws / write.data["path"]
        assert written.resolve().is_relative_to(scene.ws) and written.read_text() == "written"
    for entry in scene.ws.parent.parent.iterdir():  # the root holds only users/
        assert entry.name == "users"


_PROPERTY_SCENES: dict[str, Scene] = {}


def _property_scene(tmp_path: Path) -> Scene:
    scene = Scene(tmp_path)
    (scene.ws / "link").symlink_to(scene.outside)
    (scene.ws / "etc").symlink_to("/etc")
    return scene
