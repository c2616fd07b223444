"""The `tocsin` command as an operator runs it: a database it cannot use is one line on
stderr naming the variable (no traceback, no password), and a command on a migrated
database prints nothing but its answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet

from tests.e2e import cli_env, free_port, run_cli
from tests.support import PG_URL
from tocsin.storage.migrate import alembic_config

PASSWORD = "s3cr3t-pw"  # a test value that must never be printed


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tocsin: "), stderr
    assert PASSWORD not in stderr
    return lines[0]


@pytest.mark.parametrize(
    "command", [("serve",), ("worker",), ("token", "create", "--name", "x", "--role", "VIEWER")]
)
def test_a_database_url_of_another_kind_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = cli_env(DATA_DIR=tmp_path, DATABASE_URL=f"mysql://tocsin:{PASSWORD}@db/tocsin")
    result = run_cli(*command, env=env)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith("tocsin: TOCSIN_DATABASE_URL is invalid: use postgresql+asyncpg://")
    assert result.stdout == ""


@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("worker",)])
def test_an_unreachable_database_server_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # given a URL whose port nothing listens on
    url = f"postgresql+asyncpg://tocsin:{PASSWORD}@127.0.0.1:{free_port()}/tocsin"
    env = cli_env(DATA_DIR=tmp_path, DATABASE_URL=url, SECRET_KEYS=Fernet.generate_key().decode())
    result = run_cli(*command, env=env)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith("tocsin: cannot use the database of TOCSIN_DATABASE_URL: ")
    assert "Connect call failed" in line


@pytest.mark.skipif(not PG_URL, reason="needs a PostgreSQL server to refuse the password")
def test_a_wrong_database_password_is_one_line(tmp_path: Path) -> None:
    assert PG_URL is not None
    rest = PG_URL.split("@", 1)[1]
    url = f"postgresql+asyncpg://tocsin:{PASSWORD}@{rest}"
    env = cli_env(DATA_DIR=tmp_path, DATABASE_URL=url, SECRET_KEYS=Fernet.generate_key().decode())
    result = run_cli("token", "create", "--name", "x", "--role", "VIEWER", env=env)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line == (
        "tocsin: cannot use the database of TOCSIN_DATABASE_URL: InvalidPasswordError: "
        'password authentication failed for user "tocsin"'
    )


def test_a_data_dir_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    env = cli_env(DATA_DIR=tmp_path / "a-file" / "data", SECRET_KEYS=Fernet.generate_key().decode())
    result = run_cli("token", "create", "--name", "x", "--role", "VIEWER", env=env)
    assert result.returncode == 2
    assert _one_line(result.stderr).startswith(
        "tocsin: cannot use TOCSIN_DATA_DIR: NotADirectoryError: "
    )


def test_a_command_says_only_when_it_migrated(tmp_path: Path) -> None:
    env = cli_env(DATA_DIR=tmp_path, SECRET_KEYS=Fernet.generate_key().decode())
    # given an empty data dir, the first command migrates, and says so in one line
    first = run_cli("token", "create", "--name", "a", "--role", "VIEWER", env=env)
    assert first.returncode == 0, first.stderr
    (line,) = first.stderr.splitlines()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert line.endswith(
        f"INFO tocsin.migrate migrated the database from an empty database to {head}"
    )
    # then a command on the migrated database prints its answer and nothing else
    second = run_cli("token", "create", "--name", "b", "--role", "VIEWER", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert second.stdout.startswith("tcs_") and second.stdout.count("\n") == 1
