"""What a resident wants. Exact commands and vote syntax are read by rules; everything else by the
learned heads on the shared message embedding (`yishi.bot.heads`): intent, category, urgency.
Where a reported problem is comes from the deliberation domain's `places`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from yishi.bot import heads
from yishi.core import commands
from yishi.deliberation import places
from yishi.deliberation.places import CN_NUM as _CN_NUM

INTENTS = ("question", "report", "status", "discussion", "vote", "command", "chat")
# The heads' finer labels and the engine intent each is served as.
ENGINE_INTENT = {"report": "report", "question": "question", "status": "status",
                 "discussion": "discussion", "vote": "vote", "command": "command",
                 "handoff": "command", "chat": "chat", "thanks": "chat", "out_of_scope": "chat"}
# A report that also asks something: the question's share of the intent head at least this.
ASKS_SHARE = 0.02


def cn_to_int(token: str) -> int | None:
    """'12', '十二', '二十三', '五零一', '一百零二' → int; None if not a number."""
    return places.cn_to_int(token)


def normalise(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII), lower case, spaces removed."""
    return places.normalise(text)


def extract_location(text: str) -> str | None:
    """A normalised location like '3栋2单元501', '5栋', '地下车库', or None."""
    return places.normalise_location(text).short


def extract_category(text: str) -> str | None:
    """One of deliberation's category values ('repairs', 'noise', ...), by the category head."""
    return heads.predict_text(text)["category"].label if text.strip() else None


def extract_urgency(text: str) -> str:
    """'urgent' | 'high' | 'normal' | 'low', by the urgency head."""
    return heads.predict_text(text)["urgency"].label if text.strip() else "normal"


# ---------------------------------------------------------------- intents
@dataclass
class IssueFields:
    category: str | None = None
    location: str | None = None
    urgency: str = "normal"


@dataclass
class Intent:
    """The routed intent with what the rules pulled out of the text."""

    name: str
    command: str | None = None  # help | my_issues | threads | clear | handoff | summarise
    # | erase | erase_confirm | export
    fields: IssueFields = field(default_factory=IssueFields)
    number: int | None = None  # statement id for votes, issue id for status, thread id for posts
    vote_value: str | None = None  # agree | disagree | pass
    topic: str | None = None  # summarise / discussion topic
    confidence: float = 1.0
    label: str = ""  # the heads' finer label (thanks, out_of_scope, handoff, ...) or "rule"
    uncertain: bool = False  # below the threshold chosen on dev: ask, do not guess
    alternatives: tuple[str, ...] = ()  # the next most likely labels, best first
    asks: bool = False  # a report that also asks something


# Exact commands residents are told to send (the help text lists them); matched whole.
_HELP = commands.HELP
_CLEAR = commands.CLEAR
_HANDOFF = commands.HANDOFF
_THREADS = commands.THREADS
_MY_ISSUES = commands.MY_ISSUES
_PRIVACY = commands.PRIVACY

_VOTE = re.compile(
    rf"^(?:我)?(同意|赞成|支持|赞同|反对|不同意|不赞成|不支持|跳过|弃权|pass)"
    rf"(?:第)?(?:观点|条|号|#|编号|意见|陈述)?[:：#]?(\d+|[{_CN_NUM}]+)(?:号|条)?(?:观点)?[。.!！]*$"
)
_VOTE_SUFFIX = re.compile(
    rf"^(?:第)?(\d+|[{_CN_NUM}]+)(?:号|条)?(?:观点|意见)?[,，:：]?(?:我)?"
    r"(同意|赞成|支持|反对|不同意|跳过|弃权)[。.!！]*$"
)
_VOTE_VALUE = {"同意": "agree", "赞成": "agree", "支持": "agree", "赞同": "agree",
               "反对": "disagree",
               "不同意": "disagree", "不赞成": "disagree", "不支持": "disagree", "跳过": "pass",
               "弃权": "pass", "pass": "pass"}

