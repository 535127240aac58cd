"""Intent routing by rules: what a resident wants. Where / what / how urgent a reported problem is
comes from the deliberation domain's `places` (thin wrappers below keep the bot's names)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from yishi.deliberation import places
from yishi.deliberation.places import CN_NUM as _CN_NUM

INTENTS = ("question", "report", "status", "discussion", "vote", "command", "chat")


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
    """One of deliberation's category values ('repairs', 'noise', ...) or None."""
    return places.infer_category(text)


def extract_urgency(text: str) -> str:
    """'urgent' | 'high' | 'normal' | 'low' from the wording."""
    return places.infer_urgency(text)


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


_HELP = ("帮助", "help", "菜单", "功能", "怎么用", "能干什么", "能做什么", "你会什么", "使用说明",
         "?", "？")
_CLEAR = ("清除记录", "清空记录", "删除记录", "清除聊天记录", "清除对话", "忘掉我说的", "清除历史")
# Privacy commands: exact words only (a resident's data is not erased on a guess).
_PRIVACY = {"删除我的信息": "erase", "删除我的个人信息": "erase", "删除我的数据": "erase",
            "确认删除": "erase_confirm", "导出我的信息": "export", "导出我的个人信息": "export",
            "查看我的信息": "export"}
_HANDOFF = ("转人工", "人工客服", "人工服务", "找人工", "真人", "找工作人员", "叫工作人员",
            "找物业的人",
            "找居委会的人", "要人工")
_THREADS = ("议题", "有哪些议题", "议题列表", "讨论列表", "有什么讨论", "在讨论什么", "最近讨论")
_MY_ISSUES = ("我的问题", "我的报修", "我的反映", "我的投诉", "我反映的", "我报的", "我提的",
              "我的工单", "我报修的")

