"""Scenario support shared by the bot tests and bench/bench_engine.py: a small fake knowledge
service behind the contract, the discussion world, and the scenario runner that scores intents,
fields and actions."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from sqlmodel import Session

import yishi.bot.memory_models  # noqa: F401  (tables for create_all)
from yishi.bot.intents import extract_category, extract_location, extract_urgency
from yishi.bot.offline import OfflineEngine
from yishi.core.auth import Actor
from yishi.core.config import Settings
from yishi.core.db import create_all, make_engine
from yishi.core.models import Role

SCENARIOS = Path(__file__).parent / "conversations.yaml"



# ---------------------------------------------------------------- a fake knowledge service
@dataclass
class _Doc:
    title: str
    article: str
    text: str
    keys: tuple[str, ...]


_DOCS = (
    _Doc("示例社区管理规约", "第八条",
         "本规约示例：加装电梯等共用设施改造事项，由业主按议事规则表决决定。", ("电梯",)),
    _Doc("示例维修资金办法", "第五条",
         "本办法示例：使用专项维修资金应由业主提出方案并经表决，再向主管部门备案。",
         ("维修资金", "维修基金")),
    _Doc("示例业主组织规则", "第三条", "本规则示例：业主委员会由业主大会选举产生，对业主大会负责。",
         ("业主委员会", "业委会")),
)


@dataclass
class _Citation:
    source: str
    title: str
    article: str


@dataclass
class _Answer:
    text: str
    citations: list[_Citation] = field(default_factory=list)
    confident: bool = False


@dataclass
class _Hit:
    source: str
    title: str
    article: str
    chapter: str
    text: str
    score: float


def fake_knowledge() -> ModuleType:
    """A module with `search` and `answer` shaped like the knowledge contract."""
    module = ModuleType("yishi.knowledge.service")

    def search(query: str, *, k: int = 5, filters: dict[str, Any] | None = None) -> list[_Hit]:
        return [_Hit(d.title + ".md", d.title, d.article, "", d.text, 1.0)
                for d in _DOCS if any(key in query for key in d.keys)][:k]

    def answer(query: str, *, k: int = 3) -> _Answer:
        hits = search(query, k=k)
        if not hits:
            return _Answer(text="没有找到依据", confident=False)
        text = "\n".join(f"{h.text}（《{h.title}》{h.article}）" for h in hits)
        return _Answer(text=text, confident=True,
                       citations=[_Citation(h.source, h.title, h.article) for h in hits])

    module.search = search  # type: ignore[attr-defined]
    module.answer = answer  # type: ignore[attr-defined]
    return module


def install_fake_knowledge(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Put the fake behind `from yishi.knowledge import service`."""
    import yishi.knowledge

    module = fake_knowledge()
    monkeypatch.setitem(sys.modules, "yishi.knowledge.service", module)
    monkeypatch.setattr(yishi.knowledge, "service", module, raising=False)
    return module


# ---------------------------------------------------------------- world and runner
RESIDENT = Actor(user_id="wechat_mp:oRes1", role=Role.resident, channel="wechat_mp")
STAFF = Actor(user_id="wecom:staff1", role=Role.staff, channel="wecom")


def make_world(session: Session) -> None:
    """Two open threads with statements and a few votes (ids 1-5)."""
    from yishi.deliberation import threads

    t1 = threads.create_thread(session=session, actor=STAFF, title="停车收费调整",
                               question="小区停车收费标准要不要调整？",
                               statements=["外来车辆停车费应该提高", "业主月租车位不应涨价",
                                           "收费标准应先公示再执行"])
    threads.create_thread(session=session, actor=STAFF, title="垃圾分类投放时间",
                          question="定时定点投放的时间怎么安排？",
                          statements=["早上投放时间延长到九点", "晚上增加一个投放时段"])
    for n in range(3):
        voter = Actor(user_id=f"wechat_mp:seed{n}", role=Role.resident, channel="wechat_mp")
        threads.post_to_thread(session=session, actor=voter, thread_id=int(t1.id or 0),
                               text=f"我觉得停车收费要公开透明，第{n}位邻居的看法")
        for sid, value in ((1, "agree"), (2, "agree" if n else "disagree"), (3, "agree")):
            threads.vote(session=session, actor=voter, statement_id=sid, value=value)


