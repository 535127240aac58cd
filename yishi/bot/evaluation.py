"""The engine's figures on one split of its corpus: intents, reports recorded, category, urgency,
place, status asks answered and chit-chat taken for reports (through `classify`, as served)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yishi.bot import heads, intent_corpus
from yishi.bot.intents import ENGINE_INTENT, classify


@dataclass
class EngineFigures:
    """Counts behind each rate, so a reader sees how much each figure rests on."""

    split: str
    messages: int = 0
    counts: dict[str, list[int]] = field(default_factory=dict)  # name -> [hits, total]
    misses: list[str] = field(default_factory=list)

    def add(self, name: str, hit: bool) -> None:
        """Count one case of a figure."""
        pair = self.counts.setdefault(name, [0, 0])
        pair[0] += int(hit)
        pair[1] += 1

    def rate(self, name: str) -> float:
        """hits / total of one figure (0 when it has no cases)."""
        hits, total = self.counts.get(name, [0, 0])
        return hits / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready data."""
        return {"split": self.split, "messages": self.messages,
                **{name: {"rate": round(self.rate(name), 4), "hits": h, "total": n}
                   for name, (h, n) in self.counts.items()}}


def evaluate(split: str = "test", *, progress: Callable[[int], None] | None = None,
             cache: Path | None = None, every: int = 1) -> EngineFigures:
    """Classify every message of the split and score it against the corpus labels (vectors from
    the on-disk cache when given, else embedded one by one as a live message would be); `every`
    takes every n-th message only."""
    data = intent_corpus.load_corpus(split=split)[::every]
    vectors = (heads.cached_vectors([r["text"] for r in data], cache) if cache is not None
               else [None] * len(data))
    out = EngineFigures(split=split, messages=len(data))
    for row, vector in zip(data, vectors, strict=True):
        routed = classify(row["text"], vector=vector)
        label = routed.label if routed.label != "rule" else _rule_label(routed)
        gold = row["intent"]
        out.add("intent_accuracy", label == gold)
        if label != gold:
            out.misses.append(f"intent {label} != {gold}: {row['text']}")
        if gold == "report":
            recorded = routed.name == "report" and not routed.uncertain
            out.add("report_recorded", recorded)
            out.add("category_accuracy", routed.fields.category == row["category"])
            if routed.fields.category != row["category"]:
                out.misses.append(f"category {routed.fields.category} != {row['category']}: "
                                  f"{row['text']}")
            out.add("urgency_accuracy", routed.fields.urgency == row["urgency"])
            if row["place"] is not None:
                out.add("place_accuracy", routed.fields.location == row["place"])
                if routed.fields.location != row["place"]:
                    out.misses.append(f"place {routed.fields.location} != {row['place']}: "
                                      f"{row['text']}")
            else:
                out.add("place_none_when_none", routed.fields.location is None)
        if gold == "status":
            answered = (routed.name == "status" and not routed.uncertain) or (
                routed.command == "my_issues")
            out.add("status_answered", answered)
        if gold in ("chat", "thanks"):
            out.add("chitchat_recorded", routed.name == "report" and not routed.uncertain)
        out.add("clarify_asked", routed.uncertain)
        if progress is not None:
            progress(1)
    return out


def _rule_label(routed: Any) -> str:
    if routed.name == "command" and routed.command == "handoff":
        return "handoff"
    return str(routed.name)


__all__ = ["ENGINE_INTENT", "EngineFigures", "evaluate"]