_VOTE = re.compile(
    rf"^(?:我)?(同意|赞成|支持|赞同|反对|不同意|不赞成|不支持|跳过|弃权|pass)"
    rf"(?:第)?(?:观点|条|号|#|编号|意见|陈述)?[:：#]?(\d+|[{_CN_NUM}]+)(?:号|条)?[。.!！]*$"
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

_STATUS = ("到哪一步", "到哪步", "进度", "处理了吗", "处理得怎么样", "处理好了吗", "修好了吗",
           "修了没",
           "有人管吗", "有没有人管", "怎么还没", "怎么还不", "咋还没", "还没修", "还没人",
           "有结果了吗",
           "有回复吗", "什么时候修", "啥时候修", "什么时候能修", "结果怎么样", "状态", "查一下我",
           "跟进", "有下文", "处理到哪", "办得怎么样", "弄好没", "搞好没", "修没修", "进展")
_ISSUE_REF = re.compile(
    r"(?:工单|报修|问题|编号|单号)\s*[#号]?\s*(\d+)|#(\d+)|(\d+)号(?:工单|报修|问题)"
)

_OPINION = ("我觉得", "我认为", "我建议", "我的意见", "我的看法", "我的观点", "我支持", "我反对",
            "我不同意", "我同意", "依我看", "要我说", "俺觉得", "我看呀", "我倒觉得", "个人觉得",
            "个人认为", "建议大家", "大家觉得", "我赞成")
_THREAD_REF = re.compile(rf"议题\s*(?:#|第)?(\d+|[{_CN_NUM}]+)(?:号)?[:：,，\s]?")

_QUESTION_MARKERS = ("吗", "么", "嘛", "怎么", "怎样", "如何", "多少", "几", "能不能", "可不可以",
                     "可以",
                     "是否", "需不需要", "要不要", "需要", "什么", "啥", "哪", "谁", "为什么",
                     "为啥",
                     "咋", "有没有", "规定", "依据", "法律", "条例", "办法", "政策", "流程", "手续",
                     "该不该", "应该", "算不算", "合法", "违法", "允许", "?", "？", "请问", "咨询",
                     "想问", "问一下", "问下")
_POLICY_WORDS = ("业主大会", "业委会", "业主委员会", "物业费", "维修资金", "维修基金", "专项维修",
                 "加装电梯", "表决", "投票", "同意", "共有部分", "物业服务", "物业合同", "选聘",
                 "解聘", "公共收益", "车位", "停车位", "装修", "规约", "管理规约", "居委会", "网格",
                 "垃圾分类", "充电", "租", "产权", "公示", "民法典", "条例", "规定", "法")
_PROBLEM_WORDS = ("坏了", "坏掉", "不亮", "不灵", "漏水", "渗水", "堵了", "堵住", "没人管",
                  "没人修",
                  "报修", "投诉", "反映", "乱停", "乱扔", "乱堆", "太吵", "好吵", "很吵", "吵死",
                  "臭", "脏", "有老鼠", "停电", "停水", "没水", "没电", "着火", "冒烟", "起火",
                  "困人",
                  "被困", "破了", "裂了", "掉了", "脱落", "松动", "不能用", "用不了", "不好使",
                  "失灵",
                  "不工作", "不运行", "关不上", "打不开", "占了", "堵着", "挡着", "噪音", "扰民",
                  "漏电", "漏气", "煤气味", "积水", "异味", "没人扫", "不打扫", "飞线", "私搭",
                  "违建", "狗屎", "叫个不停", "砸墙", "坏", "修一下", "来修", "快修", "麻烦修",
                  "修修", "处理一下", "管管", "管一管", "不像话", "危险", "隐患", "高空抛物",
                  "电梯停", "卡住", "损坏", "破损", "没有灯", "黑乎乎", "黑漆漆", "摔", "碎了",
                  "断了", "倒了",
                  "塌了", "歪了", "满了", "溢出", "冒水", "不出水", "没热水", "响个不停",
                  "叫个不停")
_GREETING = ("你好", "您好", "在吗", "hello", "hi", "嗨", "早上好", "晚上好", "下午好", "谢谢",
             "多谢", "感谢", "辛苦", "好的", "知道了", "明白", "收到", "再见", "拜拜", "ok", "嗯",
             "哦", "好滴", "中", "要得", "晓得了", "谢了", "👍")


def _any(t: str, words: tuple[str, ...]) -> bool:
    return any(w in t for w in words)


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


def classify(text: str) -> Intent:
    """Route one message to an intent, with issue fields and numbers pulled out."""
    t = normalise(text)
    stripped = t.strip("。.!！~～,，")
    fields = IssueFields(
        category=extract_category(text), location=extract_location(text),
        urgency=extract_urgency(text),
    )

    # Exact commands first: short, unambiguous words residents are told to send.
    if stripped in _HELP or (len(stripped) <= 6 and _any(stripped, _HELP[:7])):
        return Intent("command", command="help", fields=fields)
    if stripped in _PRIVACY:
        return Intent("command", command=_PRIVACY[stripped], fields=fields)
    if _any(t, _CLEAR):
        return Intent("command", command="clear", fields=fields)
    if _any(t, _HANDOFF):
        return Intent("command", command="handoff", fields=fields)
    if stripped.startswith("申诉"):
        return Intent("command", command="appeal", topic=t[t.index("申诉") + 2 :].strip(" ：:，,"),
                      fields=fields)
    vote = parse_vote(text)
    if vote:
        return Intent("vote", number=vote[1], vote_value=vote[0], fields=fields)
    topic = parse_summarise(text)
    if topic is not None:
        return Intent("discussion", command="summarise", topic=topic, fields=fields)
    if stripped in _THREADS or (len(stripped) <= 8 and _any(stripped, _THREADS[1:])):
        return Intent("command", command="threads", fields=fields)
    if stripped in _MY_ISSUES or (len(stripped) <= 8 and _any(stripped, _MY_ISSUES)):
        return Intent("command", command="my_issues", fields=fields)

    issue_ref = parse_issue_ref(text)
    own = issue_ref is not None or _any(t, _MY_ISSUES) or _mentions_own_report(t)
    if _any(t, _STATUS) and own:
        return Intent("status", number=issue_ref, fields=fields)

    thread_ref = parse_thread_ref(text)
    if thread_ref is not None and len(t) > 5:
        return Intent("discussion", number=thread_ref, fields=fields)
    if _any(t, _OPINION) and not _any(t, _PROBLEM_WORDS[:20]):
        return Intent("discussion", fields=fields, confidence=0.7)

    problem = _any(t, _PROBLEM_WORDS)
    question = _any(t, _QUESTION_MARKERS)
    policy = _any(t, _POLICY_WORDS)
    # "电梯坏了怎么办" / "找谁" with no place reads as a question about the rules.
    asks_rule = policy or _any(t, ("怎么办", "找谁", "谁负责", "谁管", "该找", "归谁"))
    if problem and question and not fields.location and asks_rule:
        return Intent("question", fields=fields, confidence=0.6)
    if problem and (fields.location or fields.category or not question):
        return Intent("report", fields=fields, confidence=0.8 if fields.location else 0.7)
    if _any(t, _STATUS) and not policy:
        return Intent("status", number=issue_ref, fields=fields, confidence=0.6)
    if question or policy:
        if len(stripped) <= 4 and _any(stripped, _GREETING):
            return Intent("chat", fields=fields)
        return Intent("question", fields=fields, confidence=0.8 if policy else 0.6)
    if fields.category and fields.location:
        return Intent("report", fields=fields, confidence=0.6)
    return Intent("chat", fields=fields, confidence=0.5)


def allowed_while_muted(text: str) -> bool:
    """What a muted resident may still send: 转人工, 我的问题, 申诉, and any urgent report."""
    intent = classify(text)
    if intent.name == "command" and intent.command in {"handoff", "my_issues", "appeal", "help"}:
        return True
    return intent.fields.urgency == "urgent"


def _mentions_own_report(t: str) -> bool:
    return _any(t, ("我报", "我反映", "我投诉", "我提", "我说的", "上次", "之前", "前几天", "那个",
                    "我家", "报修", "工单", "修好", "修了"))
