"""The moderators' console: the queue with highlighted, escaped spans; decisions and the audit."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlmodel import select

from yishi.core.config import Settings
from yishi.core.db import session_scope
from yishi.core.models import Role
from yishi.moderation import service as moderation_service
from yishi.moderation.models import ModerationDecision, ReviewItem, Strike
from yishi.moderation.schemas import Span, Verdict
from yishi.web.highlight import highlight_spans

from .conftest import login, visible

XSS_TEXT = '<script>alert("x")</script>你这个傻逼，<b onmouseover="steal()">滚</b>'


def _hold(settings: Settings, text: str = XSS_TEXT, sender: str = "wechat_mp:oSender") -> int:
    start = text.index("傻逼")
    verdict = Verdict(
        action="review",
        categories=["insult"],
        score=0.72,
        spans=[Span(start=start, end=start + 2, category="insult", text="傻逼")],
        redacted=text,
        reasons=['辱骂词 "傻逼" <i>命中</i>'],
    )
    with session_scope(settings) as session:
        item = moderation_service.hold(
            session=session, text=text, verdict=verdict, sender_id=sender, source="message",
            source_ref="in:1",
        )
        assert item.id is not None
        return item.id


def _moderator(client: TestClient, make_token: Callable[..., str]) -> str:
    return login(client, make_token(Role.moderator, "审核员小李", "web:m1"))


def test_queue_highlights_spans_and_escapes_the_message(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    item_id = _hold(yishi_env)
    _moderator(client, make_token)
    for url in ("/console/moderation", f"/console/moderation/items/{item_id}"):
        page = client.get(url)
        assert page.status_code == 200
        html = page.text
        assert '<mark class="hl hl-insult" title="辱骂">傻逼</mark>' in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert "<script>alert" not in html and "<b onmouseover" not in html
        assert "&lt;i&gt;命中&lt;/i&gt;" in html  # reasons are escaped too
        assert "0.72" in html and "辱骂" in html
    assert "Content-Security-Policy" in page.headers


def test_approving_from_the_console_changes_state_and_writes_the_audit(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    item_id = _hold(yishi_env)
    csrf = _moderator(client, make_token)
    response = client.post(
        f"/console/moderation/items/{item_id}/approve",
        data={"csrf_token": csrf, "reason": "语境是引用", "next": "/console/moderation"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/console/moderation"
    with session_scope(yishi_env) as session:
        item = session.get(ReviewItem, item_id)
        assert item is not None and item.status == "approved"
        assert item.decided_by == "web:m1" and item.final_text
        audit = session.exec(
            select(ModerationDecision).where(ModerationDecision.review_item_id == item_id)
        ).all()
    assert [(a.action, a.actor_id, a.reason) for a in audit][-1] == (
        "approve", "web:m1", "语境是引用"
    )
    queue = client.get("/console/moderation")
    assert f"消息 #{item_id} 已通过" in queue.text  # the flash message
    assert f'id="item-{item_id}"' not in queue.text  # gone from the pending queue
    log = client.get(f"/console/moderation/audit?item={item_id}").text
    assert "语境是引用" in log and "审核员小李" in log and "web:m1" not in visible(log)

    again = client.post(f"/console/moderation/items/{item_id}/reject",
                        data={"csrf_token": csrf})
    assert again.status_code == 303
    assert "该消息已处理" in client.get(again.headers["location"]).text


def test_decisions_need_a_csrf_token(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    item_id = _hold(yishi_env)
    _moderator(client, make_token)
    forged = client.post(f"/console/moderation/items/{item_id}/approve",
                         data={"csrf_token": "forged-value-" * 4})
    assert forged.status_code == 403
    with session_scope(yishi_env) as session:
        item = session.get(ReviewItem, item_id)
        assert item is not None and item.status == "pending"
        actions = session.exec(select(ModerationDecision.action)).all()
    assert "approve" not in actions


def test_reject_escalate_edit_and_mute(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    first, second, third = (_hold(yishi_env, sender=f"wechat_mp:o{i}") for i in range(3))
    csrf = _moderator(client, make_token)

    no_reason = client.post(f"/console/moderation/items/{first}/escalate",
                            data={"csrf_token": csrf})
    assert "升级需要填写原因" in client.get(no_reason.headers["location"]).text
    client.post(f"/console/moderation/items/{first}/escalate",
                data={"csrf_token": csrf, "reason": "涉及物业纠纷，请居委会判断"})
    client.post(f"/console/moderation/items/{second}/reject",
                data={"csrf_token": csrf, "reason": "人身攻击"})
    client.post(f"/console/moderation/items/{third}/edit",
                data={"csrf_token": csrf, "text": "请物业尽快处理", "reason": "删去辱骂"})
    with session_scope(yishi_env) as session:
        states = {i: session.get(ReviewItem, i) for i in (first, second, third)}
        strikes = session.exec(select(Strike).where(Strike.review_item_id == second)).all()
    status = {i: (item.status if item else None) for i, item in states.items()}
    assert status == {first: "escalated", second: "rejected", third: "approved"}
    assert len(strikes) == 1
    edited = states[third]
    assert edited is not None and edited.final_text == "请物业尽快处理"
    assert "涉及物业纠纷" in client.get("/console/moderation?status=escalated").text

    muted = client.post("/console/moderation/mutes", data={
        "csrf_token": csrf, "sender_id": "wechat_mp:o1", "hours": "24", "reason": "多次辱骂"})
    assert muted.status_code == 303
    page = client.get("/console/moderation/mutes?sender=wechat_mp:o1").text
    assert "禁言中" in page and "多次辱骂" in page and "人身攻击" in page
    client.post("/console/moderation/mutes/lift",
                data={"csrf_token": csrf, "sender_id": "wechat_mp:o1"})
    with session_scope(yishi_env) as session:
        assert not moderation_service.is_muted(session=session, sender_id="wechat_mp:o1")
    audit = client.get("/console/moderation/audit").text
    for label in ("升级", "拒绝", "编辑后通过", "禁言", "解除禁言"):
        assert label in audit


def test_appeals_can_be_upheld_from_the_console(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    item_id = _hold(yishi_env, sender="wechat_mp:oAppeal")
    csrf = _moderator(client, make_token)
    client.post(f"/console/moderation/items/{item_id}/reject",
                data={"csrf_token": csrf, "reason": "辱骂"})
    from yishi.core.auth import Actor

    with session_scope(yishi_env) as session:
        appeal = moderation_service.appeal(
            session=session, actor=Actor(user_id="wechat_mp:oAppeal"), item_id=item_id,
            reason="我是在转述别人的话 <u>真的</u>",
        )
        appeal_id = appeal.id
    page = client.get("/console/moderation/appeals").text
    assert "我是在转述别人的话 &lt;u&gt;真的&lt;/u&gt;" in page
    client.post(f"/console/moderation/appeals/{appeal_id}/resolve",
                data={"csrf_token": csrf, "upheld": "yes", "reason": "确为转述"})
    with session_scope(yishi_env) as session:
        item = session.get(ReviewItem, item_id)
        strikes = moderation_service.get_strikes(session=session, sender_id="wechat_mp:oAppeal")
    assert item is not None and item.status == "approved"
    assert strikes and all(s.voided for s in strikes)


def test_highlight_is_safe_with_odd_spans() -> None:
    text = "a<b>c&d"
    html = str(highlight_spans(text, [
        {"start": 1, "end": 4, "category": 'x" onclick="evil'},
        {"start": 3, "end": 6, "category": "insult"},  # overlaps: merged
        {"start": -5, "end": 0, "category": "insult"},  # empty after clamping
        {"start": 5, "end": 99, "category": "threat"},  # overlaps the merged span, clamped
        {"start": "2", "end": None, "category": "insult"},  # invalid
    ]))
    assert html.startswith("a<mark ")
    assert "&lt;b&gt;c&amp;d" in html and "<b>" not in html
    assert 'onclick="evil' not in html and "&#34;" in html
    assert html.count("<mark") == 1 and html.endswith("</mark>")
    assert str(highlight_spans("<p>", None)) == "&lt;p&gt;"
