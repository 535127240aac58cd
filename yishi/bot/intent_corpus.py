"""The engine's training corpus: hand-written seeds (yishi/bot/data/intents/seeds_*.txt) expanded
with place fillers and writing styles into `corpus.jsonl`, split once by family.

Every line of the corpus is `{"id","text","intent","category","urgency","place","family","split"}`.
`place` is the normalised place the extractor should produce (`extract_location`), written here
from the filler's own expected form, never computed by the extractor."""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data" / "intents"
CORPUS_PATH = DATA_DIR / "corpus.jsonl"
SEED_FILES = ("seeds_reports.txt", "seeds_other.txt", "seeds_more.txt")
FAMILY_SIZE = 4  # consecutive seeds of one section form a family: split together, never apart
INTENT_LABELS = ("report", "question", "status", "vote", "command", "discussion", "handoff",
                 "chat", "thanks", "out_of_scope")
URGENCIES = ("low", "normal", "high", "urgent")

# (what a resident writes, the normalised place, whether it names a room)
BUILDINGS: tuple[tuple[str, str, bool], ...] = (
    ("3栋2单元", "3栋2单元", False), ("三栋二单元", "3栋2单元", False), ("5号楼", "5栋", False),
    ("五号楼", "5栋", False), ("12幢", "12栋", False), ("十二幢", "12栋", False),
    ("7栋1单元502", "7栋1单元502", True), ("3-2-301", "3栋2单元301", True),
    ("二期5栋", "2期5栋", False), ("2期11号楼3单元", "2期11栋3单元", False),
    ("A座", "A栋", False), ("B座1203", "B栋1203", True), ("B区8号楼", "B区8栋", False),
    ("十一栋三单元", "11栋3单元", False), ("6号楼1002", "6栋1002", True), ("15栋", "15栋", False),
    ("九幢", "9栋", False), ("4号楼2单元", "4栋2单元", False), ("3座", "3栋", False),
    ("20栋3单元", "20栋3单元", False), ("八号楼", "8栋", False),
    ("2号楼3单元601室", "2栋3单元601", True), ("10栋5楼", "10栋5楼", False),
    ("第六栋", "6栋", False), ("16号楼二单元", "16栋2单元", False),
    ("三期二十一幢", "3期21栋", False), ("C栋", "C栋", False), ("1号楼", "1栋", False),
    ("十八栋", "18栋", False), ("4#楼", "4栋", False), ("9幢1单元1101", "9栋1单元1101", True),
    ("5栋一单元", "5栋1单元", False), ("23号楼2单元", "23栋2单元", False),
    ("7-1-1203", "7栋1单元1203", True), ("东区3幢", "东区3栋", False),
    ("二号楼五单元", "2栋5单元", False), ("14栋2单元三楼", "14栋2单元3楼", False),
    ("南区6号楼", "南区6栋", False), ("一期2栋", "1期2栋", False), ("D座", "D栋", False),
    ("11幢402", "11栋402", True), ("六栋三单元", "6栋3单元", False),
    ("１２栋", "12栋", False), ("17号楼1单元", "17栋1单元", False), ("二栋", "2栋", False),
)
PUBLIC: tuple[tuple[str, str], ...] = (
    ("东门", "东门"), ("小区东门", "东门"), ("东大门", "东门"), ("西门", "西门"),
    ("南门口", "南门"), ("小区北门", "北门"), ("地下车库", "地下车库"), ("地库", "地下车库"),
    ("地下停车场", "地下车库"), ("地库B2", "地下车库B2"), ("地下车库负二层", "地下车库B2"),
    ("B1车库", "地下车库B1"), ("负一楼车库", "地下车库B1"), ("中心花园", "花园"), ("花园", "花园"),
    ("小花园", "花园"), ("广场", "广场"), ("中心广场", "广场"), ("小广场", "广场"),
    ("垃圾站", "垃圾站"), ("垃圾房", "垃圾站"), ("垃圾投放点", "垃圾站"), ("快递柜", "快递点"),
    ("快递驿站", "快递点"), ("儿童游乐区", "儿童游乐区"), ("健身区", "健身区"),
    ("篮球场", "篮球场"), ("地面停车场", "停车场"), ("充电桩", "充电区"), ("活动室", "活动室"),
    ("老年活动室", "活动室"), ("大门口", "大门"), ("正门", "大门"), ("后门", "后门"),
    ("小区主路", "主干道"), ("消防通道", "消防通道"), ("凉亭", "凉亭"),
    ("物业中心", "物业服务中心"),
)
# Spots inside a building that the normalised place keeps after the building (3栋2单元楼道).
SPOTS = ("电梯厅", "电梯", "楼道", "楼梯间", "楼梯", "楼顶", "天台", "门厅", "大堂", "地下室",
         "单元门", "门口", "楼下")
