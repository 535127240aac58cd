"""Train the learned ranker and its relevance calibration from the team's question → article
pairs (yishi/knowledge/data/ltr): fit on the train split, choose regularisation and calibrate
on dev, report on test. Reproducible: same corpus, pairs and code give the same arrays."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from yishi.core import embedding
from yishi.core.clock import utcnow
from yishi.core.config import Settings
from yishi.core.errors import Invalid
from yishi.knowledge import ranker
from yishi.knowledge import service as knowledge_service
from yishi.knowledge.index import Candidate

LTR_DIR = ranker.DATA_DIR / "ltr"
PAIRS_PATH = LTR_DIR / "pairs.jsonl"
OUT_OF_SCOPE_PATH = LTR_DIR / "out_of_scope.jsonl"
L2_GRID = (0.3, 3.0, 30.0, 300.0)


def read_items(path: Path, *, split: str | None = None) -> list[dict[str, Any]]:
    """JSONL items (`question`, `gold`, optional `split`), optionally one split only."""
    items = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [i for i in items if split is None or i.get("split") == split]


def gold_of(item: dict[str, Any]) -> set[tuple[str, str]]:
    """The (file, article) pairs that answer an item."""
    return {(g["file"], g["article"]) for g in item.get("gold", [])}


def _key(cand: Candidate) -> tuple[str, str]:
    return (str(cand.meta.get("source", "")), str(cand.meta.get("article", "")))


def collect(
    items: list[dict[str, Any]],
    *,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray, list[Candidate]]]:
    """Per item: the hybrid candidate pool's features, gold labels and the candidates."""
    out = []
    # One batched embedding pass: many times faster than one question at a time on a busy CPU.
    questions = [str(item["question"]) for item in items]
    vectors = embedding.embed_messages(
        [knowledge_service.clean_query(q) for q in questions]
    ) if questions else None
    for n, item in enumerate(items):
        question = questions[n]
        cands = knowledge_service.search_candidates(
            question, k=knowledge_service.CANDIDATE_POOL, mode="hybrid", settings=settings,
            vector=None if vectors is None else vectors[n],
        )
        gold = gold_of(item)
        x = ranker.features(knowledge_service.normalise_query(question), cands)
        y = np.array([float(_key(c) in gold) for c in cands])
        out.append((x, y, cands))
        if progress is not None:
            progress(1)
    return out


def _ranks(groups: list[tuple[np.ndarray, np.ndarray, list[Candidate]]],
           score: Callable[[np.ndarray], np.ndarray] | None) -> list[tuple[int | None, np.ndarray]]:
    """(rank of the first gold or None, labels in ranked order) per group."""
    out = []
    for x, y, _ in groups:
        order = np.arange(len(y)) if score is None else np.argsort(-score(x), kind="stable")
        ranked = y[order]
        hits = np.flatnonzero(ranked > 0)
        out.append((int(hits[0]) if len(hits) else None, ranked))
    return out


