"""Moderation service: `screen` (pure, no DB), the review queue, strikes, mutes, appeals and the
append-only audit log."""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlmodel import Session, col, select

from yishi.core import commands, embedding
from yishi.core.auth import Actor
from yishi.core.clock import utcnow
from yishi.core.errors import Conflict, Forbidden, Invalid, NotFound
from yishi.core.models import Role
from yishi.moderation import audit, classifier, injection, pii, semantic, spam, structure, vectors
from yishi.moderation import lexicon as lexicon_mod
from yishi.moderation import policy as policy_mod
from yishi.moderation.models import Appeal, ModerationDecision, Mute, ReviewItem, Strike
from yishi.moderation.normalise import normalise, sanitise
from yishi.moderation.schemas import Signal, Span, Verdict

log = logging.getLogger(__name__)

# Strike and mute settings live in the policy (see policy.Policy.mute_ladder_hours).
APPEAL_WINDOW = timedelta(days=20)
BOT_SOURCES = frozenset({"reply", "bot"})  # the bot's own words: held, but no strikes
MAX_SCREEN_CHARS = 100_000  # beyond this only the head and tail are analysed


@runtime_checkable
class Judge(Protocol):
    """An optional second opinion (e.g. an LLM) for the borderline band."""

    def judge(self, text: str) -> Verdict | None:
        """A verdict for `text`, or None to keep the offline decision."""
        ...


@dataclass
class ScreenStats:
    """How many screened texts skipped the semantic stage, and why (see `Screener.stats`)."""

    screened: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def skip_share(self) -> float:
        """Share of screened texts that a crisp check settled without the embedding."""
        return sum(self.skipped.values()) / self.screened if self.screened else 0.0


# Exact commands and vote words: nothing in them needs judging.
COMMANDS = commands.EXACT | frozenset(
    {
        "取消",
        "赞成",
        "反对",
        "同意",
        "不同意",
        "弃权",
        "跳过",
        "agree",
        "disagree",
        "pass",
        "是",
        "否",
        "好",
        "好的",
        "谢谢",
        "你好",
    }
)
_VOTE_RE = re.compile(
    r"(投票|vote)?\s*#?\d{1,6}\s*(赞成|反对|弃权|同意|不同意|agree|disagree|pass)"
)
MAX_DECODE_DEPTH = 1


