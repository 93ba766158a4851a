"""The session key: from TUNELOOP_SECRET_KEY, else made once and kept under the home."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tuneloop.errors import ConfigError
from tuneloop.settings import load_settings


def test_a_key_is_made_once_with_owner_only_permissions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_settings(home=home).resolved_secret_key()
    again = load_settings(home=home).resolved_secret_key()
    assert first == again and len(first) >= 32
    path = home / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == ["secret_key"]  # no draft left behind
    assert load_settings(home=tmp_path / "other").resolved_secret_key() != first


def test_the_environment_wins_and_must_be_long_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNELOOP_SECRET_KEY", "s" * 40)
    settings = load_settings(home=tmp_path)
    assert settings.resolved_secret_key() == b"s" * 40
    assert "ssss" not in repr(settings)
    assert not (tmp_path / "secret_key").exists()
    monkeypatch.setenv("TUNELOOP_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings(home=tmp_path).resolved_secret_key()


def test_a_truncated_key_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("abc\n")
    with pytest.raises(ConfigError, match="delete the file"):
        load_settings(home=tmp_path).resolved_secret_key()


def test_an_unwritable_home_names_the_way_out(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="TUNELOOP_SECRET_KEY"):
        load_settings(home=blocker / "home").resolved_secret_key()
