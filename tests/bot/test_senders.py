"""Senders against the local WeChat API server: tokens, 40001/42001 refresh, errors, splitting,
the group robot's 20 messages a minute."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fakes.wechat_server import (
    CUSTOM_SEND,
    ROBOT,
    TOKEN,
    WECOM_SEND,
    WECOM_TOKEN,
    FakeWeChatServer,
)
from yishi.bot.adapters import (
    LocalRateLimiter,
    MpCustomerServiceSender,
    RedisRateLimiter,
    RobotWebhookSender,
    WeChatApiError,
    WeComAppSender,
    build_senders,
)
from yishi.bot.token_cache import DbTokenStore, TokenCache
from yishi.core.config import Settings
from yishi.core.db import create_all, make_engine

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def wx() -> Iterator[FakeWeChatServer]:
    with FakeWeChatServer(robot_key=uuid.uuid4().hex) as server:
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[TokenCache]:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_all(engine)
    yield TokenCache(DbTokenStore(engine))
    engine.dispose()


@pytest.fixture
def mp(wx: FakeWeChatServer, cache: TokenCache) -> MpCustomerServiceSender:
    return MpCustomerServiceSender(
        app_id=wx.app_id, secret=wx.app_secret, api_base_url=wx.base_url, cache=cache
    )


def test_customer_service_text_is_sent_once_with_one_token(
    wx: FakeWeChatServer, mp: MpCustomerServiceSender
) -> None:
    mp.send_text(to_user="oUser1", text="您好，3栋2单元的报修已记录。")
    mp.send_text(to_user="oUser2", text="第二条")
    assert len(wx.calls(TOKEN)) == 1
    assert wx.sent(CUSTOM_SEND) == [
        {"touser": "oUser1", "msgtype": "text",
         "text": {"content": "您好，3栋2单元的报修已记录。"}},
        {"touser": "oUser2", "msgtype": "text", "text": {"content": "第二条"}},
    ]
    assert wx.calls(CUSTOM_SEND)[0].query["access_token"] == "ACCESS_mp_1"


def test_long_text_is_split_at_sentence_ends_under_2048_bytes(
    wx: FakeWeChatServer, mp: MpCustomerServiceSender
) -> None:
    sentence = "根据《物业管理条例》第十一条，业主大会决定共有部分的改建事项。"
    text = sentence * 80  # about 7,400 bytes
    mp.send_text(to_user="oUser1", text=text)
    parts = [body["text"]["content"] for body in wx.sent(CUSTOM_SEND)]
    assert len(parts) >= 4
    assert all(len(p.encode()) <= 2048 for p in parts)
    assert all(p.endswith("。") for p in parts)
    assert "".join(parts) == text


@pytest.mark.parametrize("code", [40001, 42001])
def test_invalid_token_is_refreshed_and_the_send_retried(
    wx: FakeWeChatServer, mp: MpCustomerServiceSender, code: int
) -> None:
    mp.send_text(to_user="o1", text="先拿到令牌")
    wx.script(CUSTOM_SEND, code)
    mp.send_text(to_user="o1", text="令牌失效后重发")
    assert len(wx.calls(TOKEN)) == 2
    assert [b["text"]["content"] for b in wx.sent(CUSTOM_SEND)] == ["先拿到令牌", "令牌失效后重发"]
    assert wx.calls(CUSTOM_SEND)[-1].query["access_token"] == "ACCESS_mp_2"


def test_expired_token_on_the_server_is_refreshed(
    wx: FakeWeChatServer, mp: MpCustomerServiceSender
) -> None:
    mp.send_text(to_user="o1", text="一")
    wx.expire_tokens()
    mp.send_text(to_user="o1", text="二")
    assert len(wx.calls(TOKEN)) == 2
    assert len(wx.sent(CUSTOM_SEND)) == 2


def test_token_refused_twice_gives_up(wx: FakeWeChatServer, mp: MpCustomerServiceSender) -> None:
    wx.script(CUSTOM_SEND, 40001, 40001)
    with pytest.raises(WeChatApiError) as exc:
        mp.send_text(to_user="o1", text="x")
    assert exc.value.errcode == 40001
    assert wx.sent(CUSTOM_SEND) == []


@pytest.mark.parametrize(
    "answer,errcode,retryable",
    [
        (45015, 45015, False),  # 48 h window closed
        (45047, 45047, False),  # customer-service quota used up
        (45009, 45009, True),  # rate limit
        (-1, -1, True),  # system busy
        (("http", 502), 502, True),
        (("http", 503), 503, True),
    ],
)
def test_api_errors_say_whether_to_retry(
    wx: FakeWeChatServer,
    mp: MpCustomerServiceSender,
    answer: int | tuple[str, int],
    errcode: int,
    retryable: bool,
) -> None:
    wx.script(CUSTOM_SEND, answer)
    with pytest.raises(WeChatApiError) as exc:
        mp.send_text(to_user="o1", text="你好")
    assert exc.value.errcode == errcode
    assert exc.value.retryable is retryable
    if errcode in (45015, 45047):
        assert "下次发消息" in str(exc.value)  # says what happens next
    assert wx.sent(CUSTOM_SEND) == []
    mp.send_text(to_user="o1", text="你好")  # the next try goes through
    assert len(wx.sent(CUSTOM_SEND)) == 1


def test_unreachable_server_is_a_retryable_network_error(cache: TokenCache) -> None:
    sender = MpCustomerServiceSender(
        app_id="a", secret="s", api_base_url="http://127.0.0.1:9/cgi-bin/", cache=cache,
        timeout=2.0,
    )
    with pytest.raises(WeChatApiError) as exc:
        sender.send_text(to_user="o1", text="x")
    assert exc.value.retryable


def test_wecom_app_message(wx: FakeWeChatServer, cache: TokenCache) -> None:
    sender = WeComAppSender(
        corp_id=wx.corp_id, secret=wx.corp_secret, agent_id="1000002",
        api_base_url=wx.base_url, cache=cache,
    )
    sender.send_text(to_user="zhangsan", text="停车收费讨论的总结已生成。")
    wx.script(WECOM_SEND, 42001)
    sender.send_text(to_user="zhangsan", text="第二条")
    fetches = wx.calls(WECOM_TOKEN)
    assert len(fetches) == 2
    assert fetches[0].query == {"corpid": wx.corp_id, "corpsecret": wx.corp_secret}
    sent = wx.sent(WECOM_SEND)
    assert [(b["touser"], b["agentid"], b["msgtype"], b["text"]["content"]) for b in sent] == [
        ("zhangsan", 1000002, "text", "停车收费讨论的总结已生成。"),
        ("zhangsan", 1000002, "text", "第二条"),
    ]


def test_robot_never_exceeds_20_a_minute(wx: FakeWeChatServer) -> None:
    sender = RobotWebhookSender(webhook_url=wx.robot_url, limiter=LocalRateLimiter())
    for i in range(20):
        sender.send_text(text=f"第{i}条")
    with pytest.raises(WeChatApiError) as exc:
        sender.send_text(text="第21条")
    assert exc.value.errcode == 45009 and exc.value.retryable
    assert exc.value.retry_after is not None and 0 < exc.value.retry_after <= 60
    assert len(wx.calls(ROBOT)) == 20  # the 21st never reached WeChat
    assert len(wx.sent(ROBOT)) == 20


def test_robot_reserves_all_parts_or_none(wx: FakeWeChatServer) -> None:
    sender = RobotWebhookSender(webhook_url=wx.robot_url, limiter=LocalRateLimiter(per_minute=3))
    sender.send_text(text="一")
    sender.send_text(text="二")
    long_text = "这是一句很长的话。" * 100  # two parts, one slot left
    with pytest.raises(WeChatApiError) as exc:
        sender.send_text(text=long_text)
    assert exc.value.errcode == 45009
    assert len(wx.calls(ROBOT)) == 2  # no half message went out
    with pytest.raises(WeChatApiError) as too_long:
        sender.send_text(text="这是一句很长的话。" * 5000)
    assert too_long.value.errcode == 45002 and not too_long.value.retryable


def test_local_limiter_window_slides() -> None:
    limiter = LocalRateLimiter(per_minute=2, window_s=0.2)
    assert limiter.reserve("k", 2) == 0.0
    wait = limiter.reserve("k", 1)
    assert 0 < wait <= 0.2
    import time

    time.sleep(wait + 0.01)
    assert limiter.reserve("k", 1) == 0.0


@pytest.mark.redis
def test_redis_limiter_is_shared_between_processes(wx: FakeWeChatServer) -> None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception:
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
    # Two senders with their own Redis connections stand for two worker processes.
    a = RobotWebhookSender(webhook_url=wx.robot_url,
                           limiter=RedisRateLimiter(redis.Redis.from_url(REDIS_URL)))
    b = RobotWebhookSender(webhook_url=wx.robot_url,
                           limiter=RedisRateLimiter(redis.Redis.from_url(REDIS_URL)))
    for i in range(12):
        a.send_text(text=f"a{i}")
    for i in range(8):
        b.send_text(text=f"b{i}")
    with pytest.raises(WeChatApiError) as exc:
        b.send_text(text="b8")
    assert exc.value.errcode == 45009
    with pytest.raises(WeChatApiError):
        a.send_text(text="a12")
    assert len(wx.calls(ROBOT)) == 20


def test_robot_errors_are_raised(wx: FakeWeChatServer) -> None:
    sender = RobotWebhookSender(webhook_url=wx.robot_url + "x", limiter=LocalRateLimiter())
    with pytest.raises(WeChatApiError) as exc:
        sender.send_text(text="hi")
    assert exc.value.errcode == 93000 and not exc.value.retryable


def test_build_senders_from_settings(tmp_path: Path, wx: FakeWeChatServer) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'y.db'}",
        redis_url=None,
        wechat_app_id=wx.app_id,
        wechat_app_secret=wx.app_secret,  # type: ignore[arg-type]
        wechat_api_base_url=wx.base_url,
        wecom_corp_id=wx.corp_id,
        wecom_secret=wx.corp_secret,  # type: ignore[arg-type]
        wecom_agent_id="1000002",
        wecom_api_base_url=wx.base_url.rstrip("/"),
        wecom_robot_webhook_url=wx.robot_url,
    )
    from yishi.core.db import get_engine

    create_all(get_engine(settings))
    senders = build_senders(settings)
    assert set(senders) == {"wechat_mp", "wecom", "wecom_robot"}
    for sender in senders.values():
        sender.send_text(to_user="someone", text="测试")
    assert len(wx.sent(CUSTOM_SEND)) == len(wx.sent(WECOM_SEND)) == len(wx.sent(ROBOT)) == 1
    assert build_senders(Settings(data_dir=tmp_path, redis_url=None, wechat_app_id=None,
                                  wecom_corp_id=None, wecom_robot_webhook_url=None)) == {}


def test_secrets_never_reach_the_logs(
    wx: FakeWeChatServer, mp: MpCustomerServiceSender, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.DEBUG):
        mp.send_text(to_user="o1", text="你好")
        RobotWebhookSender(webhook_url=wx.robot_url, limiter=LocalRateLimiter()).send_text(
            text="群消息"
        )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/cgi-bin/token" in logged  # httpx did log the token fetch ...
    assert wx.app_secret not in logged  # ... without the secret
    assert wx.robot_key not in logged
    assert not any(token in logged for token in wx.valid_tokens)
    assert "access_token=***" in logged
