"""The LLM judge through the real langchain/openai client against a local scripted server."""

from __future__ import annotations

import json

from pydantic import SecretStr

from tests.fakes.openai_server import FakeOpenAIServer, hang, http_error, text
from yishi.core.config import Settings
from yishi.moderation import adapters, service

BORDER = "修空调的张师傅电话13912345678，手艺不错"


def _settings(server: FakeOpenAIServer) -> Settings:
    return Settings(
        llm_base_url=server.base_url,
        llm_model=server.model,
        llm_api_key=SecretStr("k"),
        llm_timeout=1.0,
    )


def test_no_llm_means_no_judge() -> None:
    assert adapters.build_judge(Settings(llm_base_url=None, llm_model=None)) is None


def test_llm_judge_decides_the_borderline_band_only() -> None:
    with FakeOpenAIServer() as server:
        judge = adapters.build_judge(_settings(server))
        assert judge is not None
        server.enqueue(
            text(json.dumps({"action": "allow", "categories": [], "reason": "抱怨噪音"}))
        )
        v = service.screen(BORDER, judge=judge)
        assert v.action == "allow"
        assert any("抱怨噪音" in r for r in v.reasons)
        prompt = json.dumps(server.history[0], ensure_ascii=False)
        assert "<message>" in prompt and BORDER in prompt
        service.screen("你就是个傻逼", judge=judge)  # clear block: the judge is not asked
        assert len(server.history) == 1


def test_llm_errors_timeouts_and_garbage_fall_back_offline() -> None:
    offline = service.screen(BORDER)
    with FakeOpenAIServer() as server:
        judge = adapters.build_judge(_settings(server))
        server.enqueue(http_error(500), hang(3.0), text("我觉得还行吧"))
        for _ in range(3):
            assert service.screen(BORDER, judge=judge) == offline
