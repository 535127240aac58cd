"""Two worker processes on PostgreSQL + Redis receiving the same message: exactly one reply."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from tests.fakes.wechat_server import CUSTOM_SEND, FakeWeChatServer
from yishi.bot import pipeline
from yishi.bot.models import InboundMessage, InboundStatus
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.config import get_settings
from yishi.core.db import session_scope


def test_same_message_at_two_workers_gets_one_reply(
    pg_env: object, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with FakeWeChatServer() as wx:
        env_vars = {
            "YISHI_REDIS_URL": redis_url,
            "YISHI_WECHAT_TOKEN": "tok",
            "YISHI_WECHAT_APP_ID": wx.app_id,
            "YISHI_WECHAT_APP_SECRET": wx.app_secret,
            "YISHI_WECHAT_API_BASE_URL": wx.base_url,
            "YISHI_LOAD_SAMPLE_KNOWLEDGE": "false",
        }
        for key, value in env_vars.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        settings = get_settings()
        jobs.configure(settings, immediate=False)
        jobs.get_huey().flush()
        msgs = [
            IncomingMessage(
                channel="wechat_mp",
                sender=f"oRes{i}",
                content="帮助",
                msg_id=f"42{i}",
                create_time=1700000000 + i,
            )
            for i in range(5)
        ]
        with session_scope(settings) as session:
            ids = [pipeline.accept(session=session, msg=m).inbound_id for m in msgs]
            # WeChat's retries reach the API again, and a message may be enqueued twice
            for m in msgs:
                assert pipeline.accept(session=session, msg=m).duplicate
        for inbound_id in ids:
            for _ in range(3):
                jobs.enqueue("bot.process_inbound", inbound_id)

        env = dict(os.environ)
        logs_out = [open(tmp_path / f"w{n}.log", "w") for n in range(2)]  # noqa: SIM115
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "yishi.cli", "worker", "--threads", "2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=logs_out[n],
            )
            for n in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(wx.sent(CUSTOM_SEND)) < len(ids):
                time.sleep(0.2)
            time.sleep(1.5)  # let any duplicate show itself
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=20)
            for f in logs_out:
                f.close()
        logs = "\n".join((tmp_path / f"w{n}.log").read_text()[-2000:] for n in range(2))
        sends = wx.sent(CUSTOM_SEND)
        assert sorted(s["touser"] for s in sends) == sorted(m.sender for m in msgs), logs
        with session_scope(settings) as session:
            rows = session.exec(select(InboundMessage)).all()
            assert all(r.status is InboundStatus.replied for r in rows)
            owners = {r.lease_owner for r in rows}
            assert owners == {None}
