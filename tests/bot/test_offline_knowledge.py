"""Integration: both engines with the real knowledge service (its index built from a tmp data
dir holding one small document written for this test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from tests.bot.scenarios.support import RESIDENT
from tests.fakes.openai_server import FakeOpenAIServer, text, tool_call
from yishi.bot.agent import AgentEngine
from yishi.bot.offline import OfflineEngine
from yishi.core.config import Settings, get_settings
from yishi.core.db import create_all, make_engine

DOC = """# 示例小区议事规约

本规约为测试用示例文件，所述小区均为虚构。

## 第一章 总则

第一条 小区加装电梯事项，应当由所在楼栋业主共同协商，并经表决同意后实施。

第二条 小区公共区域的照明设施由物业服务企业负责维护，损坏后应当在两日内修复。
"""


@pytest.fixture(scope="module")
def knowledge_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose data dir holds a built index of DOC only (built once for the module)."""
    from yishi.knowledge import service as knowledge_service

    root = tmp_path_factory.mktemp("kn")
    docs = root / "docs"
    docs.mkdir()
    (docs / "议事规约.md").write_text(DOC, encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setenv("YISHI_DATA_DIR", str(root / "var"))
    mp.setenv("YISHI_LOAD_SAMPLE_KNOWLEDGE", "false")
    mp.setenv("YISHI_KNOWLEDGE_DIR", str(docs))
    get_settings.cache_clear()
    knowledge_service.reset_index_cache()
    settings = get_settings()
    knowledge_service.ensure_ready(settings)
    yield settings
    knowledge_service.reset_index_cache()
    get_settings.cache_clear()
    mp.undo()


@pytest.fixture
def session(knowledge_settings: Settings, tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    create_all(engine)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


def test_offline_answer_cites_the_real_index(
    knowledge_settings: Settings, session: Session
) -> None:
    reply = OfflineEngine(knowledge_settings).respond(
        session=session, actor=RESIDENT, text="我们楼想加装电梯，需要怎么同意？")
    assert reply.intent == "question"
    assert {"source": "议事规约.md", "article": "第一条"} in reply.citations
    assert "《示例小区议事规约》第一条" in reply.reply


def test_agent_search_tool_uses_the_real_index(
    knowledge_settings: Settings, session: Session
) -> None:
    with FakeOpenAIServer() as llm:
        settings = knowledge_settings.model_copy(update={
            "llm_base_url": llm.base_url, "llm_model": "fake-model", "llm_timeout": 2.0,
            "llm_max_retries": 0})
        llm.enqueue(tool_call("search_knowledge", {"query": "楼道灯坏了多久修"}),
                    text("根据《示例小区议事规约》第二条，物业应在两日内修复。"))
        reply = AgentEngine(settings).respond(session=session, actor=RESIDENT,
                                              text="楼道灯坏了物业多久要修好？")
        assert reply.engine == "llm"
        assert {"source": "议事规约.md", "article": "第二条"} in reply.citations
        tool_msg = next(m for m in llm.history[1]["messages"] if m["role"] == "tool")
        assert "两日内修复" in tool_msg["content"]