@dataclass
class Screener:
    """The compiled pipeline for one community policy."""

    policy: policy_mod.Policy
    lexicon: lexicon_mod.Lexicon
    judge: Judge | None = None
    # The message's sentence vector; the shared memoised one unless a caller (evaluation)
    # supplies vectors it already has.
    embed: Callable[[str], np.ndarray] = embedding.embed_message
    stats: ScreenStats = field(default_factory=ScreenStats)

    def screen(self, text: str, *, context: str = "message", judge: Judge | None = None) -> Verdict:
        """Run every detector and decide (see module `screen`)."""
        text = sanitise(text if isinstance(text, str) else str(text or ""))
        self.stats.screened += 1
        if not text.strip():
            self._skip("empty")
            return Verdict(action="allow", redacted=text)
        signals, reasons = self._signals(text, context=context, depth=0)
        action, cats, score = self.policy.decide(signals)
        verdict = _build_verdict(text, signals, action, cats, score, reasons)
        judge = judge or self.judge
        low, high = self.policy.judge_band
        if judge is not None and action != "block" and (action == "review" or low <= score < high):
            verdict = _ask_judge(judge, text, verdict)
        return verdict

    def _skip(self, why: str) -> None:
        self.stats.skipped[why] = self.stats.skipped.get(why, 0) + 1

    def _signals(self, text: str, *, context: str, depth: int) -> tuple[list[Signal], list[str]]:
        if len(text) > MAX_SCREEN_CHARS:
            analysed = text[: MAX_SCREEN_CHARS // 2] + text[-MAX_SCREEN_CHARS // 2 :]
            shift = len(text) - MAX_SCREEN_CHARS
        else:
            analysed, shift = text, 0
        norm = normalise(analysed)
        is_reply = context == "reply"
        reasons: list[str] = []
        # Crisp checks: unambiguous slurs, personal data with check digits, links and handles,
        # chat-template markers.
        signals: list[Signal] = self.lexicon.match(norm, homophones=not is_reply)
        signals += pii.detect(norm, context=context)
        signals += spam.detect(norm)
        if not is_reply:
            signals += injection.detect(norm)
        if depth < MAX_DECODE_DEPTH:
            signals += self._decoded(analysed, context=context, depth=depth, reasons=reasons)
        settled = None if depth else self._settled(norm, signals)
        if settled is not None:
            self._skip(settled)
        else:
            signals += self._learned(analysed, norm, signals, reasons, is_reply=is_reply)
        signals += _sexual_harassment(signals, norm.compact.text)
        weak = self.lexicon.weak_hits(norm)
        if weak:
            reasons.append("外部词表弱信号：" + "、".join(weak[:5]))
        if shift:
            half = MAX_SCREEN_CHARS // 2
            for s in signals:
                if s.start >= half:
                    s.start += shift
                    s.end += shift
        return signals, reasons

    def _settled(self, norm: Any, signals: list[Signal]) -> str | None:
        """Why a crisp check already settles this text (so it skips the embedding), or None."""
        compact = norm.compact.text
        if compact in COMMANDS or _VOTE_RE.fullmatch(norm.light.text.strip()):
            return "command"
        if not any(c.isalpha() for c in compact):
            return "no_words"  # digits, symbols, emoji: nothing for a sentence model to read
        for s in signals:
            rule = self.policy.rule(s.category)
            if s.score >= max(0.9, rule.block) and s.source in _CERTAIN_SOURCES:
                return f"crisp_{s.category}"
        return None

    def _decoded(self, text: str, *, context: str, depth: int, reasons: list[str]) -> list[Signal]:
        """Screen what base64 / hex / URL-encoded payloads decode to; their findings count."""
        out: list[Signal] = []
        for payload in structure.decode_payloads(text):
            inner, _ = self._signals(payload.text, context=context, depth=depth + 1)
            strongest = max((s.score for s in inner), default=0.0)
            reasons.append(f"已解码一段{_PAYLOAD_KIND[payload.kind]}内容并一并审核")
            for s in inner:
                if s.redact:
                    continue  # offsets inside the payload do not map onto the original text
                out.append(
                    s.model_copy(
                        update={
                            "start": payload.start,
                            "end": payload.end,
                            "source": f"decoded:{s.source}",
                            "reason": f"解码后：{s.reason}",
                        }
                    )
                )
            if strongest < 0.5:
                # Hiding ordinary words in an encoding is itself odd: worth a look.
                out.append(
                    Signal(
                        category="prompt_injection",
                        score=0.5,
                        start=payload.start,
                        end=payload.end,
                        source="decoded",
                        reason="消息中含有编码内容",
                    )
                )
        return out

    def _learned(
        self,
        text: str,
        norm: Any,
        signals: list[Signal],
        reasons: list[str],
        *,
        is_reply: bool,
    ) -> list[Signal]:
        """The semantic heads fused with the char n-gram classifier (or the classifier alone
        when no heads are installed)."""
        out: list[Signal] = []
        heads = semantic.get_heads()
        model = classifier.get_model()
        compact = self.lexicon.mask_allowed(norm)
        p_clf = model.prob_prepared(compact) if model is not None and len(compact) >= 2 else None
        if heads is not None:
            inp = vectors.embed_input(text)
            cat, harm, _ = heads.judge(self.embed(inp), inp)
            score = heads.fuse(harm, p_clf)
            r, b = self.policy.semantic.get(cat) or astuple(heads.threshold(cat))
            sig = semantic.to_signal(cat, score, semantic.Thresholds(r, b))
            if p_clf is not None:
                sig.reason += f"；字符模型 {p_clf:.2f}"
            if sig.score >= 0.5 and cat in ("spam_ad", "fraud", "gambling"):
                signals[:] = [_as_advertiser_contact(s) for s in signals]
            out.append(sig)
        elif p_clf is not None:
            review, block = self._clf_bands(heads)
            if p_clf >= review:
                out.append(
                    Signal(
                        category="insult",
                        score=0.9 if p_clf >= block else 0.6,
                        source="classifier",
                        reason=f"字符模型判定{'' if p_clf >= block else '可能'}冒犯（{p_clf:.2f}）",
                    )
                )
        if is_reply:
            out = [s.model_copy(update={"score": min(s.score, 0.6)}) for s in out]
        return out

    def _clf_bands(self, heads: semantic.Heads | None) -> tuple[float, float]:
        found = heads.meta.get("char_ngram_thresholds") if heads else None
        calibrated = [float(v) for v in found] if isinstance(found, list) else [0.9, 0.99]
        review = self.policy.clf_review if self.policy.clf_review is not None else calibrated[0]
        block = self.policy.clf_block if self.policy.clf_block is not None else calibrated[1]
        return float(review), float(block)


_CERTAIN_SOURCES = frozenset({"lexicon", "masked", "pii", "injection"})
_PAYLOAD_KIND = {"base64": "Base64 ", "hex": "十六进制", "url": "网址编码"}


_PERSON = (
    "你",
    "她",
    "他",
    "女的",
    "男的",
    "小妹",
    "阿姨",
    "小姐姐",
    "美女",
    "大姐",
    "妹子",
    "老婆",
)


def _sexual_harassment(signals: list[Signal], compact: str) -> list[Signal]:
    """Sexual remarks about a person in the group are also harassment of that person."""
    if not any(p in compact for p in _PERSON):
        return []
    return [
        s.model_copy(update={"category": "harassment", "reason": "针对他人的性骚扰言论"})
        for s in signals
        if s.category == "sexual" and s.score >= 0.5
    ]


def _as_advertiser_contact(signal: Signal) -> Signal:
    """In an ad, a contact number with no sign of exposure is the advertiser's own."""
    if signal.category == "doxxing" and signal.source == "pii" and signal.score < 0.85:
        return signal.model_copy(
            update={"category": "self_pii", "reason": "广告联系方式（已隐藏）"}
        )
    return signal


def _build_verdict(
    text: str,
    signals: list[Signal],
    action: str,
    cats: list[str],
    score: float,
    extra_reasons: list[str],
) -> Verdict:
    counted = set(cats)
    spans: list[Span] = []
    reasons: list[str] = []
    seen_reasons: set[str] = set()
    seen_spans: set[tuple[int, int, str]] = set()  # several detectors may mark the same words
    for s in sorted(signals, key=lambda s: (s.start, -s.score)):
        if s.category not in counted and not s.redact:
            continue
        if s.end > s.start and (s.start, s.end, s.category) not in seen_spans:
            seen_spans.add((s.start, s.end, s.category))
            spans.append(
                Span(start=s.start, end=s.end, category=s.category, text=text[s.start : s.end])
            )
        if s.reason and s.reason not in seen_reasons:
            seen_reasons.add(s.reason)
            reasons.append(s.reason)
    reasons += [r for r in extra_reasons if r not in seen_reasons]
    return Verdict(
        action=action,  # type: ignore[arg-type]
        categories=cats,
        score=score,
        spans=spans,
        redacted=redact(text, [s for s in signals if s.redact]),
        reasons=reasons,
    )


def redact(text: str, signals: list[Signal]) -> str:
    """`text` with every personal-data span masked."""
    if not signals:
        return text
    out = text
    for s in sorted(signals, key=lambda s: -s.start):
        out = out[: s.start] + pii.mask(out[s.start : s.end]) + out[s.end :]
    return out


def _ask_judge(judge: Judge, text: str, offline: Verdict) -> Verdict:
    try:
        opinion = judge.judge(text)
    except Exception:  # any failure of an outside judge keeps the offline decision
        log.warning("moderation judge failed; keeping the offline decision", exc_info=True)
        return offline
    if opinion is None:
        return offline
    # The judge decides the action; spans and redaction stay ours (personal data stays masked).
    return offline.model_copy(
        update={
            "action": opinion.action,
            "categories": opinion.categories or offline.categories,
            "score": opinion.score,
            "reasons": [*offline.reasons, *[f"复核模型：{r}" for r in opinion.reasons]],
        }
    )


_screener: Screener | None = None
_screener_lock = threading.Lock()
_default_judge: Judge | None = None


def get_screener() -> Screener:
    """The process-wide screener built from settings (policy file, community lexicons)."""
    global _screener
    if _screener is None:
        with _screener_lock:
            if _screener is None:
                from yishi.core.config import get_settings

                settings = get_settings()
                pol = policy_mod.load(settings.moderation_policy_path)
                lex = lexicon_mod.build(
                    extra_allow=pol.allow_terms,
                    weak_paths=settings.moderation_lexicon_paths,
                    extra_entries=pol.extra_terms,
                )
                _screener = Screener(policy=pol, lexicon=lex, judge=_default_judge)
    return _screener


def warm_up() -> None:
    """Load everything screening needs now (lexicon, classifier, pinyin and word tables), so
    the first resident's message is not the one that pays; call it from the app lifespan."""
    get_screener()
    classifier.get_model()
    semantic.get_heads()
    lexicon_mod._word_freq()
    screen("预热：你好")
    gc.freeze()  # long-lived tables out of the cyclic GC's full scans (no ~20 ms pauses)


def reset() -> None:
    """Drop the cached screener (after settings change, in tests)."""
    global _screener
    with _screener_lock:
        _screener = None


def set_judge(judge: Judge | None) -> None:
    """Install (or remove) the borderline-band judge, e.g. from the app lifespan."""
    global _default_judge
    _default_judge = judge
    if _screener is not None:
        _screener.judge = judge


def screen(text: str, *, context: str = "message", judge: Judge | None = None) -> Verdict:
    """Screen one text before it is posted: allow / review / block, spans and a redacted copy.

    `context` is "message" (a resident's) or "reply" (the bot's own). Pure and fast; no DB.
    """
    return get_screener().screen(text, context=context, judge=judge)


# --- notices ------------------------------------------------------------------------------

_NOTICE_BLOCK = (
    "您的消息暂未发出：其中有些内容可能不适合在社区里公开。"
    "消息已交给管理员复核，如有误判会尽快放行。"
)
_NOTICE_REVIEW = "您的消息已收到，需要管理员看一下再发布，通常很快。感谢理解！"
_NOTICE_INJECTION = (
    "这条消息里有让助手改变设定的内容，暂未处理，已交给管理员查看。您可以直接说说想办的事。"
)
_NOTICE_PII = "为保护隐私，消息里的他人联系方式或证件信息暂不公开，已交给管理员复核。"
_NOTICE_SELF_PII = "您的消息已发布，为保护您的隐私，手机号等个人信息已隐藏。"


def notice_for(verdict: Verdict) -> str:
    """A short, polite, non-shaming notice for the sender of a held or blocked message."""
    cats = set(verdict.categories)
    if verdict.action == "allow":
        return _NOTICE_SELF_PII if "self_pii" in cats else ""
    if "prompt_injection" in cats and len(cats - {"self_pii"}) == 1:
        return _NOTICE_INJECTION
    if "doxxing" in cats and len(cats - {"self_pii"}) == 1:
        return _NOTICE_PII
    return _NOTICE_BLOCK if verdict.action == "block" else _NOTICE_REVIEW


# --- review queue ---------------------------------------------------------------------------

ReleaseHandler = Callable[[Session, ReviewItem], None]
_release_handlers: dict[str, ReleaseHandler] = {}


def register_release_handler(source: str, handler: ReleaseHandler) -> None:
    """Call `handler(session, item)` when an item from `source` is approved (to post it)."""
    _release_handlers[source] = handler


def _subject(session: Session, sender_id: str) -> str:
    """The audit's pseudonym for a resident (the append-only log never names them in clear)."""
    return audit.subject_ref(session=session, sender_id=sender_id)


def _audit(
    session: Session,
    *,
    item_id: int | None,
    actor_id: str,
    action: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> ModerationDecision:
    entry = ModerationDecision(
        review_item_id=item_id,
        actor_id=actor_id,
        action=action,
        reason=reason,
        details=details or {},
    )
    return audit.seal(session=session, entry=entry)


def hold(
    *,
    session: Session,
    text: str,
    verdict: Verdict,
    sender_id: str,
    source: str,
    source_ref: str | None = None,
) -> ReviewItem:
    """Put a message in the moderators' queue; only a high-confidence automatic block is a
    confirmed violation and records a strike (a hold for review never does)."""
    item = ReviewItem(
        sender_id=sender_id,
        source=source,
        source_ref=source_ref,
        text=text,
        redacted=verdict.redacted,
        action=verdict.action,
        categories=list(verdict.categories),
        score=verdict.score,
        spans=[s.model_dump() for s in verdict.spans],
        reasons=list(verdict.reasons),
    )
    session.add(item)
    session.flush()
    _audit(
        session,
        item_id=item.id,
        actor_id="system",
        action=f"screen_{verdict.action}",
        reason="；".join(verdict.reasons[:5]),
        details={"categories": verdict.categories, "score": verdict.score, "source": source},
    )
    if _confirmed_by_screening(item):
        _strike(
            session,
            sender_id=sender_id,
            item_id=item.id,
            reason=_reason_words(item, "消息被自动拦截"),
            actor_id="system",
        )
    session.commit()
    session.refresh(item)
    return item


def _confirmed_by_screening(item: ReviewItem) -> bool:
    """A block so certain that no moderator needs to confirm it before it counts."""
    pol = get_screener().policy
    if item.action != "block" or item.source in BOT_SOURCES:
        return False
    counted = [c for c in item.categories if c not in pol.no_strike_categories]
    return bool(counted) and item.score >= pol.auto_strike_score


CATEGORY_WORDS = {
    "insult": "辱骂他人",
    "harassment": "骚扰他人",
    "threat": "威胁他人",
    "hate": "歧视或仇恨言论",
    "sexual": "色情低俗内容",
    "incitement": "煽动性内容",
    "doxxing": "公开他人个人信息",
    "self_pii": "个人信息",
    "spam_ad": "广告刷屏",
    "fraud": "疑似诈骗",
    "prompt_injection": "试图改变助手设定",
    "illegal": "违法内容",
    "violence": "暴力内容",
    "self_harm": "自伤相关内容",
}


def category_words(category: str) -> str:
    """A category in plain words for residents and staff."""
    return CATEGORY_WORDS.get(category, "不适合公开的内容")


def _reason_words(item: ReviewItem, fallback: str) -> str:
    words = [category_words(c) for c in item.categories if c != "self_pii"]
    return "、".join(dict.fromkeys(words)) or fallback


APPEAL_HOW = "如认为处理有误，请在 20 天内回复“申诉 加上理由”，例如：申诉 我是在转述别人的话。"


def strike_notice(*, hours: float, reason: str) -> str:
    """What the resident is told when a violation is confirmed: reason, consequence, appeal."""
    if hours <= 0:
        consequence = "这次是提醒，不影响您使用。再次违规将被暂时限制发言。"
    elif hours < 24:
        consequence = f"您的发言将暂停 {hours:g} 小时。"
    elif hours % 24 == 0:
        consequence = f"您的发言将暂停 {hours / 24:g} 天。"
    else:
        consequence = f"您的发言将暂停 {hours:g} 小时。"
    return (
        f"您的一条消息经确认违反了社区公约（{reason}），未予发布。{consequence}"
        "暂停期间仍可回复“转人工”“我的问题”“申诉”，紧急情况（燃气泄漏、火情、有人被困或受伤）"
        f"照常受理。{APPEAL_HOW}"
    )


def _tell_sender(session: Session, sender_id: str, text: str) -> None:
    """Queue a message to the sender through their channel; it is sent once the session commits."""
    if sender_id in BOT_SOURCES or ":" not in sender_id or sender_id.startswith("user:"):
        return  # console users and the bot have no chat channel
    from yishi.bot import outbox
    from yishi.bot.models import OutboundStatus

    row = outbox.queue(session=session, user_id=sender_id, text=text, kind="notice")
    if row.status != OutboundStatus.pending:
        return
    out_id = row.id

    def send(_session: Any) -> None:
        from yishi.core import jobs

        try:
            jobs.enqueue("bot.deliver_outbound", out_id)
        except Exception:  # jobs not configured here (CLI): the sweep sends it
            log.info("strike notice %s left for the sweep", out_id)

    from sqlalchemy import event

    event.listen(session, "after_commit", send, once=True)


def _strike(
    session: Session, *, sender_id: str, item_id: int | None, reason: str, actor_id: str
) -> None:
    session.add(Strike(sender_id=sender_id, review_item_id=item_id, reason=reason))
    session.flush()
    pol = get_screener().policy
    now = utcnow()
    since = now - timedelta(days=pol.strike_window_days)
    strikes = session.exec(
        select(Strike).where(
            Strike.sender_id == sender_id,
            Strike.created_at >= since,
            Strike.voided == False,  # noqa: E712
        )
    ).all()
    hours = pol.mute_hours_for(len(strikes))
    _audit(
        session,
        item_id=item_id,
        actor_id=actor_id,
        action="strike",
        reason=reason,
        details={
            "subject": _subject(session, sender_id),
            "strike_number": len(strikes),
            "hours": hours,
        },
    )
    if hours > 0 and _active_mute(session, sender_id) is None:
        mute = Mute(
            sender_id=sender_id,
            created_at=now,
            until=now + timedelta(hours=hours),
            reason=f"第 {len(strikes)} 次确认违规：{reason}",
        )
        session.add(mute)
        _audit(
            session,
            item_id=item_id,
            actor_id="system",
            action="mute",
            reason=mute.reason,
            details={"subject": _subject(session, sender_id), "hours": hours},
        )
    _tell_sender(session, sender_id, strike_notice(hours=hours, reason=reason))


def _void_strikes(session: Session, *, item: ReviewItem, actor_id: str, reason: str) -> int:
    """Cancel the strikes an item brought, and lift an automatic mute that rested on them."""
    voided = 0
    first: Any = None
    for s in session.exec(
        select(Strike).where(Strike.review_item_id == item.id, Strike.voided == False)  # noqa: E712
    ):
        s.voided = True
        session.add(s)
        voided += 1
        first = s.created_at if first is None or s.created_at < first else first
    if not voided:
        return 0
    now = utcnow()
    for m in session.exec(
        select(Mute).where(
            Mute.sender_id == item.sender_id,
            Mute.until > now,
            col(Mute.lifted_at).is_(None),
            Mute.created_by == "system",
            Mute.created_at >= first,
        )
    ):
        m.lifted_at = now
        m.lifted_by = actor_id
        session.add(m)
    _audit(
        session,
        item_id=item.id,
        actor_id=actor_id,
        action="strike_voided",
        reason=reason,
        details={"subject": _subject(session, item.sender_id), "strikes": voided},
    )
    return voided


def _active_mute(session: Session, sender_id: str) -> Mute | None:
    now = utcnow()
    return session.exec(
        select(Mute).where(
            Mute.sender_id == sender_id, Mute.until > now, col(Mute.lifted_at).is_(None)
        )
    ).first()


def active_mute(*, session: Session, sender_id: str) -> Mute | None:
    """The sender's active mute, if any."""
    return _active_mute(session, sender_id)


def is_muted(*, session: Session, sender_id: str) -> bool:
    """Is the sender under an active temporary mute?"""
    return _active_mute(session, sender_id) is not None


def get_mutes(*, session: Session, active_only: bool = True) -> list[Mute]:
    """Mutes, newest first (only the active ones by default)."""
    stmt = select(Mute).order_by(col(Mute.created_at).desc())
    if active_only:
        stmt = stmt.where(Mute.until > utcnow(), col(Mute.lifted_at).is_(None))
    return list(session.exec(stmt))


def mute(*, session: Session, actor: Actor, sender_id: str, hours: float, reason: str) -> Mute:
    """Mute a sender by hand for `hours` (moderator)."""
    actor.require(Role.moderator)
    if not (0 < hours <= 24 * 30):
        raise Invalid("禁言时长需在 0 到 720 小时之间")
    if not reason.strip():
        raise Invalid("请填写禁言原因")
    now = utcnow()
    m = Mute(
        sender_id=sender_id,
        created_at=now,
        until=now + timedelta(hours=hours),
        reason=reason,
        created_by=actor.user_id,
    )
    session.add(m)
    _audit(
        session,
        item_id=None,
        actor_id=actor.user_id,
        action="mute",
        reason=reason,
        details={"subject": _subject(session, sender_id), "hours": hours},
    )
    session.commit()
    session.refresh(m)
    return m


def unmute(*, session: Session, actor: Actor, sender_id: str, reason: str = "") -> int:
    """Lift every active mute of a sender; returns how many were lifted."""
    actor.require(Role.moderator)
    now = utcnow()
    lifted = 0
    for m in session.exec(
        select(Mute).where(
            Mute.sender_id == sender_id, Mute.until > now, col(Mute.lifted_at).is_(None)
        )
    ):
        m.lifted_at = now
        m.lifted_by = actor.user_id
        session.add(m)
        lifted += 1
    _audit(
        session,
        item_id=None,
        actor_id=actor.user_id,
        action="unmute",
        reason=reason,
        details={"subject": _subject(session, sender_id), "lifted": lifted},
    )
    session.commit()
    return lifted


def get_strikes(*, session: Session, sender_id: str) -> list[Strike]:
    """A sender's strikes, newest first."""
    return list(
        session.exec(
            select(Strike)
            .where(Strike.sender_id == sender_id)
            .order_by(col(Strike.created_at).desc())
        )
    )


def get_queue(
    *, session: Session, status: str = "pending", limit: int = 50, offset: int = 0
) -> list[ReviewItem]:
    """Held items with a status, oldest first (the queue order)."""
    stmt = (
        select(ReviewItem)
        .where(ReviewItem.status == status)
        .order_by(col(ReviewItem.created_at), col(ReviewItem.id))
        .offset(offset)
        .limit(min(max(limit, 1), 200))
    )
    return list(session.exec(stmt))


def get(*, session: Session, item_id: int) -> ReviewItem:
    """One held item or NotFound."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"没有编号为 {item_id} 的待审消息", hint="刷新审核队列后再试")
    return item


def _decidable(session: Session, actor: Actor, item_id: int) -> ReviewItem:
    actor.require(Role.moderator)
    item = get(session=session, item_id=item_id)
    if item.status not in ("pending", "escalated"):
        raise Conflict(f"该消息已处理（{item.status}）", hint="如需更改，请走申诉流程")
    return item


def _decide(session: Session, item: ReviewItem, actor: Actor, status: str, reason: str) -> None:
    item.status = status
    item.decided_by = actor.user_id
    item.decided_at = utcnow()
    item.decision_reason = reason


def approve(*, session: Session, actor: Actor, item_id: int, reason: str = "") -> ReviewItem:
    """Approve a held item: its redacted text may be posted."""
    item = _decidable(session, actor, item_id)
    _decide(session, item, actor, "approved", reason)
    item.final_text = item.redacted or item.text
    _audit(session, item_id=item.id, actor_id=actor.user_id, action="approve", reason=reason)
    session.add(item)
    _void_strikes(session, item=item, actor_id=actor.user_id, reason="审核通过，撤销违规记录")
    _release(session, item)
    session.commit()
    session.refresh(item)
    return item


def reject(*, session: Session, actor: Actor, item_id: int, reason: str = "") -> ReviewItem:
    """Reject a held item: it is never posted, and the confirmed violation is a strike (once)."""
    item = _decidable(session, actor, item_id)
    _decide(session, item, actor, "rejected", reason)
    _audit(session, item_id=item.id, actor_id=actor.user_id, action="reject", reason=reason)
    session.add(item)
    already = session.exec(select(Strike).where(Strike.review_item_id == item.id)).first()
    if already is None and item.source not in BOT_SOURCES:
        _strike(
                session,
                sender_id=item.sender_id,
                item_id=item.id,
                reason=reason.strip() or _reason_words(item, "消息经复核被拒绝"),
                actor_id=actor.user_id,
            )
    session.commit()
    session.refresh(item)
    return item


def edit_and_approve(
    *, session: Session, actor: Actor, item_id: int, text: str, reason: str = ""
) -> ReviewItem:
    """Approve an edited version of a held item (the edit is screened and redacted too)."""
    item = _decidable(session, actor, item_id)
    if not text.strip():
        raise Invalid("修改后的内容不能为空")
    check = screen(text)
    if check.action == "block":
        raise Invalid("修改后的内容仍会被拦截", hint="；".join(check.reasons[:3]) or "请再修改")
    _decide(session, item, actor, "approved", reason)
    item.final_text = check.redacted
    _audit(
        session,
        item_id=item.id,
        actor_id=actor.user_id,
        action="edit_approve",
        reason=reason,
        details={"edited": True},  # the text itself stays on the item (erasable)
    )
    session.add(item)
    _void_strikes(session, item=item, actor_id=actor.user_id, reason="修改后通过，撤销违规记录")
    _release(session, item)
    session.commit()
    session.refresh(item)
    return item


def escalate(*, session: Session, actor: Actor, item_id: int, reason: str) -> ReviewItem:
    """Escalate a held item to senior moderators / staff; a reason is required."""
    actor.require(Role.moderator)
    item = get(session=session, item_id=item_id)
    if item.status != "pending":
        raise Conflict(f"只有待审消息可以升级（当前：{item.status}）")
    if not reason.strip():
        raise Invalid("升级需要填写原因")
    item.status = "escalated"
    item.decision_reason = reason
    _audit(session, item_id=item.id, actor_id=actor.user_id, action="escalate", reason=reason)
    session.add(item)
    session.commit()
    session.refresh(item)
    return item


def _release(session: Session, item: ReviewItem) -> None:
    handler = _release_handlers.get(item.source)
    if handler is not None:
        handler(session, item)


# --- appeals ----------------------------------------------------------------------------------


def appeal(*, session: Session, actor: Actor, item_id: int, reason: str) -> Appeal:
    """Appeal one decision about your own message: once per decision, within 20 days."""
    item = get(session=session, item_id=item_id)
    if item.sender_id != actor.user_id and not actor.has_role(Role.moderator):
        raise Forbidden("只能对自己的消息申诉")
    if item.status == "approved":
        raise Invalid("这条消息已通过，无需申诉")
    if not reason.strip():
        raise Invalid("请写明申诉理由")
    decided = item.decided_at or item.created_at
    if utcnow() - decided > APPEAL_WINDOW:
        raise Invalid("已超过 20 天申诉期限", hint="如有疑问请联系居委会")
    existing = session.exec(select(Appeal).where(Appeal.review_item_id == item_id)).first()
    if existing is not None:
        raise Conflict("这条消息已经申诉过了", hint="每个处理决定只能申诉一次，请等待结果")
    a = Appeal(review_item_id=item_id, sender_id=item.sender_id, reason=reason)
    session.add(a)
    _audit(session, item_id=item_id, actor_id=actor.user_id, action="appeal", reason=reason)
    session.commit()
    session.refresh(a)
    return a


def appeal_latest(*, session: Session, actor: Actor, reason: str) -> Appeal:
    """Appeal the newest decision against your own messages that can still be appealed."""
    since = utcnow() - APPEAL_WINDOW
    appealed = select(Appeal.review_item_id)
    item = session.exec(
        select(ReviewItem)
        .where(
            ReviewItem.sender_id == actor.user_id,
            ReviewItem.status != "approved",
            ReviewItem.created_at >= since,
            col(ReviewItem.id).not_in(appealed),
        )
        .order_by(col(ReviewItem.id).desc())
    ).first()
    if item is None or item.id is None:
        raise NotFound(
            "没有可以申诉的处理记录", hint="只有近 20 天内被暂缓或拦截、且未申诉过的消息可以申诉"
        )
    return appeal(session=session, actor=actor, item_id=item.id, reason=reason)


def get_appeals(*, session: Session, status: str = "open") -> list[Appeal]:
    """Appeals with a status, oldest first."""
    return list(
        session.exec(select(Appeal).where(Appeal.status == status).order_by(col(Appeal.created_at)))
    )


def resolve_appeal(
    *, session: Session, actor: Actor, appeal_id: int, upheld: bool, reason: str = ""
) -> Appeal:
    """Rule on an appeal; upholding it approves the message and voids its strike."""
    actor.require(Role.moderator)
    a = session.get(Appeal, appeal_id)
    if a is None:
        raise NotFound(f"没有编号为 {appeal_id} 的申诉")
    if a.status != "open":
        raise Conflict("该申诉已处理")
    a.status = "upheld" if upheld else "denied"
    a.resolved_by = actor.user_id
    a.resolved_at = utcnow()
    a.resolution_reason = reason
    session.add(a)
    _audit(
        session,
        item_id=a.review_item_id,
        actor_id=actor.user_id,
        action="appeal_upheld" if upheld else "appeal_denied",
        reason=reason,
    )
    if upheld:
        item = get(session=session, item_id=a.review_item_id)
        _decide(session, item, actor, "approved", reason or "申诉成立")
        item.final_text = item.redacted or item.text
        session.add(item)
        _void_strikes(session, item=item, actor_id=actor.user_id, reason="申诉成立，撤销违规记录")
        _release(session, item)
    session.commit()
    session.refresh(a)
    return a


def record_access(
    *, session: Session, actor_id: str, action: str, reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Log a view of personal data (e.g. a resident's phone) in the append-only audit log."""
    _audit(session, item_id=None, actor_id=actor_id, action=action, reason=reason,
           details=details)
    session.commit()


def get_audit(
    *, session: Session, item_id: int | None = None, actor_id: str | None = None, limit: int = 100
) -> list[ModerationDecision]:
    """Audit-log entries, newest first, optionally for one item or one actor."""
    stmt = (
        select(ModerationDecision)
        .order_by(col(ModerationDecision.id).desc())
        .limit(min(limit, 1000))
    )
    if item_id is not None:
        stmt = stmt.where(ModerationDecision.review_item_id == item_id)
    if actor_id is not None:
        stmt = stmt.where(ModerationDecision.actor_id == actor_id)
    return audit.resolved(session=session, entries=list(session.exec(stmt)))
