"""Build benign.jsonl: team-written community chat messages that moderation must allow.

Reads the hand-written seeds in ``seeds_benign.txt`` (same folder) and expands each family with
meaning-preserving variation: slot fillers, ordinary chat prefixes and suffixes, punctuation and
emoji, dropped punctuation (voice input), a few typos and traditional characters. Deterministic:
a fixed seed, no network. Run from anywhere:

    python yishi/moderation/data/corpus/build_benign.py
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds_benign.txt"
OUT = HERE / "benign.jsonl"
RANDOM_SEED = 20261204
MAX_PER_FAMILY = 6

# Surface cues that a naive screener mistakes for abuse, threats, drugs, scams or contact farming.
# A seed containing any of them (or written in a section marked H) counts as a hard negative.
TRIGGER_CUES = (
    "死", "杀", "炸", "爆", "枪", "毒", "黑", "赌", "约", "滚", "骂", "傻", "蠢", "笨", "疯",
    "废", "垃圾", "恶心", "鸡", "鸭", "鸽", "猪", "狗", "蛇", "鼠", "刀", "砍", "血", "打",
    "微信", "vx", "VX", "加我", "私聊", "http", "链接", "二维码", "红包", "转账", "投资", "收益",
    "返利", "贷", "中奖", "乳", "胸", "裸", "药", "针", "举报", "投诉", "威胁", "报警", "警察",
    "律师", "起诉", "法院", "王法", "冒充", "骗", "绝了", "瞅啥", "他妈", "机器人", "忽略",
    "扮演", "假装", "管理员", "提示词", "{plate}", "💀", "🔥", "🐶", "🐔", "🐷", "🐴", "{phone}",
)
# Everyday words that contain a cue but would not fool even a naive screener.
NOT_CUES = ("打扰", "打扫", "打开", "打电话", "打印", "打个电话", "打听")

BUILDINGS = ["3栋", "5号楼", "12幢", "B座", "7号楼", "2栋", "16幢", "A座", "9号楼", "11栋",
             "1号楼", "8幢", "C座", "15栋", "6号楼", "20幢", "4栋", "D座"]
UNITS = ["1单元", "2单元", "3单元", "一单元", "二单元", "4单元"]
ROOMS = ["302", "1502", "801", "1101", "603", "202", "1703", "502", "901", "1204", "401",
         "2001", "1602", "703", "101", "1802"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
NAME_FORMS = ["{s}阿姨", "{s}姐", "{s}师傅", "小{s}", "老{s}", "{s}老师", "{s}大爷", "{s}哥",
              "{s}叔", "{s}奶奶"]
TIMES = ["明天下午三点", "周六上午十点", "今晚七点半", "周日下午两点", "明早八点", "后天晚上八点",
         "本周六下午四点", "下周一上午九点", "今天下午五点", "周五晚上七点"]
DAYS = ["周六", "周日", "明天", "后天", "这周末", "下周二", "周三", "今天"]
PLACES = ["南门快递柜旁", "物业服务中心门口", "小区北门", "3栋楼下", "活动室", "篮球场边",
          "东门岗亭", "地下车库B2入口", "会所一楼", "儿童游乐区旁边"]
GATES = ["南门", "北门", "东门", "西门", "侧门"]

PREFIXES = ["", "", "", "", "", "各位邻居，", "大家好，", "邻居们，", "打扰一下，",
            "[抱拳]", "hello，", "各位，", "@所有人 ", "嗯，", "那个，"]
QUESTION_STARTS = ("请问", "想问", "问下", "问一下", "麻烦问", "有没有", "有人", "谁", "咨询")
QUESTION_PREFIXES = ["请问", "想问一下，", "问下，", "麻烦问下，", "有人知道吗，", "咨询一下，"]
SUFFIXES = ["", "", "", "", "", "🙏", "[抱拳]", "谢谢", "谢谢大家", "～", "[玫瑰]", "！", "。",
            "[微笑]", "辛苦了", "🙂"]
# "辛苦了" thanks someone who works for the compound; it only ends messages that address one.
THANKED = ("物业", "师傅", "保安", "保洁", "管理员", "团长", "志愿者", "楼栋长", "业委会", "阿姨")
TYPOS = [("的", "得"), ("在", "再"), ("已经", "以经"), ("哪", "那"), ("吗", "嘛"), ("账", "帐"),
         ("做", "作"), ("再", "在"), ("地", "的"), ("什么", "神马"), ("一下", "一哈")]
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
PUNCT = re.compile(r"[，。！？、；：,.!?;:~～…]+")


@dataclass
class Family:
    """One hand-written seed or a small group of near-paraphrases, with its theme."""

    theme: str
    family: str
    hard: bool
    seeds: list[str] = field(default_factory=list)
    fixed: bool = False  # F: expand only lightly (very short messages, exact wording matters)


def read_seeds(path: Path) -> list[Family]:
    """Parse the seed file: '## theme [H]' sections, one seed a line, '+' joins the last family."""
    families: list[Family] = []
    theme, section_hard, section_fixed, count = "", False, False, Counter[str]()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("# "):
            continue
        if line.startswith("## "):
            parts = line[3:].split()
            theme, section_hard, section_fixed = parts[0], "H" in parts[1:], "F" in parts[1:]
            continue
        if line.startswith("+") and families:
            families[-1].seeds.append(line[1:].strip().removeprefix("!").strip())
            continue
        hard = section_hard
        if line.startswith("!"):
            hard, line = True, line[1:].strip()
        count[theme] += 1
        families.append(Family(theme, f"{theme}-{count[theme]:03d}", hard, [line],
                               section_fixed))
    return families


# Mobile prefixes in everyday use, so the numbers look like the ones residents really type.
MOBILE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "147", "150",
                   "151", "152", "153", "155", "156", "157", "158", "159", "166", "173", "175",
                   "176", "177", "180", "181", "182", "183", "185", "186", "187", "188", "189",
                   "191", "195", "198", "199"]


def phone(rng: random.Random) -> str:
    """A fictional mobile number: a common 1[3-9]x prefix and 8 random digits."""
    return rng.choice(MOBILE_PREFIXES) + "".join(rng.choice("0123456789") for _ in range(8))


def plate(rng: random.Random) -> str:
    """A fictional car plate of the sender's own car."""
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    tail = "".join(rng.choice(letters + "0123456789") for _ in range(4))
    return rng.choice("京沪粤浙苏川鄂湘鲁豫") + rng.choice("ABCDE") + rng.choice(letters) + tail


