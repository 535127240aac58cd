"""Places, categories and urgency: one reading serves the bot (what it repeats back) and issues
(the dedupe key and the label staff see)."""

from __future__ import annotations

from datetime import datetime

import pytest

from yishi.core.clock import COMPACT_FORMAT, local_time
from yishi.deliberation.places import infer_category, infer_urgency, normalise_location


@pytest.mark.parametrize(
    ("text", "key", "short", "label"),
    [
        ("3#2单元", "b3/u2", "3栋2单元", "3栋2单元"),
        ("三栋二单元五零一家里的狗", "b3/u2/r501", "3栋2单元501", "3栋2单元501室"),
        ("3号楼的301室", "b3/r301", "3栋301", "3栋301室"),
        ("5号楼1单元电梯坏了", "b5/u1", "5栋1单元电梯", "5栋1单元"),
        ("3-2-301漏水", "b3/u2/r301", "3栋2单元301", "3栋2单元301室"),
        ("小区东门的路灯", "place:东门", "东门", "东门"),
        ("地库B区灯不亮", "place:地下车库", "地下车库", "地下车库"),
        ("二单元楼道", None, None, ""),
        ("二期5栋楼道灯坏了", "b2期5", "2期5栋楼道", "2期5栋"),
        ("B区8号楼电梯厅有积水", "bB区8", "B区8栋电梯厅", "B区8栋"),
        ("A座1203漏水", "bA/r1203", "A栋1203", "A栋1203室"),
        ("东区3幢1单元门口", "b东区3/u1", "东区3栋1单元门口", "东区3栋1单元"),
        ("第六栋楼下的配电箱起火了", "b6", "6栋楼下", "6栋"),
        ("十八栋楼顶水泵响", "b18", "18栋楼顶", "18栋"),
        ("１２栋２单元", "b12/u2", "12栋2单元", "12栋2单元"),
        ("10栋5楼楼道", "b10", "10栋5楼楼道", "10栋"),
        ("地下车库负二层有积水", "place:地下车库B2", "地下车库B2", "地下车库B2"),
        ("B1车库漏水", "place:地下车库B1", "地下车库B1", "地下车库B1"),
        ("垃圾房旁边臭死了", "place:垃圾站", "垃圾站", "垃圾站"),
        ("12月3号停水", None, None, ""),
        ("对门把鞋放我家门口", None, None, ""),
    ],
)
def test_one_reading_gives_key_short_form_and_label(
    text: str, key: str | None, short: str | None, label: str
) -> None:
    place = normalise_location(text)
    assert (place.key, place.short, place.label) == (key, short, label)


def test_category_and_urgency_keep_both_vocabularies() -> None:
    assert infer_category("12幢3单元1202楼上漏水") == "repairs"
    assert infer_category("楼道堆放杂物") == "fire_safety"
    assert infer_category("停车收费调整") == "fees"
    assert infer_urgency("5栋电梯被困人了") == "urgent"
    assert infer_urgency("楼道灯坏了一个星期了") == "high"
    assert infer_urgency("有空来看看就行") == "low"


def test_local_time_is_beijing_time() -> None:
    moment = datetime(2026, 11, 30, 7, 0)  # naive UTC, as stored
    assert local_time(moment) == "11月30日 15:00"
    assert local_time(moment, COMPACT_FORMAT) == "11-30 15:00"


def test_not_urgent_is_low_not_high() -> None:
    from yishi.deliberation.places import infer_urgency

    assert infer_urgency("楼道灯坏了，不急，有空来修一下") == "low"
    assert infer_urgency("不急") == "low"
    assert infer_urgency("电梯坏了，很急") in {"high", "urgent"}
    assert infer_urgency("着火了！") == "urgent"
