"""The `yishi` command as a user runs it (a real subprocess on a tmp data dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _yishi(
    tmp_path: Path, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    env["YISHI_DATA_DIR"] = str(tmp_path / "var")
    if database_url:
        env["YISHI_DATABASE_URL"] = database_url
    env["YISHI_LOAD_SAMPLE_KNOWLEDGE"] = "false"
    return subprocess.run(
        [sys.executable, "-m", "yishi.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )


def test_chat_json_prints_the_documented_shape(tmp_path: Path, database_url: str | None) -> None:
    # On PostgreSQL this once failed: the CLI's microsecond CreateTime overflowed INTEGER.
    result = _yishi(tmp_path, "chat", "--user", "u9", "--json", "帮助", database_url=database_url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) == {"reply", "intent", "actions", "citations", "engine"}
    assert data["engine"] == "offline" and data["reply"]


def test_chat_plain_prints_the_reply(tmp_path: Path) -> None:
    result = _yishi(tmp_path, "chat", "--user", "u9", "帮助")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_empty_message_is_a_friendly_error(tmp_path: Path) -> None:
    result = _yishi(tmp_path, "chat", "  ")
    assert result.returncode == 1
    assert "消息不能为空" in result.stderr and "提示" in result.stderr


def test_users_add_prints_a_token_that_authenticates(tmp_path: Path) -> None:
    result = _yishi(
        tmp_path, "users", "add", "王主任", "--role", "staff", "--external-id", "wechat_mp:oStaff1"
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1].split("：", 1)[1]
    listed = _yishi(tmp_path, "users", "list")
    assert "staff\t王主任\twechat_mp:oStaff1" in listed.stdout
    again = _yishi(tmp_path, "users", "add", "重复", "--external-id", "wechat_mp:oStaff1")
    assert again.returncode == 1 and "已绑定" in again.stderr
    os.environ.pop("YISHI_DATA_DIR", None)
    from sqlmodel import Session

    from yishi.core import auth as auth_service
    from yishi.core.config import Settings
    from yishi.core.db import make_engine

    settings = Settings(data_dir=tmp_path / "var")
    with Session(make_engine(settings.resolved_database_url)) as session:
        assert auth_service.authenticate(session=session, token=token).name == "王主任"


@pytest.mark.parametrize("role", ["nobody"])
def test_unknown_role_is_refused(tmp_path: Path, role: str) -> None:
    result = _yishi(tmp_path, "users", "add", "某人", "--role", role)
    assert result.returncode != 0
