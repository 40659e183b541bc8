"""F15: recipe paths stay inside the data root unless the user opts out."""

from __future__ import annotations

import pytest

from omnissl.core.errors import DataError
from omnissl.core.paths import ALLOW_OUTSIDE_ENV, outside_paths, resolve_data_path


def test_relative_path_is_joined_to_the_root(tmp_path):
    assert resolve_data_path(tmp_path, "a/b.csv", key="data.train") == tmp_path / "a" / "b.csv"


def test_dotdot_that_escapes_is_refused_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)
    with pytest.raises(DataError, match=r"data\.train: path '\.\./\.\./etc/passwd' leaves the data root"):
        resolve_data_path(tmp_path / "root", "../../etc/passwd", key="data.train")


def test_absolute_path_outside_is_refused_the_same_whether_or_not_it_exists(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)
    (tmp_path / "exists.txt").write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    messages = []
    for name in ("exists.txt", "missing.txt"):
        with pytest.raises(DataError) as caught:
            resolve_data_path(root, tmp_path / name, key="data.test")
        messages.append(str(caught.value).replace(name, "NAME"))
    assert messages[0] == messages[1]


def test_absolute_path_inside_the_root_is_fine(tmp_path):
    assert resolve_data_path(tmp_path, tmp_path / "x.npz", key="data.train") == tmp_path / "x.npz"


def test_symlink_inside_root_pointing_outside_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(DataError, match="data.train"):
        resolve_data_path(root, "link.txt", key="data.train")


def test_opt_in_by_environment_and_by_context(tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere.csv"
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "1")
    assert resolve_data_path(tmp_path / "root", outside, key="data.train") == outside
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV)
    with outside_paths(True):
        assert resolve_data_path(tmp_path / "root", outside, key="data.train") == outside
    with pytest.raises(DataError):
        resolve_data_path(tmp_path / "root", outside, key="data.train")
