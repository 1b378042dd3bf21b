"""The command line: `--version`, and `token`/`proof` that never make up a secret."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from scoreboard import __version__
from scoreboard.cli import main

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SCOREBOARD_* from the caller's shell; the root logger as it was afterwards."""
    for name in [n for n in os.environ if n.startswith("SCOREBOARD_")]:
        monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"scoreboard {__version__}"


@pytest.mark.parametrize(("argv", "variable"), [
    (["token", "--sub", "alice"], "SCOREBOARD_JWT_SECRET"),
    (["proof", "--sub", "alice", "--action", "BOSS_DEFEAT"], "SCOREBOARD_PROOF_SECRET"),
])
def test_without_a_secret_nothing_is_created_and_the_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], variable: str
) -> None:
    data_dir = tmp_path / "not-the-server-data"
    assert main([*argv, "--data-dir", str(data_dir)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert str(data_dir.resolve()) in err
    assert "Start the server once" in err and "--data-dir" in err and variable in err
    assert not data_dir.exists()


def test_token_is_signed_with_the_servers_secret_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "jwt-secret").write_text(SECRET + "\n")
    assert main(["token", "--sub", "alice", "--name", "Alice", "--data-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    claims = jwt.decode(out.splitlines()[-1], SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["name"]) == ("alice", "Alice")
    assert f"token secret: {(tmp_path / 'jwt-secret').resolve()}" in err


def test_a_configured_secret_is_used_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCOREBOARD_PROOF_SECRET", SECRET)
    argv = ["proof", "--sub", "alice", "--action", "BOSS_DEFEAT", "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    claims = jwt.decode(out.splitlines()[-1], SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["act"]) == ("alice", "BOSS_DEFEAT")
    assert "proof secret: proofs.secret (from SCOREBOARD_PROOF_SECRET" in err
    assert list(tmp_path.iterdir()) == []
