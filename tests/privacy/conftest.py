"""Privacy fixtures: a migrated data dir with a SQLite job queue, and a resident with history."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from sqlmodel import select

from yishi.bot import pipeline
from yishi.bot.models import InboundMessage, InboundStatus
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.auth import Actor
from yishi.core.clock import timestamp
from yishi.core.config import Settings
from yishi.core.db import init_db, session_scope
from yishi.deliberation import issues as issue_service
from yishi.deliberation import threads as thread_service
from yishi.privacy import logs as privacy_logs

Channel = Literal["wechat_mp", "wecom", "web", "cli"]
OPENID = "oPrivacyResident0000000000A1"  # 28 characters, like a real OpenID
USER_ID = f"wechat_mp:{OPENID}"
PHONE = "13812345678"


@pytest.fixture
def env(yishi_env: Settings) -> Iterator[Settings]:
    """Migrated SQLite, a SQLite huey queue in the data dir, logs written to the data dir."""
    init_db(yishi_env)
    jobs.configure(yishi_env, immediate=False)
    privacy_logs.install()
    log_dir = yishi_env.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "yishi.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield yishi_env
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()
    jobs.get_huey().storage.close()


def say(text: str, *, sender: str = OPENID, channel: Channel = "wechat_mp") -> str:
    """One resident message through the real pipeline (processed in this process)."""
    msg = IncomingMessage(channel=channel, sender=sender, msg_type="text", content=text,
                          msg_id=str(int(timestamp() * 1e6)), create_time=int(timestamp()))
    return pipeline.run_turn(msg=msg).reply


@dataclass
class History:
    issue_id: int
    statement_id: int
    thread_id: int


@pytest.fixture
def history(env: Settings) -> History:
    """A resident who chatted, reported an issue with their phone number, posted and voted."""
    say("帮助")
    say(f"我家电话{PHONE}，楼下王阿姨身份证号是110101199003074514")  # held by moderation
    say("3栋2单元楼道灯坏了一周了")
    resident = Actor(user_id=USER_ID, role="resident", channel="wechat_mp")  # type: ignore[arg-type]
    staff = Actor(user_id="web:staff1", role="staff", channel="web")  # type: ignore[arg-type]
    with session_scope(env) as session:
        recorded = issue_service.record_issue(
            session=session, actor=resident,
            text=f"5栋东侧路灯不亮，晚上很黑，联系我{PHONE}", location="5栋东侧",
        )
        thread = thread_service.create_thread(
            session=session, actor=staff, title="停车收费", question="夜间停车是否收费？",
            statements=["应当公示收费明细"],
        )
        assert thread.id is not None
        st = thread_service.add_statement(session=session, actor=resident, thread_id=thread.id,
                                          text="夜间停车应当免费")
        assert st.id is not None
        thread_service.vote(session=session, actor=resident, statement_id=st.id, value="agree")
        assert recorded.issue.id is not None
        issue_id, statement_id, thread_id = recorded.issue.id, st.id, thread.id
    # A queued job that carries the resident's words (a moderator's approval, not yet run).
    with session_scope(env) as session:
        held = session.exec(select(InboundMessage).where(
            InboundMessage.user_id == USER_ID, InboundMessage.status == InboundStatus.held)).one()
        held_id = held.id
    jobs.enqueue("bot.answer_released", held_id, f"请回电{PHONE}")
    return History(issue_id=issue_id, statement_id=statement_id, thread_id=thread_id)


def files_containing(root: Path, needle: str) -> list[str]:
    """Every file under `root` whose bytes contain `needle` (UTF-8)."""
    data = needle.encode()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and data in p.read_bytes())
