"""The team-written benign corpus: reproducible, well-formed, split by family, fictional PII."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "yishi" / "moderation" / "data" / "corpus"
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_benign", CORPUS / "build_benign.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    lines = (CORPUS / "benign.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_file_is_exactly_what_the_builder_writes(rows: list[dict[str, object]]) -> None:
    assert _builder().build() == rows


def test_rows_follow_the_schema(rows: list[dict[str, object]]) -> None:
    assert len(rows) >= 2500
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"b-\d{6}", str(i)) for i in ids)
    texts = [str(r["text"]) for r in rows]
    assert len(set(texts)) == len(texts)
    for row in rows:
        assert row["label"] == "allow"
        assert row["categories"] in (["none"], ["self_pii"])
        assert row["split"] in ("train", "dev", "test")
        assert str(row["text"]).strip()


def test_split_is_by_family_with_the_recorded_rule(rows: list[dict[str, object]]) -> None:
    for row in rows:
        bucket = int(hashlib.sha1(str(row["family"]).encode()).hexdigest(), 16) % 100
        expected = "test" if bucket < 20 else "dev" if bucket < 36 else "train"
        assert row["split"] == expected
    splits = Counter(str(r["split"]) for r in rows)
    assert splits["test"] > 0.12 * len(rows) and splits["dev"] > 0.08 * len(rows)


def test_no_family_dominates_and_seeds_are_many(rows: list[dict[str, object]]) -> None:
    per_family = Counter(str(r["family"]) for r in rows)
    assert max(per_family.values()) <= 6
    seeds = _builder().read_seeds(CORPUS / "seeds_benign.txt")
    assert sum(len(f.seeds) for f in seeds) >= 800


def test_hard_negatives_are_at_least_a_third(rows: list[dict[str, object]]) -> None:
    hard = sum(1 for r in rows if r["hard_negative"])
    assert hard >= 0.35 * len(rows)


def test_phone_numbers_only_in_self_pii_rows(rows: list[dict[str, object]]) -> None:
    for row in rows:
        has_phone = bool(PHONE.search(str(row["text"])))
        if has_phone:
            assert row["categories"] == ["self_pii"], row["text"]
    assert any(r["categories"] == ["self_pii"] for r in rows)
