"""The tools' settings: ``agent.tools`` and ``agent.workspace_root`` of the config, validated here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from mosaic_storage import ConfigError, MosaicConfig

# Commands that act on their arguments only. Nothing that runs other programs or code
# (shells, interpreters, env, xargs, find -exec, sed's `e`, awk's system()) is on it.
DEFAULT_SHELL_ALLOW = (
    "cat",
    "cut",
    "diff",
    "echo",
    "grep",
    "head",
    "ls",
    "pwd",
    "tail",
    "tr",
    "uniq",
    "wc",
)

# Refused even when configured: each can run an arbitrary program, which would void the
# allowlist (sort runs one with --compress-program).
COMMAND_RUNNERS = frozenset(
    {
        "sh", "bash", "zsh", "dash", "ksh", "fish", "csh", "tcsh", "busybox", "env", "xargs", "find",
        "sudo", "su", "doas", "nohup", "nice", "ionice", "timeout", "time", "watch", "strace", "chroot",
        "python", "python3", "perl", "ruby", "node", "php", "lua", "tclsh", "awk", "gawk", "mawk",
        "sed", "make", "ssh", "scp", "rsync", "git", "vim", "vi", "emacs", "less", "more", "man",
        "tar", "curl", "wget", "nc", "socat", "ln", "sort",
    }
)  # fmt: skip

_COMMAND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_KEYS = (
    "shell_allow",
    "shell_timeout",
    "git_timeout",
    "max_output_bytes",
    "max_file_bytes",
    "max_result_chars",
    "max_path_length",
)


def _check_allow(_inst: Any, _attr: Any, value: tuple[str, ...]) -> None:
    for name in value:
        if not isinstance(name, str) or not _COMMAND_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a command name (a plain name, no path, no spaces)")
        if name in COMMAND_RUNNERS:
            raise ValueError(
                f"{name!r} can run other programs, which would bypass the allowlist; leave it out"
            )


def _positive(_inst: Any, attr: Any, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{attr.name} must be a positive number, got {value!r}")


@attrs.frozen
class ToolsConfig:
    """Limits of the built-in tools; every field has a safe default.

    Attributes:
        workspace_root: where ``users/<id>/`` and ``teams/<id>/`` workspaces live.
        shell_allow: the command names the shell tool may run.
        shell_timeout: seconds a shell command may run before it is killed.
        git_timeout: seconds a git command may run before it is killed.
        max_output_bytes: the most output a shell or git command may print.
        max_file_bytes: the largest file the workspace tools read or write.
        max_result_chars: the longest tool message content (longer ones are cut).
        max_path_length: the longest path a workspace tool accepts, in characters.
    """

    workspace_root: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    shell_allow: tuple[str, ...] = attrs.field(
        default=DEFAULT_SHELL_ALLOW, converter=tuple, validator=_check_allow
    )
    shell_timeout: float = attrs.field(default=10.0, validator=_positive)
    git_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_output_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    max_file_bytes: int = attrs.field(default=1024 * 1024, validator=_positive)
    max_result_chars: int = attrs.field(default=20_000, validator=_positive)
    max_path_length: int = attrs.field(default=1024, validator=_positive)

    @classmethod
    def from_config(cls, config: MosaicConfig | Mapping[str, Any] | None = None) -> ToolsConfig:
        """Read ``agent.workspace_root`` and ``agent.tools`` of a config (or of its ``agent`` mapping).

        Raises:
            ConfigError: an unknown key under ``agent.tools`` or a bad value, naming the field.
        """
        source = None
        if isinstance(config, MosaicConfig):
            source = str(config.source) if config.source else None
            agent: Mapping[str, Any] = config.agent
        else:
            agent = config or {}
        if not isinstance(agent, Mapping):
            raise ConfigError("must be an object", source=source, field="agent")
        tools = agent.get("tools", {})
        if not isinstance(tools, Mapping):
            raise ConfigError("must be an object", source=source, field="agent.tools")
        unknown = sorted(set(tools) - set(_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)}",
                source=source,
                field="agent.tools",
                remediation=f"allowed keys: {', '.join(_KEYS)}",
            )
        values: dict[str, Any] = {}
        root = agent.get("workspace_root")
        if root is not None:
            if not isinstance(root, str) or not root.strip():
                raise ConfigError("must be a directory path", source=source, field="agent.workspace_root")
            values["workspace_root"] = Path(root).expanduser()
        for key in _KEYS:
            if key not in tools:
                continue
            value = tools[key]
            if key == "shell_allow":
                if isinstance(value, str) or not isinstance(value, list | tuple):
                    raise ConfigError(
                        "must be a list of command names", source=source, field="agent.tools.shell_allow"
                    )
            elif key.startswith("max_") and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(
                    f"must be a whole number, got {value!r}", source=source, field=f"agent.tools.{key}"
                )
            values[key] = value
        try:
            return cls(**values)
        except ValueError as err:
            field = next((f"agent.tools.{k}" for k in _KEYS if k in str(err)), "agent.tools")
            if "command" in str(err) or "allowlist" in str(err):
                field = "agent.tools.shell_allow"
            raise ConfigError(str(err), source=source, field=field) from None
