"""Retrieval evaluation: recall@1/5/10 and MRR against gold (source, article) pairs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yishi.core.config import Settings
from yishi.knowledge import service as knowledge_service


@dataclass
class RetrievalScores:
    """Figures for one retrieval mode over an eval set."""

    mode: str
    n: int = 0
    recall_at: dict[int, float] = field(default_factory=dict)  # any gold in top k
    recall_all_at: dict[int, float] = field(default_factory=dict)  # every gold in top k
    mrr: float = 0.0
    misses: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "n": self.n,
            **{f"recall@{k}": round(v, 4) for k, v in self.recall_at.items()},
            **{f"recall_all@{k}": round(v, 4) for k, v in self.recall_all_at.items()},
            "mrr": round(self.mrr, 4),
            "misses": len(self.misses),
        }


def read_items(path: Path) -> list[dict[str, Any]]:
    """Eval lines with `id`, `question` and `gold` [{file, article}]."""
    items = []
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            items.append(json.loads(line))
    return items


def corpus_settings(base: Settings) -> Settings:
    """Settings for a separate evaluation index (and database) under the data dir: the corpus
    must not leak into the community's knowledge base, and its embedding cache makes re-runs
    fast."""
    return base.model_copy(
        update={
            "data_dir": base.data_dir / "eval-retrieval",
            "database_url": None,
            "load_sample_knowledge": False,
            "knowledge_dir": None,
        }
    )


def prepare_corpus(*, settings: Settings, corpus: Path, show_progress: bool = True) -> list[str]:
    """Ingest the corpus into the evaluation index (unchanged files are skipped); the errors."""
    knowledge_service.ensure_ready(settings)
    report = knowledge_service.ingest_paths(
        paths=[corpus], settings=settings, show_progress=show_progress
    )
    return [f"{f.path}：{f.error}" for f in report.errors]


def evaluate(
    items: list[dict[str, Any]],
    *,
    mode: str = "ranked",
    settings: Settings | None = None,
    ks: tuple[int, ...] = (1, 5, 10),
) -> RetrievalScores:
    """Score retrieval: a hit counts when its source and article match a gold pair."""
    scores = RetrievalScores(mode=mode, n=len(items))
    depth = max(ks)
    any_hits = dict.fromkeys(ks, 0)
    all_hits = dict.fromkeys(ks, 0)
    rr_total = 0.0
    for item in items:
        gold = {(g["file"], g["article"]) for g in item["gold"]}
        hits = knowledge_service.search(item["question"], k=depth, settings=settings, mode=mode)
        pairs = [(h.source, h.article) for h in hits]
        first = next((i for i, p in enumerate(pairs) if p in gold), None)
        if first is not None:
            rr_total += 1.0 / (first + 1)
        for k in ks:
            found = gold & set(pairs[:k])
            any_hits[k] += bool(found)
            all_hits[k] += found == gold
        if first is None or first >= 5:
            scores.misses.append(
                {
                    "id": item.get("id"),
                    "question": item["question"],
                    "gold": sorted(gold),
                    "rank": None if first is None else first + 1,
                    "top": pairs[:3],
                }
            )
    n = max(len(items), 1)
    scores.recall_at = {k: any_hits[k] / n for k in ks}
    scores.recall_all_at = {k: all_hits[k] / n for k in ks}
    scores.mrr = rr_total / n
    return scores
