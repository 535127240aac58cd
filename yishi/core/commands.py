"""The exact command words residents are told to send (the help text lists them).

One list for the two readers that must agree on it: the conversation engine matches them whole,
and moderation lets them skip judgement (nothing in "删除我的信息" needs a sentence model).
"""

from __future__ import annotations

HELP = ("帮助", "help", "菜单", "功能", "使用说明", "?", "？", "怎么用")
CLEAR = ("清除记录", "清空记录", "删除记录", "清除聊天记录", "清除对话", "删除聊天记录")
HANDOFF = ("转人工", "人工客服", "人工服务", "找人工", "人工")
THREADS = ("议题", "议题列表", "有哪些议题", "讨论列表")
MY_ISSUES = ("我的问题", "我的报修", "我的反映", "我的投诉", "我的工单")
# Privacy commands: exact words only (a resident's data is not erased on a guess).
PRIVACY = {"删除我的信息": "erase", "删除我的个人信息": "erase", "删除我的数据": "erase",
           "确认删除": "erase_confirm", "导出我的信息": "export", "导出我的个人信息": "export",
           "查看我的信息": "export"}

EXACT = frozenset((*HELP, *CLEAR, *HANDOFF, *THREADS, *MY_ISSUES, *PRIVACY, "申诉"))
