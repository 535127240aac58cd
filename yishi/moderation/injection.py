"""Prompt-injection detector: attempts to override the assistant's instructions, extract its
prompt or rules, or make it act as someone else."""

from __future__ import annotations

import re

from yishi.moderation.normalise import Normalised
from yishi.moderation.schemas import Signal

_INSTR = (
    r"(审核|过滤|安全|审查|系统|平台)?"
    r"(指令|指示|命令|规则|设定|提示词?|约束|限制|要求|准则|prompt|instructions?|rules?|guidelines?"
    r"|polic(y|ies))"
)

# Over the compact view (no spaces/punctuation, lower case, simplified).
OVERRIDE = re.compile(
    r"(忽略|无视|忘记|忘掉|绕过|抛开|覆盖|不要管|别管)(你|掉)?"
    r"(之前|以前|先前|上面|以上|前面|上述|原有|所有|全部|一切|系统|开发者|管理员|你的|你收到的|给你的)"
    r"(的|给你的|收到的|所有的)?(所有|全部|一切)?(的)?"
    + _INSTR
    + r"|(忽略|无视|绕过)(审核|过滤|审查|安全)"
    r"|(ignore|disregard|forget|override|bypass)(all)?(of)?(the|your|my)?(previous|prior|above|earlier)?"
    r"(instructions?|prompts?|rules?|guidelines?|polic(y|ies)|filters?)"
    r"|(and|then)(follow|execute|obey)(it|this|these|them)"
    r"|(moderation|filter|filtering|safety|censorship)(is|has been|was)?(now)?(disabled|off)"
    r"|(output|return|set|mark)(the)?label=?(allow|safe|pass)"
    r"|(关闭|关掉|停用|禁用|解除|去掉|暂停)(你的|一下)?(过滤|审核|审查|安全|内容)(功能|机制|模式|限制)?"
    r"|(标成|标记为|标为|判为|判定为|设为|改成|归为)(allow|通过|放行|安全|正常|白名单)"
    r"|(前面|之前|上面|以上)(的)?(所有)?(规则|指令|设定)(已经|全部|都)?(作废|失效|无效)"
    r"|(最高优先级|系统)(的)?(指令|命令)|最高权限|当作.{0,8}(指令|命令)"
    r"|给(ai|助手|机器人|模型|gpt|bot|审核)的话|(属于|加入|列入|视为)白名单"
    r"|(进入|开启|切换到?|启用)(开发者|管理员|调试|越狱|上帝|无限制|dan)模式"
    r"|developermode|jailbreak|越狱|doanythingnow"
    r"|(不受|摆脱|解除)(任何)?(限制|约束|审查)"
    r"|从现在(起|开始)你(是|就是|不再是|要扮演|扮演)"
    r"|你(现在|已经)?不再是"
    r"|system[:：]|\[system\]|<\|?(system|im_start)\|?>|###(指令|instruction)"
)
EXTRACT = re.compile(
    r"(输出|打印|告诉我|说出|显示|展示|复述|重复|泄露|给我看|发给我|列出|透露)(一下)?(你的|你们的)?"
    r"(完整的?|全部的?|原始的?|内部的?|隐藏的?)?(系统)?(提示词|prompt|指令|设定|规则|配置|初始指令)"
    r"|(system|系统)(prompt|提示词)"
    r"|(reveal|show|print|repeat)(me)?(your)?(system)?(prompt|instructions)"
    r"|你的(提示词|系统提示|prompt|初始指令)(是什么|有哪些|是啥|给我)?"
    r"|(列出|导出|告诉我|给我|发我|查出|调出|显示).{0,12}(他人|别人|其他|所有|欠费|业主|住户|用户|上一个)"
    r".{0,8}(姓名|电话|手机号|门牌号|身份证|住址|聊天记录|投诉内容|个人信息|资料)"
)
ROLEPLAY = re.compile(
    r"(扮演|假装|假扮|模仿|充当)(你是|成|一下|一个|一名|为)?.{0,6}(经理|居委会|业委会|管理员|开发者|客服|警察"
    r"|政府|领导|主任|书记|另一个|没有限制|不受限制|后台)"
    r"|以(居委会|物业|业委会|政府|街道|派出所|社区|公安|法院|官方|管理员)(的)?(名义|口吻|身份)"
    r"|(act|pretend)(as|tobe|youare)|roleplayas|youarenow"
    r"|以(管理员|开发者|系统|最高权限)(身份|权限)"
    r"|我是(你的|这个系统的|系统的|本系统的)?(开发者|管理员|程序员|工程师|系统管理员)"
    r"|管理员密码|调试模式|角色扮演[:：]?你是"
    r"|没有(任何)?(规则|限制|约束|底线)的(聊天)?(机器人|助手|ai|模型)"
)
HIDDEN = re.compile(r"<!--|\[//\]:|\{\{.*\}\}")  # text hidden from human readers
CURIOUS = re.compile(
    r"(你是怎么|你怎么)(审核|过滤|判断|筛选)|(审核|过滤)(规则|标准|机制)(是|有|怎么)"
    r"|哪些词(会|不能|被)|敏感词(有哪些|列表)|你的(内部规则|审核规则|过滤规则|敏感词)"
    r"|你(用的)?是什么模型|你背后是"
)


def detect(norm: Normalised) -> list[Signal]:
    """Prompt-injection signals: override and role hijack block; rule-curiosity is reviewed."""
    text = norm.compact.text
    if len(text) < 4:
        return []
    needs_dense = any(c in norm.light.text for c in _PUNCT_CUES)
    dense, dense_offs = _dense(norm) if needs_dense else ("", ())
    signals: list[Signal] = []
    for pattern, score, label in (
        (OVERRIDE, 0.92, "试图覆盖系统指令"),
        (EXTRACT, 0.9, "试图获取系统提示或内部规则"),
        (ROLEPLAY, 0.88, "试图让助手冒充他人或提权"),
        (CURIOUS, 0.6, "询问内部审核规则"),
        (HIDDEN, 0.6, "含有隐藏注释或模板标记"),
    ):
        m = pattern.search(text)
        if m and m.end() > m.start():
            start, end = norm.compact.span(*m.span())
        elif needs_dense:
            m = pattern.search(dense)  # the same text with punctuation kept (SYSTEM:, <!--)
            if not m or m.end() <= m.start():
                continue
            start, end = dense_offs[m.start()], dense_offs[m.end() - 1] + 1
        else:
            continue
        signals.append(
            Signal(
                category="prompt_injection",
                score=score,
                start=start,
                end=end,
                source="injection",
                reason=f"{label}：{m.group(0)}",
            )
        )
    return signals


_PUNCT_CUES = ":：<[#=-{"


def _dense(norm: Normalised) -> tuple[str, tuple[int, ...]]:
    """The light view without whitespace, with its original offsets."""
    chars: list[str] = []
    offs: list[int] = []
    for c, o in zip(norm.light.text, norm.light.offsets, strict=True):
        if not c.isspace():
            chars.append(c)
            offs.append(o)
    return "".join(chars), tuple(offs)
