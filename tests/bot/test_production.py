"""Production bounds on both backends: poison rows, deep XML, slow bodies, sends that outlive an
outage (deadline, breaker, ordered drain), exactly-once claims, flood notices, fail-open."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select
from starlette.requests import Request

from tests.fakes.wechat_server import (
    CUSTOM_SEND,
    MSG_RECORD,
    CallbackSigner,
    FakeWeChatServer,
    text_xml,
)
from yishi.bot import pipeline
from yishi.bot.acceptor import MessageRefused, accept_many
from yishi.bot.adapters import (
    FailOpenRateLimiter,
    LocalCircuitBreaker,
    LocalRateLimiter,
    RedisRateLimiter,
    build_resident_limiter,
)
from yishi.bot.channels.routes import BodyTimeout, read_body_limited
from yishi.bot.models import InboundMessage, OutboundMessage, OutboundStatus
from yishi.bot.schemas import Accepted, IncomingMessage
from yishi.bot.service import get_flagged
from yishi.core import clock, jobs
from yishi.core.clock import utcnow
from yishi.core.config import Settings, get_settings
from yishi.core.db import init_db, session_scope


@pytest.fixture
def env(yishi_env: Settings, monkeypatch: pytest.MonkeyPatch, wx: FakeWeChatServer) -> Settings:
    monkeypatch.setenv("YISHI_WECHAT_TOKEN", "tok")
    monkeypatch.setenv("YISHI_WECHAT_APP_ID", wx.app_id)
    monkeypatch.setenv("YISHI_WECHAT_APP_SECRET", wx.app_secret)
    monkeypatch.setenv("YISHI_WECHAT_API_BASE_URL", wx.base_url)
    monkeypatch.setenv("YISHI_BREAKER_FAILURES", "2")
    get_settings.cache_clear()
    pipeline.reset_caches()
    settings = get_settings()
    init_db(settings)
    jobs.configure(settings, immediate=False)
    jobs.get_huey().flush()
    return settings


def _msg(n: int, **fields: Any) -> IncomingMessage:
    values: dict[str, Any] = {
        "channel": "wechat_mp",
        "sender": f"oRes{n}",
        "content": "帮助",
        "msg_id": f"9{n:05d}",
        "create_time": 1_700_000_000 + n,
    }
    values.update(fields)
    return IncomingMessage(**values)


def _queue(settings: Settings, count: int) -> list[int]:
    from yishi.bot import outbox

    with session_scope(settings) as session:
        rows = [
            outbox.queue(
                session=session, user_id=f"wechat_mp:oRes{n}", text=f"答复{n}", kind="reply"
            )
            for n in range(count)
        ]
        return [int(r.id or 0) for r in rows]


def _outbound(settings: Settings, outbound_id: int) -> OutboundMessage:
    with session_scope(settings) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        return row


# ---------------------------------------------------------------- one bad message harms no other


@pytest.mark.parametrize(
    "poison",
    [
        {"create_time": 2**63},  # beyond BIGINT
        {"msg_type": "t" * 21},
        {"sender": "o" * 201},
        {"content": "前\x00后"},  # PostgreSQL text cannot hold NUL
    ],
    ids=["create_time", "msg_type", "sender", "nul"],
)
def test_a_poison_message_is_refused_alone_and_its_batch_is_stored(
    env: Settings, poison: dict[str, Any]
) -> None:
    msgs = [_msg(n) for n in range(5)]
    msgs.insert(2, _msg(99, **poison))
    with session_scope(env) as session:
        results = accept_many(session=session, msgs=msgs)
    assert isinstance(results[2], MessageRefused) and results[2].status_code == 400
    good = [r for i, r in enumerate(results) if i != 2]
    assert all(isinstance(r, Accepted) and not r.duplicate for r in good)
    with session_scope(env) as session:
        stored = session.exec(select(InboundMessage.sender)).all()
    assert sorted(stored) == sorted(f"oRes{n}" for n in range(5))


def test_a_row_the_database_refuses_is_retried_alone(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yishi.bot import acceptor

    monkeypatch.setattr(acceptor, "check_row", lambda values: None)  # let it reach the database
    msgs = [_msg(1), _msg(2, msg_type="x" * 40), _msg(3)]
    with session_scope(env) as session:
        results = accept_many(session=session, msgs=msgs)
    if env.resolved_database_url.startswith("sqlite"):  # SQLite stores any length
        assert all(isinstance(r, Accepted) for r in results)
        return
    assert isinstance(results[1], MessageRefused)
    assert isinstance(results[0], Accepted) and isinstance(results[2], Accepted)


def _webhook_client(settings: Settings) -> TestClient:
    from fastapi import FastAPI

    from yishi.bot.channels import routes

    app = FastAPI()
    app.include_router(routes.router)
    app.state.settings = settings
    return TestClient(app)


def test_webhook_answers_400_for_an_oversized_field_and_stores_the_rest(env: Settings) -> None:
    signer = CallbackSigner(token="tok")
    now = int(time.time())
    with _webhook_client(env) as client:
        bad = text_xml(sender="o" * 300, msg_id="777")
        good = text_xml(sender="oGood", msg_id="778")
        bad_answer = client.post("/wechat/mp", params=signer.plain_query(now), content=bad)
        good_answer = client.post("/wechat/mp", params=signer.plain_query(now), content=good)
    assert bad_answer.status_code == 400
    assert good_answer.status_code == 200 and good_answer.text == "success"
    with session_scope(env) as session:
        assert session.exec(select(InboundMessage.sender)).all() == ["oGood"]


def test_deeply_nested_xml_is_a_400_not_a_traceback(env: Settings) -> None:
    signer = CallbackSigner(token="tok")
    body = "<xml>" + "<a>" * 5000 + "x" + "</a>" * 5000 + "</xml>"
    with _webhook_client(env) as client:
        answer = client.post(
            "/wechat/mp", params=signer.plain_query(int(time.time())), content=body
        )
    assert answer.status_code == 400 and "Traceback" not in answer.text


def test_encrypted_envelope_signature_is_checked_before_parsing() -> None:
    from yishi.bot.channels.crypto import SignatureInvalid
    from yishi.bot.channels.xmlparse import open_encrypted

    signer = CallbackSigner(
        token="tok", aes_key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", receive_id="wxapp"
    )
    nested = "<a>" * 5000 + "</a>" * 5000
    body = f"<xml><Encrypt><![CDATA[QUJD]]></Encrypt>{nested}</xml>".encode()
    with pytest.raises(SignatureInvalid):
        open_encrypted(signer.crypto, body=body, msg_signature="0" * 40, timestamp="1", nonce="n")


# ---------------------------------------------------------------- slow and idle clients


def test_a_body_shorter_than_its_content_length_times_out() -> None:
    async def run() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"<xml>", "more_body": True}
            await asyncio.sleep(3600)  # the rest never comes
            raise AssertionError("unreachable")

        scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"100")]}
        with pytest.raises(BodyTimeout) as caught:
            await read_body_limited(Request(scope, receive), 1000, timeout_s=0.05)
        assert caught.value.status_code == 408

    asyncio.run(run())


# ---------------------------------------------------------------- outages outlived


def test_backoff_grows_with_jitter_up_to_its_cap(env: Settings) -> None:
    delays = [pipeline.retry_delay_s(n, env) for n in range(1, 12)]
    assert all(d <= env.send_retry_max_s for d in delays)
    assert delays[0] <= env.send_retry_base_s
    assert max(delays[-3:]) >= env.send_retry_max_s / 2
    assert len({round(pipeline.retry_delay_s(5, env), 6) for _ in range(20)}) > 1  # jitter


def test_an_outage_opens_the_breaker_burns_no_attempts_and_drains_in_order(
    env: Settings, wx: FakeWeChatServer
) -> None:
    now = [1000.0]
    breaker = LocalCircuitBreaker(failures=2, open_s=15, clock=lambda: now[0])
    pipeline._breaker = breaker
    ids = _queue(env, 6)
    wx.script(CUSTOM_SEND, ("http", 502), ("http", 502))
    for outbound_id in ids:
        pipeline.deliver_outbound(outbound_id)
    rows = [_outbound(env, i) for i in ids]
    assert [r.attempts for r in rows] == [1, 1, 0, 0, 0, 0]  # open after two: none burnt
    assert all(r.status is OutboundStatus.pending and r.lease_owner is None for r in rows)
    assert wx.sent(CUSTOM_SEND) == []
    jobs.get_huey().flush()

    now[0] += 16  # the API is back; the next attempt is the half-open probe
    pipeline.deliver_outbound(ids[3])
    drained = [t.args[0] for t in jobs.get_huey().pending()]
    assert drained == [i for i in ids if i != ids[3]]  # the backlog, oldest first
    etas = [t.eta for t in jobs.get_huey().pending()]
    assert etas[0] is None and all(e is not None for e in etas[1:])  # spaced to the rate
    for outbound_id in drained:
        pipeline.deliver_outbound(outbound_id)
    sent = [s["touser"] for s in wx.sent(CUSTOM_SEND)]
    assert sent == ["oRes3", "oRes0", "oRes1", "oRes2", "oRes4", "oRes5"]
    assert all(_outbound(env, i).status is OutboundStatus.sent for i in ids)


def test_a_message_past_its_deadline_is_listed_for_staff_with_the_reason(env: Settings) -> None:
    (outbound_id,) = _queue(env, 1)
    with session_scope(env) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        row.deadline_at = utcnow() - timedelta(seconds=1)
        session.add(row)
    pipeline.deliver_outbound(outbound_id)
    with session_scope(env) as session:
        flagged = get_flagged(session=session)
    assert [r.id for r in flagged.outbound] == [outbound_id]
    assert flagged.outbound[0].last_error == pipeline.EXPIRED_REASON


def test_the_deadline_follows_the_setting(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YISHI_SEND_DEADLINE_HOURS", "1")
    get_settings.cache_clear()
    (outbound_id,) = _queue(get_settings(), 1)
    row = _outbound(env, outbound_id)
    assert row.deadline_at is not None
    assert timedelta(minutes=59) < row.deadline_at - row.created_at <= timedelta(minutes=61)


# ---------------------------------------------------------------- exactly once


def test_only_one_worker_claims_an_outbound_message(env: Settings) -> None:
    (outbound_id,) = _queue(env, 1)
    with session_scope(env) as one, session_scope(env) as two:
        assert pipeline._claim_outbound(one, outbound_id) is not None
        assert pipeline._claim_outbound(two, outbound_id) is None


def _crash_mid_send(settings: Settings, outbound_id: int) -> None:
    """What a worker SIGKILLed inside the API call leaves: attempt started, no answer recorded."""
    with session_scope(settings) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        row.lease_owner = "dead-worker"
        row.lease_until = utcnow() - timedelta(seconds=1)
        row.send_started_at = utcnow() - timedelta(seconds=121)
        row.attempts = 1
        session.add(row)


def test_a_send_cut_off_before_it_arrived_is_found_missing_and_sent_once(
    env: Settings, wx: FakeWeChatServer
) -> None:
    (outbound_id,) = _queue(env, 1)
    _crash_mid_send(env, outbound_id)
    pipeline.deliver_outbound(outbound_id)  # a stray retry must not send it blindly
    assert wx.sent(CUSTOM_SEND) == []
    assert pipeline.reconcile_outbound(settings=env)["resent"] == 1  # the record lacks it
    pipeline.deliver_outbound(outbound_id)
    assert len(wx.sent(CUSTOM_SEND)) == 1
    assert _outbound(env, outbound_id).status is OutboundStatus.sent


def test_a_send_cut_off_after_it_arrived_is_confirmed_not_resent(
    env: Settings, wx: FakeWeChatServer
) -> None:
    (outbound_id,) = _queue(env, 1)
    row = _outbound(env, outbound_id)
    pipeline._get_senders(env)["wechat_mp"].send_text(to_user="oRes0", text=row.text)
    _crash_mid_send(env, outbound_id)  # WeChat took it; the worker died before recording
    assert pipeline.reconcile_outbound(settings=env)["confirmed"] == 1
    pipeline.deliver_outbound(outbound_id)
    assert len(wx.sent(CUSTOM_SEND)) == 1
    assert _outbound(env, outbound_id).status is OutboundStatus.sent


def test_when_the_channel_cannot_be_asked_the_send_is_listed_for_staff(
    env: Settings, wx: FakeWeChatServer
) -> None:
    (outbound_id,) = _queue(env, 1)
    _crash_mid_send(env, outbound_id)
    wx.script(MSG_RECORD, ("http", 502))
    assert pipeline.reconcile_outbound(settings=env)["uncertain"] == 1
    pipeline.deliver_outbound(outbound_id)
    assert wx.sent(CUSTOM_SEND) == []
    row = _outbound(env, outbound_id)
    assert row.status is OutboundStatus.failed and row.last_error == pipeline.UNCERTAIN_REASON


def test_resend_policy_sends_a_cut_off_message_once(
    env: Settings, wx: FakeWeChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YISHI_SEND_UNCERTAIN", "resend")
    get_settings.cache_clear()
    settings = get_settings()
    (outbound_id,) = _queue(settings, 1)
    _crash_mid_send(settings, outbound_id)
    wx.script(MSG_RECORD, ("http", 502))
    pipeline.reconcile_outbound(settings=settings)
    pipeline.deliver_outbound(outbound_id)
    pipeline.deliver_outbound(outbound_id)  # a duplicate job finds it done
    assert len(wx.sent(CUSTOM_SEND)) == 1
    assert _outbound(settings, outbound_id).status is OutboundStatus.sent


def test_a_stray_duplicate_job_does_not_send_twice(env: Settings, wx: FakeWeChatServer) -> None:
    (outbound_id,) = _queue(env, 1)
    pipeline.deliver_outbound(outbound_id)
    pipeline.deliver_outbound(outbound_id)
    assert len(wx.sent(CUSTOM_SEND)) == 1


# ---------------------------------------------------------------- flood control


def test_a_flood_gets_one_slow_down_notice_per_window(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YISHI_RESIDENT_MESSAGES_PER_MINUTE", "3")
    get_settings.cache_clear()
    pipeline.reset_caches()
    settings = get_settings()
    jobs.configure(settings, immediate=False)
    with session_scope(settings) as session:
        ids = [
            pipeline.accept(session=session, msg=_msg(1, msg_id=f"5{n}")).inbound_id
            for n in range(10)
        ]
    for inbound_id in ids:
        pipeline.process_inbound(inbound_id)
    with session_scope(settings) as session:
        notices = session.exec(
            select(OutboundMessage).where(OutboundMessage.text == pipeline.SLOW_DOWN_NOTICE)
        ).all()
        rows = session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all()
    assert len(notices) == 1
    assert [r.moderation_action for r in rows[3:]] == ["rate_limited"] * 7
    assert len(rows) == 10  # nothing lost: every message is stored with its state


def test_flood_control_fails_open_to_a_local_limiter_when_redis_is_gone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    limiter = build_resident_limiter(settings, 2)
    assert isinstance(limiter, FailOpenRateLimiter)
    assert isinstance(limiter.shared, RedisRateLimiter)
    assert isinstance(limiter.local, LocalRateLimiter)
    assert [limiter.reserve("resident:x", 1) > 0 for _ in range(3)] == [False, False, True]


# ---------------------------------------------------------------- dependencies checked


def test_healthz_reports_dependencies_and_503_for_a_wrong_redis_url(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yishi.api import create_app

    with TestClient(create_app(yishi_env, run_worker=False, warm_knowledge=False)) as client:
        healthy = client.get("/healthz")
    assert healthy.status_code == 200
    body = healthy.json()
    assert body["database"] == "ok" and body["queue_depth"] == 0
    assert "oldest_unanswered_s" in body and "oldest_undelivered_s" in body

    monkeypatch.setenv("YISHI_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    broken = get_settings()
    with TestClient(create_app(broken, run_worker=False, warm_knowledge=False)) as client:
        down = client.get("/healthz")
    assert down.status_code == 503
    assert down.json()["redis"].startswith("unavailable") and down.json()["status"] != "ok"


def test_worker_reports_an_unreachable_broker_in_one_line_per_try(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, redis_url="redis://:secret@127.0.0.1:1/0")
    with caplog.at_level("ERROR"):
        assert jobs.wait_for_broker(settings, max_wait_s=0.5) is False
    lines = [r for r in caplog.records if r.name == "yishi.core.jobs"]
    assert lines and all(r.exc_info is None for r in lines)
    assert all("secret" not in r.getMessage() for r in lines)
    assert "127.0.0.1:1" in lines[0].getMessage()


def test_huey_broker_errors_are_throttled_to_one_line() -> None:
    import logging

    throttle = jobs.ThrottleBrokerErrors(interval_s=60)
    records = []
    for _ in range(50):
        try:
            raise ConnectionError("refused")
        except ConnectionError:
            import sys

            record = logging.LogRecord(
                "huey.consumer.Worker-1",
                logging.ERROR,
                "",
                0,
                "Error reading from queue",
                (),
                sys.exc_info(),
            )
        records.append(record)
    passed = [r for r in records if throttle.filter(r)]
    assert len(passed) == 1 and passed[0].exc_info is None
    assert "ConnectionError" in passed[0].getMessage()
    clock.set_clock(None)