def _range(rng: random.Random, spec: str) -> str:
    lo, hi = (int(x) for x in spec.split("-"))
    value = rng.randint(lo, hi)
    if hi - lo >= 40:
        value = round(value / 5) * 5 or lo
    return str(value)


def fill(template: str, rng: random.Random) -> str:
    """Replace {slot} and {n:lo-hi} placeholders with fictional fillers."""

    def one(match: re.Match[str]) -> str:
        name, _, spec = match.group(1).partition(":")
        if name == "n":
            return _range(rng, spec)
        if name == "bld":
            return rng.choice(BUILDINGS)
        if name == "unit":
            return rng.choice(UNITS)
        if name == "room":
            return rng.choice(ROOMS)
        if name == "name":
            return rng.choice(NAME_FORMS).format(s=rng.choice(SURNAMES))
        if name == "sur":
            return rng.choice(SURNAMES)
        if name == "time":
            return rng.choice(TIMES)
        if name == "day":
            return rng.choice(DAYS)
        if name == "place":
            return rng.choice(PLACES)
        if name == "gate":
            return rng.choice(GATES)
        if name == "phone":
            return phone(rng)
        if name == "plate":
            return plate(rng)
        if name == "pick":
            return rng.choice(spec.split("/"))
        raise ValueError(f"unknown slot {name!r} in {template!r}")

    return re.sub(r"\{([a-z]+(?::[^}]*)?)\}", one, template)


def _s2t() -> object:
    from opencc import OpenCC  # type: ignore[import-untyped]

    return OpenCC("s2tw")


