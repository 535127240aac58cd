"""Where and what a resident's report is about, read by rules: Chinese numerals, the place in a
message (building/unit/room, floor, a spot inside the building, or a named public place) as a
`Place` with a dedupe key and a human label, and the category and urgency the wording suggests.

The one implementation for the deliberation domain (recording issues) and the bot (routing
messages, asking for a missing place)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# ---------------------------------------------------------------- numerals and text
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9, "幺": 1}
CN_NUM = "零〇一二两三四五六七八九十百幺"  # characters of a Chinese numeral, for regex classes


def cn_to_int(token: str) -> int | None:
    """'12', '十二', '二十三', '五零一', '一百零二' → int; None if not a number."""
    token = token.strip()
    if not token:
        return None
    if token.isdigit():
        return int(token)
    if all(ch in _CN_DIGITS for ch in token):  # digit by digit: 五零一 → 501
        return int("".join(str(_CN_DIGITS[ch]) for ch in token))
    total, current = 0, 0
    for ch in token:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


def normalise(text: str | None) -> str:
    """NFKC (full-width digits and letters to ASCII), lower case, spaces removed."""
    text = unicodedata.normalize("NFKC", text or "")
    return re.sub(r"\s+", "", text).lower()


# ---------------------------------------------------------------- places
_NUM = rf"(\d+|[{CN_NUM}]+)"
# An estate's phase or zone written before the building: 二期 / 2期 / A区 / 东区.
_AREA = rf"(?:(\d+|[{CN_NUM}]+)期|([a-z]|\d+|[{CN_NUM}]+|[东西南北中])区)"
# A building: 3栋 / 3幢 / 3座 / 3号楼 / 3#楼 / A座 / 第六栋; '3号' alone only before a unit or room.
_BUILDING = re.compile(
    rf"(?:{_AREA})?(?:第)?(?:(\d+|[{CN_NUM}]+)(?:号楼(?!道|梯)|号院|栋楼(?!道|梯|下|上|顶)|栋|幢|座"
    rf"|#(?:楼(?!道|梯))?|号(?=\d|[{CN_NUM}]+单元)|楼(?=\d+单元|[{CN_NUM}]+单元))"
    rf"|([a-z])(?:座|栋|幢|号楼|楼(?!道|梯|上|下)))"
)
_UNIT = re.compile(_NUM + r"单元")
_DASHED = re.compile(r"(?<![\d\-—])(\d{1,3})[-—](\d{1,2})[-—](\d{3,4})(?![\d\-—])")
_ROOM = re.compile(r"(\d{3,4})(?:室|号|房)?")
_ROOM_CN = re.compile(rf"([{CN_NUM}]{{3,4}})(?:室|号|房)?")
_ROOM_MARKED = re.compile(r"(?<!\d)(\d{3,4})(?:室|房间)")  # '301室' anywhere in the message
_FLOOR = re.compile(_NUM + r"(?:楼|层)(?!道|下|上|梯)")
# Underground levels of the garage: B2 / 负二层 / 地下二层 / 负一楼.
_LEVEL = re.compile(r"(?:b([1-4])(?!\d)|(?:负|地下)([一二三1-3])(?:层|楼))")

# Named public places: (word as residents say it, canonical name). Longer words win over the
# words they contain.
_PUBLIC_PLACES: tuple[tuple[str, str], ...] = (
    ("地下车库", "地下车库"), ("地下停车场", "地下车库"), ("地下停车库", "地下车库"),
    ("地库", "地下车库"), ("车库", "地下车库"), ("地面停车场", "停车场"), ("停车场", "停车场"),
    ("东大门", "东门"), ("西大门", "西门"), ("南大门", "南门"), ("北大门", "北门"),
    ("东门", "东门"), ("西门", "西门"), ("南门", "南门"), ("北门", "北门"),
    ("正门", "大门"), ("大门", "大门"), ("后门", "后门"), ("侧门", "侧门"),
    ("中心花园", "花园"), ("小花园", "花园"), ("花园", "花园"), ("绿地", "花园"), ("草坪", "花园"),
    ("广场", "广场"), ("凉亭", "凉亭"), ("亭子", "凉亭"),
    ("健身区", "健身区"), ("健身器材", "健身区"), ("健身场", "健身区"),
    ("儿童乐园", "儿童游乐区"), ("儿童游乐区", "儿童游乐区"), ("游乐场", "儿童游乐区"),
    ("滑梯", "儿童游乐区"), ("篮球场", "篮球场"), ("羽毛球场", "羽毛球场"),
    ("垃圾站", "垃圾站"), ("垃圾房", "垃圾站"), ("垃圾投放点", "垃圾站"), ("垃圾分类亭", "垃圾站"),
    ("快递柜", "快递点"), ("快递点", "快递点"), ("快递驿站", "快递点"), ("驿站", "快递点"),
    ("充电桩", "充电区"), ("充电棚", "充电区"), ("车棚", "车棚"), ("自行车棚", "车棚"),
    ("老年活动室", "活动室"), ("活动室", "活动室"), ("活动中心", "活动室"),
    ("物业办公室", "物业服务中心"), ("物业服务中心", "物业服务中心"), ("物业中心", "物业服务中心"),
    ("小区主路", "主干道"), ("主干道", "主干道"), ("消防通道", "消防通道"), ("门岗", "门岗"),
)
_PUBLIC_WORDS = re.compile(
    "|".join(sorted((re.escape(w) for w, _ in _PUBLIC_PLACES), key=len, reverse=True))
)
_CANONICAL = dict(_PUBLIC_PLACES)
# Spots inside or at a building, kept after it in the short form (3栋2单元楼道).
BUILDING_SPOTS = ("电梯厅", "电梯间", "电梯", "楼道", "楼梯间", "楼梯", "楼顶", "天台", "门厅",
                  "大堂", "地下室", "单元门", "门口", "楼下")
_SPOT_WORDS = re.compile("|".join(sorted(BUILDING_SPOTS, key=len, reverse=True)))


@dataclass(frozen=True)
class Place:
    """A place: building/unit/room (with floor or a spot inside), or a named public place.

    `key` groups reports about the same place (b3/u2/r301, place:东门); `label` names it for
    staff ('3栋2单元301室'); `short` is how the bot repeats it ('3栋2单元楼道', '东门')."""

    key: str | None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    public: str | None = None
    floor: str | None = None
    spot: str | None = None  # inside the building: 楼道, 电梯, ...
    said: str | None = None  # the public place in the resident's words

    @property
    def label(self) -> str:
        if self.public:
            return self.public
        parts = []
        if self.building:
            parts.append(f"{self.building}栋")
        if self.unit:
            parts.append(f"{self.unit}单元")
        if self.room:
            parts.append(f"{self.room}室")
        return "".join(parts)

    @property
    def short(self) -> str | None:
        if self.public:
            return self.public
        if not self.building:
            return None
        parts = [f"{self.building}栋"]
        if self.unit:
            parts.append(f"{self.unit}单元")
        if self.room:
            parts.append(self.room)
        elif self.floor:
            parts.append(f"{self.floor}楼")
        if self.spot and not parts[-1][-1].isdigit():
            parts.append(self.spot)
        return "".join(parts)


def _building_place(building: str, unit: int | None = None, room: int | None = None,
                    floor: int | None = None, spot: str | None = None) -> Place:
    key = f"b{building}" + (f"/u{unit}" if unit is not None else "")
    key += f"/r{room}" if room is not None else ""
    return Place(key=key, building=building,
                 unit=str(unit) if unit is not None else None,
                 room=str(room) if room is not None else None,
                 floor=str(floor) if floor is not None else None, spot=spot)


def _area(phase: str | None, zone: str | None) -> str:
    if phase:
        number = cn_to_int(phase)
        return f"{number}期" if number is not None else ""
    if zone:
        number = cn_to_int(zone)
        return f"{number}区" if number is not None else f"{zone.upper()}区"
    return ""


def _find_building(t: str) -> tuple[str, int] | None:
    """The building named in the text ('2期5', 'A', '12') and where its mention ends."""
    for found in _BUILDING.finditer(t):
        if found.start() > 0 and t[found.start() - 1] == "月":  # '12月3号' is a date
            continue
        area = _area(found.group(1), found.group(2))
        if found.group(4):
            return area + found.group(4).upper(), found.end()
        number = cn_to_int(found.group(3))
        if number is not None and 0 < number < 200:
            return f"{area}{number}", found.end()
    return None


def normalise_location(text: str | None) -> Place:
    """Find the place in free text: 3栋2单元 / 3号楼2单元 / 三幢二单元 / 3-2-301 all agree."""
    t = normalise(text)
    if not t:
        return Place(key=None)
    dashed = _DASHED.search(t)
    if dashed:
        return _building_place(str(int(dashed.group(1))), int(dashed.group(2)),
                               int(dashed.group(3)))
    building = _find_building(t)
    if building is not None:
        name, tail_from = building
        unit = None
        found = _UNIT.search(t, tail_from)  # a unit alone names no place
        if found and found.start() - tail_from <= 2:
            unit = cn_to_int(found.group(1))
            if unit is not None and 0 < unit < 50:
                tail_from = found.end()
            else:
                unit = None
        rest = t[tail_from:tail_from + 8]
        room = floor = None
        matched = _ROOM.match(rest) or _ROOM_CN.match(rest) or _ROOM_MARKED.search(t, tail_from)
        if matched:
            room = cn_to_int(matched.group(1))
            tail_from = tail_from + matched.end() if matched.re is not _ROOM_MARKED else tail_from
        else:
            on_floor = _FLOOR.match(rest)
            floor = cn_to_int(on_floor.group(1)) if on_floor else None
            floor = floor if floor is not None and 0 < floor < 60 else None
            if on_floor is not None and floor is not None:
                tail_from += on_floor.end()
        spot_found = _SPOT_WORDS.search(t, tail_from)
        spot = spot_found.group(0) if spot_found else None
        return _building_place(name, unit, room, floor, spot)
    found_public = _PUBLIC_WORDS.search(t)
    if found_public is None:
        return Place(key=None)
    said = found_public.group(0)
    public = _CANONICAL[said]
    if public == "地下车库":
        level = _LEVEL.search(t)
        if level:
            public += f"B{cn_to_int(level.group(1) or level.group(2))}"
    return Place(key=f"place:{public}", public=public, said=said)


def _public_word(t: str) -> str | None:
    found = _PUBLIC_WORDS.search(t)
    return found.group(0) if found else None


def strip_location(text: str) -> str:
    """The text with its place words blanked out (to compare what two reports say)."""
    t = normalise(text)
    for pattern in (_DASHED, _BUILDING, _UNIT, _ROOM_MARKED, _PUBLIC_WORDS):
        t = pattern.sub(" ", t)
    return t


# ---------------------------------------------------------------- category and urgency
# Order matters: the first category with a matching word wins, so specific ones come first.
_CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fire_safety", ("消防", "灭火器", "消火栓", "飞线", "楼道充电", "电动车充电", "电瓶车充电",
                     "堵塞通道", "通道堵", "着火", "起火", "冒烟", "烧焦", "火灾", "煤气", "燃气",
                     "楼道堆物", "堆放杂物", "电动车进楼", "烟感")),
    ("elderly_care", ("独居", "老人摔", "老人晕", "老人没人管", "孤寡", "空巢", "助老", "养老",
                      "老年")),
    ("illegal_construction", ("违建", "违章", "私搭", "乱搭", "搭建", "加盖", "加建", "封阳台",
                              "拆承重")),
    ("noise", ("噪音", "噪声", "太吵", "很吵", "好吵", "吵死", "吵得", "扰民", "广场舞", "半夜装修",
               "夜里装修", "电钻", "砸墙", "音响", "吵闹", "闹腾", "鬼叫", "装修声", "半夜施工",
               "夜间施工")),
    ("pets", ("狗", "猫", "宠物", "遛狗", "狗屎", "狗粪", "犬", "拴绳")),
    ("garbage", ("垃圾", "分类", "垃圾桶", "清运", "堆物", "杂物", "建筑垃圾")),
    ("fees", ("物业费", "收费", "乱收费", "公摊", "维修基金", "维修资金", "水电费", "账目", "公示",
              "费用", "涨价")),
    ("parking", ("停车", "车位", "乱停", "占道", "挡路", "堵门", "僵尸车", "充电桩",
                 "道闸", "停车费", "挡道", "堵车")),
    ("greenery", ("绿化", "树", "草坪", "花草", "修剪", "树枝", "枯枝")),
    ("security", ("门禁", "监控", "保安", "小偷", "被盗", "偷", "陌生人", "可疑", "门岗", "巡逻",
                  "高空抛物", "扔东西", "治安")),
    ("cleaning", ("卫生", "脏", "打扫", "保洁", "异味", "臭", "老鼠", "蟑螂", "蚊子", "积水")),
    ("neighbour_dispute", ("邻居", "对门", "隔壁", "吵架", "纠纷", "矛盾")),
    ("repairs", ("坏", "碎", "灯", "不亮", "漏水", "渗水", "水管", "堵了", "堵住", "下水道", "电梯",
                 "停电", "停水", "没水", "没电", "跳闸", "破损", "裂", "掉", "维修", "修", "脱落",
                 "松动", "窨井", "井盖", "路面", "墙皮", "水压", "屋顶", "防水", "故障", "堵塞")),
)

_URGENT = ("着火", "起火", "火灾", "冒烟", "烧焦", "煤气", "燃气", "漏气", "漏电", "触电", "困人",
           "被困", "困在电梯", "关在电梯", "卡在电梯", "救命", "紧急", "危险", "快来人", "晕倒",
           "倒了人", "摔倒", "爆", "水漫", "淹了", "塌", "砸到人", "井盖没了", "大量漏水",
           "十万火急")
_HIGH = ("一周", "一个星期", "好几天", "几天了", "半个月", "一个月", "很久", "好久", "老是", "总是",
         "又坏", "又", "反复", "天天", "每天", "一直", "孩子", "老人", "摔", "安全隐患", "隐患",
         "马上", "尽快", "赶紧", "急", "停电", "停水", "电梯坏", "电梯停", "堵塞")
_LOW = ("不急", "有空", "方便的时候", "建议", "顺便")


def infer_category(text: str) -> str | None:
    """One of deliberation's category values ('repairs', 'noise', ...) or None."""
    t = normalise(text)
    for category, words in _CATEGORY_WORDS:
        if any(w in t for w in words):
            return category
    return None


def infer_urgency(text: str) -> str:
    """'urgent' | 'high' | 'normal' | 'low' from the wording (staff can change it)."""
    t = normalise(text)
    rest = t
    for w in _LOW:  # "不急" must not read as "急"
        rest = rest.replace(w, " ")
    if any(w in rest for w in _URGENT):
        return "urgent"
    if rest != t and not any(w in rest for w in ("急", "马上")):
        return "low"
    if any(w in rest for w in _HIGH):
        return "high"
    return "normal"