PREFIXES = {
    "report": ("物业你好，", "喂，", "你好，", "麻烦一下，", "反映个事，", ""),
    "question": ("请问", "问一下，", "你好，想咨询下，", "小助手，", "我想了解一下，"),
    "status": ("你好，", "麻烦问下，", "喂，", "请问"),
    "discussion": ("", "说一句，"),
    "handoff": ("你好，", "喂，"),
    "chat": ("",),
    "thanks": ("",),
    "out_of_scope": ("小助手，", "问你个事，", ""),
}


@dataclass
class Seed:
    text: str
    intent: str
    category: str | None
    urgency: str | None
    family: str
    place: str | None = None  # a place the seed names in its own words (` @垃圾站`)


def split_of(family: str) -> str:
    """test / dev / train, fixed by the family's name (test if sha1 % 100 < 20, dev if < 36)."""
    bucket = int(hashlib.sha1(family.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket < 20 else "dev" if bucket < 36 else "train"


def read_seeds(data_dir: Path = DATA_DIR) -> list[Seed]:
    """Every seed with its intent, category, urgency and family."""
    seeds: list[Seed] = []
    for name in SEED_FILES:
        section: list[str] = []
        count = 0
        for raw in (data_dir / name).read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or (line.startswith("#") and not line.startswith("##")):
                continue
            if line.startswith("##"):
                section = [p.strip() for p in line[2:].split("|")]
                count = 0
                continue
            intent, category, urgency = _header(section)
            line, _, literal = line.partition(" @")
            text, _, override = line.partition(" |")
            if override:
                urgency = override.strip()
            family = f"{section[0]}/{count // FAMILY_SIZE}"
            count += 1
            seeds.append(Seed(text.strip(), intent, category, urgency, family,
                              literal.strip() or None))
    return seeds


def _header(section: list[str]) -> tuple[str, str | None, str | None]:
    if len(section) == 3:  # name | category | urgency: a report family
        return "report", section[1], section[2]
    if len(section) == 4:
        return section[1], section[2], section[3]
    return section[1], None, None


def _voice(text: str) -> str:
    """Speech-recognised text: no punctuation."""
    return re.sub(r"[，。！？、,.!?；;：:]", "", text)


def expected_place(filler: tuple[str, str, bool], after: str) -> str:
    """The normalised place for a building filler followed by `after` in the message."""
    _, norm, room = filler
    if room:
        return norm
    found = [(after.find(s), -len(s), s) for s in SPOTS if s in after]
    if not found:
        return norm
    return norm + min(found)[2]


_OTHER_PLACE_WORDS = ("健身器材", "绿地", "草坪", "绿化带", "门岗", "车棚")


def _names_public(text: str) -> bool:
    return (any(surface in text or norm in text for surface, norm in PUBLIC)
            or any(word in text for word in _OTHER_PLACE_WORDS))


def expand(seed: Seed, rng: random.Random) -> list[dict[str, Any]]:
    """The seed's messages: each slot filled a few ways, plus style variants."""
    rows: list[dict[str, Any]] = []

    def add(text: str, place: str | None) -> None:
        rows.append({"text": text, "intent": seed.intent, "category": seed.category,
                     "urgency": seed.urgency, "place": place, "family": seed.family})

    prefixes = PREFIXES.get(seed.intent, ("",))
    if "{b}" in seed.text:
        before, after = seed.text.split("{b}", 1)
        for filler in rng.sample(BUILDINGS, 3):
            add(before + filler[0] + after, expected_place(filler, after))
        bare = (before + after).lstrip("的")
        if not _names_public(bare):  # the same report with no place
            add(_voice(rng.choice(prefixes) + bare), None)
    elif "{p}" in seed.text:
        for surface, norm in rng.sample(PUBLIC, 3):
            add(seed.text.replace("{p}", surface), norm)
        bare = re.sub(r"^(的|那边的|那边|那里)", "", seed.text.replace("{p}", ""))
        if not _names_public(bare) and not bare.startswith(("有", "的")):
            add(_voice(bare), None)
    elif seed.intent in ("vote", "command"):
        add(seed.text, None)
    else:
        add(seed.text, seed.place)
        for prefix in rng.sample(prefixes, min(2, len(prefixes))):
            add(prefix + seed.text, seed.place)
        add(_voice(rng.choice(prefixes) + seed.text), seed.place)
    return rows


def build_corpus(data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """The whole corpus, deterministic (fixed seed), deduplicated by text."""
    rng = random.Random(20261204)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for seed in read_seeds(data_dir):
        for row in expand(seed, rng):
            if row["text"] in seen or not row["text"]:
                continue
            seen.add(row["text"])
            row["id"] = f"{seed.family}/{len(rows)}"
            row["split"] = split_of(seed.family)
            rows.append(row)
    return rows


def write_corpus(path: Path = CORPUS_PATH) -> int:
    """Write corpus.jsonl; the number of messages."""
    rows = build_corpus()
    keys = ("id", "text", "intent", "category", "urgency", "place", "family", "split")
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({k: row[k] for k in keys}, ensure_ascii=False) + "\n")
    return len(rows)


def load_corpus(path: Path = CORPUS_PATH, split: str | None = None) -> list[dict[str, Any]]:
    """The corpus rows, optionally one split."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if split is None or r["split"] == split]
