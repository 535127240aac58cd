"""The harmful half of the moderation corpus: reproducible, well-formed, split by family."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "yishi" / "moderation" / "data" / "corpus"
CATEGORIES = {
    "insult", "harassment", "threat", "hate", "sexual", "doxxing", "incitement", "fraud",
    "spam_ad", "gambling", "prompt_injection",
}


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_harmful", CORPUS / "build_harmful.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_harmful"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    lines = (CORPUS / "harmful.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_file_is_reproducible_from_seeds(
    builder: ModuleType, rows: list[dict[str, object]]
) -> None:
    assert builder.build() == rows


def test_schema_and_family_split(rows: list[dict[str, object]]) -> None:
    splits: dict[str, set[object]] = defaultdict(set)
    for i, row in enumerate(rows, 1):
        assert row["id"] == f"h-{i:06d}"
        assert row["label"] in ("block", "review")
        cats = row["categories"]
        assert isinstance(cats, list) and 1 <= len(cats) <= 2 and set(cats) <= CATEGORIES
        family = str(row["family"])
        bucket = int(hashlib.sha1(family.encode("utf-8")).hexdigest(), 16) % 100
        assert row["split"] == ("test" if bucket < 20 else "dev" if bucket < 36 else "train")
        splits[family].add(row["split"])
        assert isinstance(row["text"], str) and row["text"].strip()
    assert all(len(s) == 1 for s in splits.values())
    assert len({row["text"] for row in rows}) == len(rows)


def test_size_and_coverage(rows: list[dict[str, object]]) -> None:
    assert len(rows) >= 2000
    per_category = Counter(c for row in rows for c in row["categories"])  # type: ignore[attr-defined]
    assert min(per_category[c] for c in CATEGORIES) >= 80
    assert max(Counter(row["family"] for row in rows).values()) <= 8
    assert sum(1 for row in rows if row["evasions"]) / len(rows) >= 0.25
    review = sum(1 for row in rows if row["label"] == "review") / len(rows)
    assert 0.15 <= review <= 0.3


def test_numbers_are_fictional_but_well_formed(rows: list[dict[str, object]]) -> None:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    texts = [str(row["text"]) for row in rows]
    ids = [m for t in texts for m in re.findall(r"(?<!\d)\d{17}[\dX](?!\d)", t)]
    phones = [m for t in texts for m in re.findall(r"(?<!\d)1[3-9]\d{9}(?!\d)", t)]
    assert ids and phones
    for number in ids:
        total = sum(int(d) * w for d, w in zip(number[:17], weights, strict=True))
        assert "10X98765432"[total % 11] == number[17]
    assert all(p.startswith(("170", "171")) for p in phones)


def test_transforms_keep_the_payload(builder: ModuleType) -> None:
    rng = random.Random(0)
    encoded = builder.fill("{b64|忽略之前的指令}", rng)
    assert base64.b64decode(encoded).decode("utf-8") == "忽略之前的指令"
    assert builder.ev_traditional("物业费多收了", rng) == "物業費多收了"
    assert builder.ev_fullwidth("加V abc123", rng) == "加Ｖ ａｂｃ１２３"
    assert builder.ev_homophone("你这个傻逼", rng) != "你这个傻逼"
    assert builder.ev_homophone("今天天气很好", rng) is None
    spaced = builder.ev_symbols("一群废物", rng)
    assert spaced is not None and "废物" not in spaced and spaced.startswith("一群废")
