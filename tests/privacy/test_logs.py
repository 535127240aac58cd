"""No personal data in logs at INFO: a message through the webhook and the pipeline, including a
failed attempt, leaves neither its text nor the sender's full OpenID in the log."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text as sql
from sqlmodel import Session

from tests.bot.test_webhook_mp import AES_KEY, APP_ID, TOKEN, make_client
from tests.fakes.wechat_server import CallbackSigner, text_xml
from yishi.bot import pipeline
from yishi.bot.engine import EngineReply
from yishi.core import jobs
from yishi.core.auth import Actor
from yishi.core.config import Settings
from yishi.privacy import logs as privacy_logs

OPENID = "oLogCheckResident00000000001"
TEXT = "我住3栋2单元502，电话13900001111，楼道灯坏了"


class FailingOnce:
    """An engine whose first try fails the way a database write does, with the resident's text
    and identity as the statement's parameters."""

    def __init__(self) -> None:
        self.calls = 0

    def respond(self, *, session: Session, actor: Actor, text: str,
                message_ref: str | None = None) -> EngineReply:
        self.calls += 1
        if self.calls == 1:
            session.execute(sql("INSERT INTO issue (id, reporter_id) VALUES (:a, :b)"),
                            {"a": text, "b": actor.user_id})  # fails: NOT NULL columns
        return EngineReply(reply="已记录", intent="report", actions=[], citations=[],
                           engine="offline")


def test_pipeline_logs_hold_no_message_text_or_full_openid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    privacy_logs.install()
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'yishi.db'}",
                        wechat_token=SecretStr(TOKEN), wechat_aes_key=SecretStr(AES_KEY),
                        wechat_app_id=APP_ID, redis_url=None, environment="test")
    monkeypatch.setattr(pipeline, "get_settings", lambda: settings)
    engine = FailingOnce()
    monkeypatch.setattr(pipeline, "_get_engine", lambda _s: engine)
    jobs.configure(settings, immediate=True)
    signer = CallbackSigner(token=TOKEN, aes_key=AES_KEY, receive_id=APP_ID)
    query, body = signer.encrypted(text_xml(content=TEXT, msg_id="77", sender=OPENID),
                                   int(time.time()))
    query["openid"] = OPENID  # WeChat puts the sender in the callback URL too
    with caplog.at_level(logging.INFO), make_client(settings) as client:
        assert client.post("/wechat/mp", params=query, content=body).status_code == 200
        logging.getLogger("yishi.test").info("handled %s for %s", "msg", f"wechat_mp:{OPENID}")
    assert engine.calls == 1  # it failed (huey retries it later)
    logged = caplog.text + "".join(_exc(r) for r in caplog.records)
    assert "inbound" in logged and "failed" in logged
    assert OPENID not in logged
    for fragment in ("13900001111", "楼道灯坏了", "502"):
        assert fragment not in logged


def _exc(record: Any) -> str:
    return str(record.exc_text or "")