def vary(text: str, rng: random.Random, s2t: object, *, light: bool) -> str:
    """Meaning-preserving surface variation of one filled message."""
    if light:
        roll = rng.random()
        if roll < 0.3:
            return text + rng.choice(["", "～", "！", "[OK]", "👌", "🙏", "。"])
        if roll < 0.5:
            return text.rstrip("。！!")
        return text
    if rng.random() < 0.3:
        prefix = rng.choice(PREFIXES)
        if text.endswith(("？", "?", "吗")) and rng.random() < 0.4:
            prefix = rng.choice(QUESTION_PREFIXES)
            if text.startswith(QUESTION_STARTS):
                prefix = ""
        if not text.startswith(("@", "【", "#")) and not text[0].isascii():
            text = prefix + text
    if rng.random() < 0.3 and not text.endswith(("🙏", "]")):
        suffix = rng.choice(SUFFIXES)
        if suffix == "辛苦了" and not any(who in text for who in THANKED):
            suffix = "～"
        if suffix and "\u4e00" <= suffix[0] <= "\u9fff" and not PUNCT.match(text[-1]):
            suffix = rng.choice(["，", " ", "，", "。"]) + suffix
        text = text + suffix
    roll = rng.random()
    if roll < 0.12:  # voice input: no punctuation, sometimes spaces
        text = PUNCT.sub(rng.choice(["", " "]), text).strip()
    elif roll < 0.20:
        text = text.replace("，", ",").replace("？", "?").replace("！", "!")
    elif roll < 0.26:
        text = text.replace("？", "？？").replace("！", "！！！")
    if rng.random() < 0.10:
        present = [pair for pair in TYPOS if pair[0] in text]
        if present:
            old, new = rng.choice(present)
            text = text.replace(old, new, 1)
    if rng.random() < 0.07:
        text = s2t.convert(text)  # type: ignore[attr-defined]
    return text


def split_of(family: str) -> str:
    """The fixed split rule: by family, never by item."""
    bucket = int(hashlib.sha1(family.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket < 20 else "dev" if bucket < 36 else "train"


def is_hard(family: Family) -> bool:
    """Hard negative: written as one, or its seeds carry a surface cue that looks like a trigger."""
    text = "".join(family.seeds)
    for word in NOT_CUES:
        text = text.replace(word, "")
    return family.hard or any(cue in text for cue in TRIGGER_CUES)


def expand(family: Family, rng: random.Random, s2t: object) -> list[str]:
    """Up to MAX_PER_FAMILY distinct messages from one family."""
    templated = any("{" in seed for seed in family.seeds)
    if family.fixed:
        target = 2
    elif templated:
        target = MAX_PER_FAMILY
    else:
        target = 4 if len(family.seeds) > 1 else 3
    out: list[str] = []
    seen: set[str] = set()
    for attempt in range(target * 6):
        if len(out) >= target:
            break
        seed = family.seeds[attempt % len(family.seeds)]
        text = fill(seed, rng)
        if attempt >= len(family.seeds):
            text = vary(text, rng, s2t, light=family.fixed)
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def build() -> list[dict[str, object]]:
    """All benign rows, in a stable order."""
    rng = random.Random(RANDOM_SEED)
    s2t = _s2t()
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for family in read_seeds(SEEDS):
        for text in expand(family, rng, s2t):
            if text in seen:
                continue
            seen.add(text)
            joined = "".join(family.seeds)
            pii = "{phone}" in joined or "{plate}" in joined or PHONE.search(text)
            rows.append({
                "id": f"b-{len(rows) + 1:06d}",
                "text": text,
                "label": "allow",
                "categories": ["self_pii"] if pii else ["none"],
                "family": family.family,
                "split": split_of(family.family),
                "theme": family.theme,
                "hard_negative": is_hard(family),
            })
    return rows


def main() -> None:
    """Write benign.jsonl and print counts per theme, split and the hard-negative share."""
    rows = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    families = {str(r["family"]) for r in rows}
    print(f"{len(rows)} messages, {len(families)} families -> {OUT.name}")
    print("split:", dict(Counter(str(r["split"]) for r in rows)))
    print("split families:", dict(Counter(split_of(f) for f in families)))
    hard = sum(1 for r in rows if r["hard_negative"])
    print(f"hard negatives: {hard} ({hard / len(rows):.1%})")
    print("self_pii:", sum(1 for r in rows if r["categories"] == ["self_pii"]))
    for theme, n in sorted(Counter(str(r["theme"]) for r in rows).items()):
        print(f"  {theme:12s} {n}")


if __name__ == "__main__":
    main()
