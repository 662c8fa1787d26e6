"""Workspace paths: users/<id>/ and teams/<id>/ under the root, never outside it."""

from __future__ import annotations

import pytest

from mosaic_storage.brain import InvalidValue, workspace_path


def test_workspace_paths_sit_under_the_root(tmp_path):
    assert workspace_path(tmp_path, user_id="u-1") == tmp_path.resolve() / "users" / "u-1"
    assert workspace_path(tmp_path, team_id="t_1") == tmp_path.resolve() / "teams" / "t_1"
    with pytest.raises(InvalidValue):
        workspace_path(tmp_path)
    with pytest.raises(InvalidValue):
        workspace_path(tmp_path, user_id="a", team_id="b")


@pytest.mark.parametrize(
    "bad", ["..", ".", "", "../etc", "a/b", "a\\b", "/abs", "~root", "a\x00b", "-rf", ".hidden", "x" * 200]
)
def test_ids_that_could_escape_the_root_are_refused(tmp_path, bad):
    with pytest.raises(InvalidValue):
        workspace_path(tmp_path, user_id=bad)


def test_a_symlink_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "users").mkdir(parents=True)
    (root / "users" / "evil").symlink_to(tmp_path)
    with pytest.raises(InvalidValue, match="outside"):
        workspace_path(root, user_id="evil")