_SUMMARISE = re.compile(
    r"(?:总结|汇总|归纳|概括|梳理)(?:一下|下)?(.*?)(?:的)?(?:讨论|议题|意见|观点|共识)"
)
_SUMMARISE_ALT = re.compile(r"(.+?)(?:的)?(?:讨论|议题)(?:情况|结果)?(?:总结|汇总|归纳)")

_ISSUE_REF = re.compile(
    r"(?:工单|报修|问题|编号|单号)\s*[#号]?\s*(\d+)|#(\d+)|(\d+)号(?:工单|报修|问题)"
)
_THREAD_REF = re.compile(rf"议题\s*(?:#|第)?(\d+|[{_CN_NUM}]+)(?:号)?[:：,，\s]?")


# Attempts to steer the bot rather than talk to it: overriding its rules, extracting its prompt,
# recasting its role, fake system/authority messages, notes addressed to the AI.
_INJECTION = tuple(re.compile(p) for p in (
    r"(忽略|无视|忘记|忘掉|绕过|不要管|别管).{0,8}(指令|指示|规则|设定|提示|要求|限制|约束|命令)",
    r"(规则|指令|设定|限制)(已|都|全部|统统)?(作废|失效|取消|解除|无效)",
    r"新(的)?(规则|指令|设定)[:：]",
    r"(关闭|关掉|停用|解除|取消)(你的)?(过滤|审核|安全|限制|防护)",
    r"(系统|初始|隐藏|内部)?提示词|系统提示|systemprompt|系统指令|你的(设定|指令|规则)是(什么|怎么)",
    r"(原样|完整|逐字)(输出|打印|发|告诉|复述).{0,8}(规则|指令|设定|提示)",
    r"你现在(是|扮演|作为|变成)|扮演|你(现在)?不(再)?是.{0,6}(助手|机器人|客服)",
    r"(开发者|管理员|调试|上帝|越狱)模式|jailbreak|\bdan\b",
    r"授权码|我是(这个|本)?(系统|机器人|平台)的?(开发者|管理员|工程师|作者)",
    r"^(system|assistant|系统)[:：]|【系统(通知|消息|指令)?】|\[系统(通知|消息)?\]",
    r"<!--|给ai的(话|指令)|致ai|toai[:：]|\bai[,，:：]请",
    r"ignore(all|the|any)?(previous|prior|above)?(instructions|rules|prompts)",
    r"disregard(your|all|the)?(guidelines|instructions|rules)",
    r"(reveal|print|show|repeat)(me)?(your|the)(system)?(prompt|instructions)",
    r"whatisyoursystemprompt|youarenow|actas(an?)?(admin|administrator|developer|system)",
    r"moderationdisabled|label=allow",
))


def injection_signals(text: str) -> list[str]:
    """The injection patterns a message matches (empty for ordinary messages)."""
    t = normalise(text)
    return [p.pattern[:24] for p in _INJECTION if p.search(t)]


def parse_vote(text: str) -> tuple[str, int] | None:
    """'同意 3', '反对#12', '第3条 我同意', '跳过三' → (value, statement id)."""
    t = normalise(text).rstrip("。.!！")
    m = _VOTE.match(t)
    if m:
        num = cn_to_int(m.group(2))
        return (_VOTE_VALUE[m.group(1)], num) if num is not None else None
    m = _VOTE_SUFFIX.match(t)
    if m:
        num = cn_to_int(m.group(1))
        return (_VOTE_VALUE[m.group(2)], num) if num is not None else None
    return None


def parse_summarise(text: str) -> str | None:
    """The topic of '总结一下停车收费的讨论' ('停车收费'), '' if no topic, None if not asked."""
    t = normalise(text)
    m = _SUMMARISE.search(t) or _SUMMARISE_ALT.search(t)
    if not m:
        return None
    topic = re.sub(r"^(?:一下|下|关于|有关|大家对|大家关于|对)", "", m.group(1) or "")
    topic = re.sub(r"(?:的|大家|各方)$", "", topic).strip("，,:：")
    return topic


