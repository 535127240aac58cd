"""Settings: defaults, environment, and the refusal of placeholder secrets in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from yishi.core.config import ReplyMode, Settings


def test_defaults_keep_all_state_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'd' / 'yishi.db').resolve()}"
    assert settings.wechat_reply_mode is ReplyMode.push
    assert settings.wechat_api_base_url == "https://api.weixin.qq.com/cgi-bin/"
    assert not settings.llm_enabled


def test_environment_variables_with_the_yishi_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YISHI_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("YISHI_WECHAT_REPLY_MODE", "passive")
    monkeypatch.setenv("YISHI_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("YISHI_LLM_MODEL", "qwen")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert settings.wechat_reply_mode is ReplyMode.passive
    assert settings.llm_enabled


def test_placeholder_secret_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", wechat_token=SecretStr("changeme"))
    # Development tolerates it so that a newcomer can start at once.
    Settings(environment="development", wechat_token=SecretStr("changeme"))


def test_secrets_do_not_show_in_repr() -> None:
    settings = Settings(
        wechat_app_secret=SecretStr("s3cr3t-value"), llm_api_key=SecretStr("sk-abc")
    )
    assert "s3cr3t-value" not in repr(settings)
    assert "sk-abc" not in str(settings.model_dump())
