"""Prompt-injection detector: attempts to override the assistant's instructions, extract its
prompt or rules, or make it act as someone else."""

from __future__ import annotations

import re

from yishi.moderation.normalise import Normalised
from yishi.moderation.schemas import Signal

_INSTR = r"(指令|指示|命令|规则|设定|提示词?|约束|限制|要求|prompt|instructions?|rules?)"

# Over the compact view (no spaces/punctuation, lower case, simplified).
OVERRIDE = re.compile(
    r"(忽略|无视|忘记|忘掉|忘了|跳过|绕过|不要管|别管|抛开|丢掉|清除|覆盖|取消)"
    r"(你|掉)?(之前|以前|先前|上面|以上|前面|上述|原来|原有|原先|所有|全部|一切|系统|开发者|管理员)?"
    r"(的|给你的|收到的|所有的)?(所有|全部|一切)?(的)?" + _INSTR
    + r"|ignore(all)?(the)?(previous|prior|above|earlier|your)?(instructions?|prompts?|rules?)"
    r"|disregard(all)?(the)?(previous|prior|above)?(instructions?|rules?)"
    r"|forget(all)?(your|the)?(previous)?(instructions?|rules?)"
    r"|(进入|开启|切换到?|启用)(开发者|管理员|调试|越狱|上帝|无限制|dan)模式"
    r"|developermode|jailbreak|越狱|doanythingnow"
    r"|(不受|没有|摆脱|解除)(任何)?(限制|约束|规则|审查)"
    r"|从现在(起|开始)你(是|就是|不再是|要扮演|扮演)"
    r"|你(现在|已经)?不再是"
    r"|(新的|最高|最新)(系统)?(指令|命令)[:：]?"
    r"|system[:：]|\[system\]|<\|?(system|im_start)\|?>|###(指令|instruction)"
)
EXTRACT = re.compile(
    r"(输出|打印|告诉我|说出|显示|展示|复述|重复|泄露|给我看|发给我|列出|透露)(一下)?(你的|你们的)?"
    r"(完整的?|全部的?|原始的?|内部的?|隐藏的?)?(系统)?(提示词|prompt|指令|设定|规则|配置|初始指令)"
    r"|(system|系统)(prompt|提示词)"
    r"|(reveal|show|print|repeat)(me)?(your)?(system)?(prompt|instructions)"
    r"|你的(提示词|系统提示|prompt|初始指令|内部规则|审核规则|过滤规则|敏感词)(是什么|有哪些|是啥|给我)?"
)
ROLEPLAY = re.compile(
    r"(扮演|假装|假扮|模仿|充当)(你是|成|一下|一个|一名|为)?(物业经理|居委会|业委会主任|管理员|开发者|客服|警察"
    r"|政府|领导|主任|书记|另一个|没有限制|不受限制)"
    r"|(act|pretend)(as|tobe|youare)|roleplayas|youarenow"
    r"|以(管理员|开发者|系统|最高权限)(身份|权限)"
    r"|我是(你的)?(开发者|管理员|程序员|工程师|系统管理员)[,，]?(现在|请|命令|要求)?"
)
CURIOUS = re.compile(
    r"(你是怎么|你怎么)(审核|过滤|判断|筛选)|审核(规则|标准|机制)|哪些词(会|不能|被)|敏感词(有哪些|列表)"
    r"|你(用的)?是什么模型|你背后是"
)


def detect(norm: Normalised) -> list[Signal]:
    """Prompt-injection signals: override and role hijack block; rule-curiosity is reviewed."""
    text = norm.compact.text
    if len(text) < 4:
        return []
    signals: list[Signal] = []
    for pattern, score, label in (
        (OVERRIDE, 0.92, "试图覆盖系统指令"),
        (EXTRACT, 0.9, "试图获取系统提示或内部规则"),
        (ROLEPLAY, 0.88, "试图让助手冒充他人或提权"),
        (CURIOUS, 0.6, "询问内部审核规则"),
    ):
        m = pattern.search(text)
        if m and m.end() > m.start():
            start, end = norm.compact.span(*m.span())
            signals.append(
                Signal(
                    category="prompt_injection", score=score, start=start, end=end,
                    source="injection", reason=f"{label}：{m.group(0)}",
                )
            )
    return signals