def parse_issue_ref(text: str) -> int | None:
    """An issue number in '报修12', '工单#3', '#7'."""
    m = _ISSUE_REF.search(normalise(text))
    if not m:
        return None
    return int(next(g for g in m.groups() if g))


def parse_thread_ref(text: str) -> int | None:
    """A thread number in '议题2：…'."""
    m = _THREAD_REF.search(normalise(text))
    return cn_to_int(m.group(1)) if m else None


def classify(text: str, *, vector: Any = None) -> Intent:
    """Route one message: exact commands and vote syntax by rule, the rest by the heads (on the
    message's shared embedding, or on `vector` when the caller already has it)."""
    t = normalise(text)
    stripped = t.strip("。.!！~～,，")
    rule = _by_rule(text, t, stripped)
    if rule is not None:
        return rule
    predicted = heads.predict_text(text) if vector is None else heads.load().predict(vector)
    intent_head = predicted["intent"]
    label = intent_head.label
    ranked = sorted(intent_head.scores, key=lambda k: -intent_head.scores[k])
    fields = IssueFields(category=predicted["category"].label,
                         location=extract_location(text), urgency=predicted["urgency"].label)
    common = {"fields": fields, "confidence": intent_head.confidence, "label": label,
              "uncertain": intent_head.confidence < heads.load().intent_threshold,
              "alternatives": tuple(ranked[1:3])}
    if label == "handoff":
        return Intent("command", command="handoff", **common)  # type: ignore[arg-type]
    if label == "command":
        return Intent("command", command="help", **common)  # type: ignore[arg-type]
    if label == "status":
        return Intent("status", number=parse_issue_ref(text), **common)  # type: ignore[arg-type]
    if label == "discussion":
        return Intent("discussion", number=parse_thread_ref(text),
                      **common)  # type: ignore[arg-type]
    asks = label == "report" and (intent_head.scores.get("question", 0.0) >= ASKS_SHARE
                                  or "?" in t)
    return Intent(ENGINE_INTENT[label], asks=asks, **common)  # type: ignore[arg-type]


def _by_rule(text: str, t: str, stripped: str) -> Intent | None:
    """Exact commands, vote syntax, summary requests and '议题N：…' posts."""
    if stripped in _HELP:
        return Intent("command", command="help", label="rule")
    if stripped in _CLEAR:
        return Intent("command", command="clear", label="rule")
    if stripped in _HANDOFF:
        return Intent("command", command="handoff", label="rule")
    if stripped in _PRIVACY:
        return Intent("command", command=_PRIVACY[stripped], label="rule")
    if stripped.startswith("申诉"):
        return Intent("command", command="appeal", topic=t[t.index("申诉") + 2 :].strip(" ：:，,"),
                      label="rule")
    vote = parse_vote(text)
    if vote:
        return Intent("vote", number=vote[1], vote_value=vote[0], label="rule")
    topic = parse_summarise(text)
    if topic is not None:
        return Intent("discussion", command="summarise", topic=topic, label="rule")
    if stripped in _THREADS:
        return Intent("command", command="threads", label="rule")
    if stripped in _MY_ISSUES:
        return Intent("command", command="my_issues", label="rule")
    thread_ref = parse_thread_ref(text)
    if thread_ref is not None and re.match(r"^议题", t) and len(t) > 5:
        return Intent("discussion", number=thread_ref, label="rule")
    return None


def allowed_while_muted(text: str) -> bool:
    """What a muted resident may still send: 转人工, 我的问题, 申诉, and any urgent report."""
    intent = classify(text)
    if intent.name == "command" and intent.command in {"handoff", "my_issues", "appeal", "help"}:
        return True
    # Safety first: the head's urgency or the crisp danger words (gas, fire, someone trapped).
    return intent.fields.urgency == "urgent" or places.infer_urgency(text) == "urgent"
