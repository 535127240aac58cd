"""Settings: one `Settings` object read from `YISHI_*` environment variables (and `.env`)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret", "xxx"}


class ReplyMode(StrEnum):
    push = "push"  # ack at once, answer through the customer-service API (verified accounts)
    passive = "passive"  # hold the request across WeChat's retries, answer in the HTTP body


class Settings(BaseSettings):
    """All of Yishi's configuration. Built once per process by `get_settings()`."""

    model_config = SettingsConfigDict(env_prefix="YISHI_", env_file=".env", extra="ignore")

    environment: str = "development"  # development | production
    data_dir: Path = Path("./var")
    database_url: str | None = None  # default: sqlite:///<data_dir>/yishi.db
    redis_url: str | None = None
    log_level: str = "INFO"
    community_name: str = "和园小区"
    # Opinion groups smaller than this are never shown (merged into the nearest group).
    deliberation_min_group_size: int = 5

    # Jobs
    jobs_immediate: bool = False  # run jobs synchronously in the caller (tests, `yishi chat`)
    worker_threads: int = 2

    # Knowledge
    chroma_url: str | None = None  # http://host:port for a Chroma server; default embedded
    knowledge_dir: Path | None = None  # extra documents loaded on first run
    load_sample_knowledge: bool = True

    # Moderation
    moderation_lexicon_paths: list[Path] = Field(default_factory=list)  # weak external lexicons
    moderation_policy_path: Path | None = None  # per-community thresholds (TOML/JSON)

    # Deliberation
    responsibility_path: Path | None = None  # responsibility list override (TOML/JSON)

    # WeChat Official Account
    wechat_token: SecretStr | None = None
    wechat_aes_key: SecretStr | None = None
    wechat_aes_key_previous: SecretStr | None = None
    wechat_app_id: str | None = None
    wechat_app_secret: SecretStr | None = None
    wechat_api_base_url: str = "https://api.weixin.qq.com/cgi-bin/"
    wechat_reply_mode: ReplyMode = ReplyMode.push
    wechat_timestamp_tolerance: int = 300  # seconds; older (or future) timestamps are refused
    # plaintext | compatible | safe; default: safe when an EncodingAESKey and AppID are set.
    # Safe mode accepts only encrypted bodies (the plaintext signature does not cover the body).
    wechat_message_mode: str | None = None
    # Passive mode: how long one of WeChat's tries waits for the answer, and how long an unready
    # try is then kept open so that WeChat (which gives up after 5 s) retries instead of stopping.
    wechat_passive_wait_s: float = 4.5
    wechat_passive_hold_s: float = 1.0

    # WeCom (企业微信) app and group robot
    wecom_token: SecretStr | None = None
    wecom_aes_key: SecretStr | None = None
    wecom_aes_key_previous: SecretStr | None = None
    wecom_corp_id: str | None = None
    wecom_agent_id: str | None = None
    wecom_secret: SecretStr | None = None
    wecom_api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    wecom_robot_webhook_url: str | None = None  # group robot: full webhook URL with key

    # WeCom 智能机器人 (AI bot): JSON callbacks at /wechat/aibot (docs/channels.md)
    wecom_aibot_token: SecretStr | None = None
    wecom_aibot_aes_key: SecretStr | None = None
    # How long the first callback waits for the answer before replying with an open stream.
    wecom_aibot_wait_s: float = 2.0

    # Photos in reports: fetched through the configured API's media endpoint only (docs/channels.md)
    media_max_bytes: int = 10 * 1024 * 1024
    media_attach_minutes: int = 30  # a photo joins a report made this recently (or the next one)

    # LLM (any OpenAI-compatible endpoint)
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: float = 20.0
    llm_max_retries: int = 1

    # Conversation memory
    memory_turns: int = 8
    memory_retention_days: int = 90

    # Admin bootstrap token (optional): a bearer token with the admin role
    admin_token: SecretStr | None = None
    # Bearer tokens issued from now on expire after this many days (0: never)
    token_ttl_days: int = 365

    # Personal data: raw message texts are kept this many days, then purged by the sweep
    retention_days: int = 180
    # /docs and /openapi.json (default: on in development, off in production)
    api_docs: bool | None = None

    max_body_bytes: int = 64 * 1024
    # Flood control: messages a resident may send a minute before Yishi asks them to slow down
    # (shared by every process when Redis is configured).
    resident_messages_per_minute: int = 15

    # Production bounds (docs/production.md). Slow clients: headers and body must arrive in
    # time, and one process holds at most so many open requests (uvicorn answers 503 beyond).
    http_header_timeout_s: float = 10.0
    request_body_timeout_s: float = 10.0
    http_max_concurrency: int = 1000
    # Sends retry with exponential backoff and jitter until the message's deadline (WeChat's
    # customer-service window), not a fixed count; a circuit breaker per channel stops an
    # outage from using up attempts, and the backlog drains in order at a bounded rate.
    inbound_lease_s: float = 60.0  # a worker's hold on a message it is answering
    send_deadline_hours: float = 48.0
    send_retry_base_s: float = 2.0
    send_retry_max_s: float = 60.0
    breaker_failures: int = 5
    breaker_open_s: float = 15.0
    drain_per_second: float = 20.0
    # A send whose worker died between calling the API and recording its answer: "flag" lists
    # it for staff (never a duplicate), "resend" sends it again (never lost, maybe twice).
    send_uncertain: str = "flag"

    # The resident chat simulator at /chat (default: on in development, off in production);
    # it only serves clients on this machine.
    simulator: bool | None = None

    @property
    def api_docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.environment != "production"

    @property
    def simulator_enabled(self) -> bool:
        return self.simulator if self.simulator is not None else self.environment != "production"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment != "production":
            return self
        for name in ("wechat_token", "wechat_app_secret", "wecom_secret", "admin_token",
                     "wecom_aibot_token"):
            value = getattr(self, name)
            if value is not None and value.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"YISHI_{name.upper()} is a placeholder; set a real secret")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'yishi.db').resolve()}"

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)

    @property
    def wechat_enabled(self) -> bool:
        return self.wechat_token is not None

    @property
    def wecom_enabled(self) -> bool:
        return self.wecom_token is not None and self.wecom_aes_key is not None

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return Settings()