def ranking_figures(
    groups: list[tuple[np.ndarray, np.ndarray, list[Candidate]]],
    golds: list[int],
    score: Callable[[np.ndarray], np.ndarray] | None,
) -> dict[str, float]:
    """recall@1/5/10 (any gold), all-gold recall@5 and MRR for one ordering."""
    ranks = _ranks(groups, score)
    n = max(len(ranks), 1)
    fig: dict[str, float] = {}
    for k in (1, 5, 10):
        fig[f"recall@{k}"] = sum(r is not None and r < k for r, _ in ranks) / n
    fig["recall_all@5"] = sum(
        ranked[:5].sum() >= g for (_, ranked), g in zip(ranks, golds, strict=True)
    ) / n
    fig["mrr"] = sum(1.0 / (r + 1) for r, _ in ranks if r is not None) / n
    return {k: round(v, 4) for k, v in fig.items()}


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def train_ranker(
    *,
    settings: Settings,
    pairs_path: Path = PAIRS_PATH,
    out_of_scope_path: Path = OUT_OF_SCOPE_PATH,
    progress: Callable[[int], None] | None = None,
) -> tuple[ranker.RankerModel, dict[str, Any]]:
    """Fit on train, choose L2 and calibrate on dev, report on test; returns (model, report)."""
    pairs = read_items(pairs_path)
    oos = read_items(out_of_scope_path) if out_of_scope_path.exists() else []
    split = {s: [p for p in pairs if p.get("split") == s] for s in ("train", "dev", "test")}
    groups = {s: collect(items, settings=settings, progress=progress) for s, items in split.items()}
    golds = {s: [len(gold_of(i)) for i in items] for s, items in split.items()}
    oos_groups = collect(oos, settings=settings, progress=progress)
    train = [(x, y) for x, y, _ in groups["train"] if len(y)]

    best: tuple[float, float, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
    for l2 in L2_GRID:
        try:
            fitted = ranker.fit_pairwise(train, l2=l2)
        except ValueError as exc:
            raise Invalid("训练集里没有能用来学习排序的问题",
                          hint="检查问题与条文对的 gold 是否都在语料里") from exc
        model = ranker.RankerModel(*fitted)
        mrr = ranking_figures(groups["dev"], golds["dev"], model.score)["mrr"]
        if best is None or mrr > best[0]:
            best = (mrr, l2, fitted)
    assert best is not None
    _, l2, fitted = best
    model = ranker.RankerModel(*fitted)

    # Calibrate on dev: each dev question's top passage (does it answer: is it a gold article?)
    # and the top passage of out-of-scope questions outside the test split (never answers).
    cal_oos = [g for g, item in zip(oos_groups, oos, strict=True) if item.get("split") != "test"]
    tops: list[float] = []
    labels: list[float] = []
    for x, y, _ in [*groups["dev"], *cal_oos]:
        if len(y):
            cand_scores = model.score(x)
            best_i = int(np.argmax(cand_scores))
            tops.append(float(cand_scores[best_i]))
            labels.append(float(y[best_i]))
    model.platt_a, model.platt_b = ranker.fit_platt(np.array(tops), np.array(labels))
    model.threshold = choose_threshold(
        model.probability(np.array(tops)), np.array(labels), in_scope=len(groups["dev"])
    )

    report: dict[str, Any] = {"l2": l2, "features": list(ranker.FEATURES)}
    for part in ("train", "dev", "test"):
        report[part] = {
            "n": len(split[part]),
            "hybrid": ranking_figures(groups[part], golds[part], None),
            "ranked": ranking_figures(groups[part], golds[part], model.score),
        }
    test_oos = [g for g, item in zip(oos_groups, oos, strict=True) if item.get("split") == "test"]
    report["relevance_test"] = relevance_figures(groups["test"], test_oos, model)
    return model, report


def choose_threshold(probs: np.ndarray, labels: np.ndarray, *, in_scope: int) -> float:
    """The probability threshold with the best F1 of 'answered with a gold article' (dev)."""
    best_t, best_f1 = 0.5, -1.0
    for t in np.arange(0.05, 0.951, 0.01):
        answered = probs >= t
        correct = float((answered & (labels > 0)).sum())
        if not answered.any():
            continue
        precision, recall = correct / answered.sum(), correct / max(in_scope, 1)
        f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
        if f1 > best_f1 + 1e-9:
            best_t, best_f1 = float(round(t, 2)), f1
    return best_t


def relevance_figures(
    in_scope: list[tuple[np.ndarray, np.ndarray, list[Candidate]]],
    out_of_scope: list[tuple[np.ndarray, np.ndarray, list[Candidate]]],
    model: ranker.RankerModel,
) -> dict[str, float]:
    """Answered precision / recall: answered = the top passage passes the threshold; correct =
    it is a gold article. Out-of-scope questions count against precision when answered."""
    answered = correct = oos_answered = 0
    for x, y, _ in in_scope:
        if not len(y):
            continue
        s = model.score(x)
        top = int(np.argmax(s))
        if model.probability(s[top : top + 1])[0] >= model.threshold:
            answered += 1
            correct += int(y[top] > 0)
    for x, _y, _ in out_of_scope:
        if len(x):
            s = model.score(x)
            if model.probability(np.array([s.max()]))[0] >= model.threshold:
                oos_answered += 1
    n_in, n_out = max(len(in_scope), 1), max(len(out_of_scope), 1)
    total_answered = answered + oos_answered
    return {
        "in_scope": len(in_scope),
        "out_of_scope": len(out_of_scope),
        "answered_precision": round(correct / total_answered, 4) if total_answered else 0.0,
        "answered_recall": round(correct / n_in, 4),
        "answered_rate_in_scope": round(answered / n_in, 4),
        "out_of_scope_answered": round(oos_answered / n_out, 4),
    }


def save(model: ranker.RankerModel, report: dict[str, Any], *, corpus: Path,
         pairs_path: Path = PAIRS_PATH, out_of_scope_path: Path = OUT_OF_SCOPE_PATH) -> None:
    """Write the arrays and the provenance file next to them."""
    model.save(ranker.MODEL_PATH)
    files = sorted(p.name for p in corpus.iterdir() if p.suffix in {".md", ".txt"})
    provenance = {
        "command": "yishi train-ranker",
        "trained_at": utcnow().replace(microsecond=0).isoformat() + "Z",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pairs": {"path": "yishi/knowledge/data/ltr/pairs.jsonl",
                  "sha256_16": _fingerprint(pairs_path)},
        "out_of_scope": {"path": "yishi/knowledge/data/ltr/out_of_scope.jsonl",
                         "sha256_16": _fingerprint(out_of_scope_path)},
        "corpus_files": len(files),
        "model": "pairwise logistic regression (linear RankNet) on standardised features, "
                 "Newton's method; Platt calibration on the dev split",
        "threshold": model.threshold,
        "platt": [round(model.platt_a, 6), round(model.platt_b, 6)],
        "weights": {f: round(float(w), 4) for f, w in zip(ranker.FEATURES, model.weights,
                                                          strict=True)},
        "report": report,
    }
    ranker.PROVENANCE_PATH.write_text(
        json.dumps(provenance, ensure_ascii=False, indent=2) + "\n", "utf-8"
    )
    ranker.set_model(model)
