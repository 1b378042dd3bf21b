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


def test_help_shows_demo_and_each_commands_own_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--demo" in capsys.readouterr().out
    for command, own, foreign in [
        ("token", ("--sub", "--name", "--scope", "--ttl"), ("--http-port", "--role", "--host")),
        ("proof", ("--sub", "--action", "--board", "--ttl", "--value"),
         ("--ws-port", "--role", "--host")),
        ("verify", ("--database-url", "--data-dir"), ("--http-port", "--demo")),
    ]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert all(flag in out for flag in own), (command, out)
        assert not any(flag in out for flag in foreign), (command, out)
        lines = out.splitlines()
        for flag in own:  # each with its help text, on its line or the next
            at = next(i for i, line in enumerate(lines) if line.strip().startswith(flag))
            text = lines[at].split(maxsplit=2)[2:] or lines[at + 1].split()
            assert text, (command, flag, out)


@pytest.mark.parametrize(("command", "says"), [
    ("serve", "Ctrl-C"), ("token", "last line of the output"),
    ("proof", "'proof' field"), ("verify", "exits 1"),
])
def test_each_commands_help_says_what_it_does(
    command: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert says in out, out


@pytest.mark.parametrize("ttl", ["-5", "0", "soon"])
def test_a_token_that_would_be_born_expired_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ttl: str
) -> None:
    (tmp_path / "jwt-secret").write_text(SECRET)
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "--sub", "alice", "--ttl", ttl, "--data-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "positive number of seconds" in err


@pytest.mark.parametrize("before", [True, False])
def test_the_data_dir_counts_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: bool
) -> None:
    (tmp_path / "jwt-secret").write_text(SECRET)
    flag = ["--data-dir", str(tmp_path)]
    argv = [*flag, "token", "--sub", "alice"] if before else ["token", "--sub", "alice", *flag]
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert jwt.decode(out.splitlines()[-1], SECRET, algorithms=["HS256"])["sub"] == "alice"


def test_a_short_secret_file_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "jwt-secret").write_text("short\n")
    assert main(["token", "--sub", "alice", "--data-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and str((tmp_path / "jwt-secret").resolve()) in err


def test_a_proof_for_one_board(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "proof-secret").write_text(SECRET)
    base = ["proof", "--sub", "alice", "--action", "BOSS_DEFEAT", "--data-dir", str(tmp_path)]
    assert main([*base, "--board", "global"]) == 0
    out, _ = capsys.readouterr()
    assert jwt.decode(out.splitlines()[-1], SECRET, algorithms=["HS256"])["board"] == "global"
    assert main([*base, "--board", "nowhere"]) == 2
    assert "unknown board 'nowhere'" in capsys.readouterr().err


def test_a_proof_claiming_a_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "proof-secret").write_text(SECRET)
    config = tmp_path / "laps.toml"
    config.write_text('[rules.LAP_TIME]\nvalue = "proof"\nmin = 1\nmax = 600000\n')
    base = ["proof", "--sub", "alice", "--data-dir", str(tmp_path), "--config", str(config)]
    assert main([*base, "--action", "LAP_TIME", "--value", "65000"]) == 0
    out, _ = capsys.readouterr()
    assert jwt.decode(out.splitlines()[-1], SECRET, algorithms=["HS256"])["val"] == 65000
    assert main([*base, "--action", "BOSS_DEFEAT", "--value", "5"]) == 2
    assert "BOSS_DEFEAT does not score a value" in capsys.readouterr().err
    for bad in ("1.5", "x", str(2**53)):
        with pytest.raises(SystemExit):
            main([*base, "--action", "LAP_TIME", "--value", bad])
        assert "within ±(2^53-1)" in capsys.readouterr().err
