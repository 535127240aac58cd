"""The outside clients core builds: Redis connections and the LangChain/OpenAI chat model.

The only core module that imports redis, langchain or openai (a test enforces it), so an
outside library reaches the rest of the code only through the functions here.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from yishi.core.config import Settings
from yishi.core.errors import Invalid

# The outside package each optional setting needs, and the setting's environment name.
OPTIONAL_DEPENDENCIES = (
    ("redis_url", "redis", "YISHI_REDIS_URL"),
    ("llm_base_url", "langchain_openai", "YISHI_LLM_BASE_URL"),
)


def require(module: str, *, setting: str) -> Any:
    """Import `module`, or raise a clear error naming the setting that needs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Invalid(
            f"缺少运行组件 {module}，无法启用 {setting}",
            hint=f"请安装 {module}（pip install -e .）或取消设置 {setting}",
        ) from exc


def check_dependencies(settings: Settings) -> None:
    """At start: every outside package a configured setting needs is importable."""
    for attribute, module, setting in OPTIONAL_DEPENDENCIES:
        if getattr(settings, attribute, None):
            require(module, setting=setting)


def redis_client(url: str, **options: Any) -> Any:
    """A Redis client for `url` (`redis.Redis`); `options` go to `Redis.from_url`."""
    redis = require("redis", setting="YISHI_REDIS_URL")
    return redis.Redis.from_url(url, **options)


def _chat_openai_class() -> type[Any]:
    require("langchain_openai", setting="YISHI_LLM_BASE_URL")
    from langchain_openai import ChatOpenAI

    class OpenAIChatModel(ChatOpenAI):
        """`ChatOpenAI` with the capability flags of `yishi.core.llm.ChatModel`."""

        supports_tools: ClassVar[bool] = True
        supports_streaming: ClassVar[bool] = True

    return OpenAIChatModel


_CHAT_CLASS: type[Any] | None = None


def build_openai_chat_model(settings: Settings, *, timeout: float, max_retries: int,
                            temperature: float) -> Any:
    """A LangChain `ChatOpenAI` (with capability flags) for the configured endpoint."""
    global _CHAT_CLASS
    if _CHAT_CLASS is None:
        _CHAT_CLASS = _chat_openai_class()
    # Local servers (llama.cpp, Ollama) accept any key, but the client insists on one.
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    return _CHAT_CLASS(
        model=str(settings.llm_model),
        base_url=settings.llm_base_url,
        api_key=key,
        timeout=timeout,
        max_retries=max_retries,
        temperature=temperature,
        stream_usage=True,
    )


def __getattr__(name: str) -> Any:
    # LangChain's message classes, for engines that build a conversation (imported on use).
    if name in {"AIMessage", "HumanMessage", "SystemMessage", "ToolMessage"}:
        from langchain_core import messages

        return getattr(messages, name)
    raise AttributeError(name)