def _memory_engine() -> Any:
    from sqlalchemy.pool import StaticPool
    from sqlmodel import create_engine

    return create_engine("sqlite://", poolclass=StaticPool,
                         connect_args={"check_same_thread": False})


@dataclass
class Score:
    intent_total: int = 0
    intent_ok: int = 0
    field_total: int = 0
    field_ok: int = 0
    action_total: int = 0
    action_ok: int = 0
    conversations: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def intent_accuracy(self) -> float:
        return self.intent_ok / max(self.intent_total, 1)

    @property
    def field_accuracy(self) -> float:
        return self.field_ok / max(self.field_total, 1)

    @property
    def action_accuracy(self) -> float:
        return self.action_ok / max(self.action_total, 1)


def load_scenarios() -> list[dict[str, Any]]:
    """The scenario conversations from tests/bot/scenarios/."""
    data: list[dict[str, Any]] = []
    for path in sorted(SCENARIOS.parent.glob("*.yaml")):
        data.extend(yaml.safe_load(path.read_text(encoding="utf-8")))
    return data


def _field_values(text: str, pending_text: str | None) -> dict[str, Any]:
    # For a follow-up turn the category/urgency come from the first message, the place from this.
    source = pending_text or text
    return {"location": extract_location(text), "category": extract_category(source),
            "urgency": extract_urgency(source)}


def run_scenarios(
    settings: Settings, db_url: str, *, timings: list[float] | None = None,
    only: Callable[[dict[str, Any]], bool] | None = None,
) -> Score:
    """Play every conversation against a fresh database ("memory" for in-memory SQLite, else a
    URL prefix for files); score intents, fields and actions."""
    import time

    score = Score()
    template = _memory_engine() if db_url == "memory" else make_engine(f"{db_url}-template.db")
    create_all(template)
    with Session(template, expire_on_commit=False) as session:
        make_world(session)
    for index, convo in enumerate(c for c in load_scenarios() if only is None or only(c)):
        # Each conversation starts from a copy of the same world (SQLite's backup API: fast).
        engine = _memory_engine() if db_url == "memory" else make_engine(f"{db_url}-{index}.db")
        source, target = template.raw_connection(), engine.raw_connection()
        source.driver_connection.backup(target.driver_connection)  # type: ignore[union-attr]
        source.close()
        target.close()
        bot = OfflineEngine(settings)
        actor = STAFF if convo.get("role") == "staff" else Actor(
            user_id=f"wechat_mp:o{index}", role=Role.resident, channel="wechat_mp")
        score.conversations += 1
        with Session(engine, expire_on_commit=False) as session:
            pending_text: str | None = None
            for turn in convo["turns"]:
                started = time.perf_counter()
                reply = bot.respond(session=session, actor=actor, text=str(turn["say"]))
                if timings is not None:
                    timings.append(time.perf_counter() - started)
                tag = f"{convo['id']}: {turn['say']}"
                if not reply.reply.strip():
                    score.failures.append(f"{tag}: empty reply")
                score.intent_total += 1
                if reply.intent == turn["intent"]:
                    score.intent_ok += 1
                else:
                    score.failures.append(f"{tag}: intent {reply.intent} != {turn['intent']}")
                for name, want in (turn.get("fields") or {}).items():
                    got = _field_values(str(turn["say"]), pending_text)[name]
                    score.field_total += 1
                    if got == want:
                        score.field_ok += 1
                    else:
                        score.failures.append(f"{tag}: {name} {got!r} != {want!r}")
                if "action" in turn:
                    score.action_total += 1
                    types = [a.get("type") for a in reply.actions]
                    if turn["action"] in types:
                        score.action_ok += 1
                    else:
                        score.failures.append(f"{tag}: action {turn['action']} not in {types}")
                asked = any(a.get("type") == "ask" and a.get("field") == "location"
                            for a in reply.actions)
                pending_text = (pending_text or str(turn["say"])) if asked else None
        engine.dispose()
    template.dispose()
    return score


