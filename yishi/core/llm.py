"""The LLM backend: a small chat-model protocol (built by `core.adapters` for any
OpenAI-compatible endpoint, with timeouts and bounded retries) and token usage per turn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from yishi.core.config import Settings
from yishi.core.errors import Invalid


@dataclass
class Usage:
    """Token usage accumulated over one turn (several model calls when tools run)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    models: list[str] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, message: Any) -> None:
        """Add the usage a LangChain AIMessage reports (missing usage counts as a call only)."""
        self.calls += 1
        meta = getattr(message, "usage_metadata", None) or {}
        self.prompt_tokens += int(meta.get("input_tokens", 0) or 0)
        self.completion_tokens += int(meta.get("output_tokens", 0) or 0)
        name = (getattr(message, "response_metadata", None) or {}).get("model_name")
        if name and name not in self.models:
            self.models.append(str(name))

    def as_dict(self) -> dict[str, Any]:
        """Usage as a JSON-friendly dict (recorded in the turn's actions)."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "calls": self.calls}


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: `invoke(messages)` returns a reply with `.content`; the flags say whether
    it can call tools (`bind_tools`) and stream (`stream`)."""

    @property
    def supports_tools(self) -> bool: ...

    @property
    def supports_streaming(self) -> bool: ...

    def invoke(self, input: Any, /, *args: Any, **kwargs: Any) -> Any: ...


def bind_tools(model: ChatModel, tools: Sequence[dict[str, Any]]) -> Any:
    """`model` with `tools` bound, or a clear error when the model cannot call tools."""
    if not model.supports_tools:
        raise Invalid("当前大模型不支持工具调用",
                      hint="请换用支持工具调用的模型（YISHI_LLM_MODEL）")
    return model.bind_tools(list(tools))  # type: ignore[attr-defined]


def build_chat_model(
    settings: Settings, *, timeout: float | None = None, max_retries: int | None = None,
    temperature: float = 0.2,
) -> ChatModel:
    """A chat model for `YISHI_LLM_BASE_URL` / `_MODEL` / `_API_KEY` (OpenAI, DeepSeek, Qwen,
    vLLM, llama.cpp, Ollama: anything that speaks the OpenAI chat completions API)."""
    if not settings.llm_enabled:
        raise Invalid("未配置大模型", hint="设置 YISHI_LLM_BASE_URL 和 YISHI_LLM_MODEL 后再试")
    from yishi.core import adapters

    model: ChatModel = adapters.build_openai_chat_model(
        settings,
        timeout=settings.llm_timeout if timeout is None else timeout,
        max_retries=settings.llm_max_retries if max_retries is None else max_retries,
        temperature=temperature,
    )
    return model
