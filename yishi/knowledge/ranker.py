"""Learning to rank: generic features of each (question, candidate passage) pair, a linear
pairwise model over them, and a calibrated probability that the top passage answers.

The model is plain arrays (`data/ranker.npz`) with a provenance file (`data/ranker.json`); it
loads with numpy alone. Every feature is generic (scores, ranks, city, chapter, overlap), never
keyed to one document, so the same model ranks a community's own documents."""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yishi.knowledge.index import Candidate, tokenize
from yishi.knowledge.loaders import CITIES

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_PATH = DATA_DIR / "ranker.npz"
PROVENANCE_PATH = DATA_DIR / "ranker.json"

# Words that ask about consequences (fines, punishment); general Chinese, not corpus-specific.
PENALTY_ASK = re.compile(r"罚|处罚|处分|拘留|追究|吊销|没收|后果|会怎样|会怎么样|怎么处理|违法吗")
PENALTY_TEXT = re.compile(r"罚款|处罚|拘留|责令改正|没收|吊销|追究.{0,4}责任")
PENALTY_CHAPTER = re.compile(r"法律责任|罚则")
DEFINITION_ASK = re.compile(r"是什么|是指|什么叫|什么是|定义|含义|包括哪些|算不算|属于什么")
DEFINITION_TEXT = re.compile(r"是指|本法所称|本条例所称|本规定所称|用语的含义|包括")
PERIPHERAL_CHAPTER = re.compile(r"附\s*则")
GENERAL_CHAPTER = re.compile(r"总\s*则")
EFFECTIVE_TEXT = re.compile(r"自\S{0,20}起施行")

FEATURES = (
    "fused", "fused_rr", "bm25_norm", "bm25_rr", "bm25_found", "sim", "sim_gap", "vec_rr",
    "vec_found", "city_match", "city_other", "city_unasked", "penalty_art", "penalty_both",
    "penalty_unasked", "title_overlap", "chapter_overlap", "text_overlap", "log_len",
    "definition_both", "definition_art", "peripheral", "general", "effective", "no_article",
    "doc_support", "doc_best", "community",
)


def cities_in(query: str) -> list[str]:
    """Cities named in a question (a named city points to that city's own regulations)."""
    return [city for city in CITIES if city in query]


@functools.lru_cache(maxsize=16384)
def _token_set(text: str) -> frozenset[str]:
    # Passages, titles and chapters recur across queries: tokenise each once per process.
    return frozenset(tokenize(text))


def _overlap(query_tokens: set[str], text: str) -> float:
    if not query_tokens:
        return 0.0
    return len(query_tokens & _token_set(text)) / len(query_tokens)


def features(query: str, candidates: list[Candidate]) -> np.ndarray:
    """One row of FEATURES per candidate (candidates in the hybrid's order)."""
    n = len(candidates)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return out
    q_tokens = set(tokenize(query))
    cities = cities_in(query)
    asks_penalty = bool(PENALTY_ASK.search(query))
    asks_definition = bool(DEFINITION_ASK.search(query))
    top_bm25 = max((c.bm25_score for c in candidates), default=0.0) or 1.0
    top_sim = max((c.similarity for c in candidates if c.vector_rank is not None), default=0.0)
    per_doc: dict[str, int] = {}
    best_doc: dict[str, float] = {}
    for c in candidates:
        src = str(c.meta.get("source", ""))
        per_doc[src] = per_doc.get(src, 0) + 1
        best_doc[src] = max(best_doc.get(src, 0.0), c.score)
    top_score = candidates[0].score or 1.0
    for i, c in enumerate(candidates):
        meta = c.meta
        chapter = str(meta.get("chapter", ""))
        title = str(meta.get("title", ""))
        doc_city = str(meta.get("city", ""))
        src = str(meta.get("source", ""))
        penalty_art = bool(PENALTY_CHAPTER.search(chapter)) or bool(PENALTY_TEXT.search(c.text))
        definition_art = bool(DEFINITION_TEXT.search(c.text[:80]))
        row = {
            "fused": c.score / top_score,
            "fused_rr": 1.0 / (1 + i),
            "bm25_norm": c.bm25_score / top_bm25,
            "bm25_rr": 0.0 if c.bm25_rank is None else 1.0 / (1 + c.bm25_rank),
            "bm25_found": float(c.bm25_rank is not None),
            "sim": c.similarity if c.vector_rank is not None else 0.0,
            "sim_gap": (c.similarity - top_sim) if c.vector_rank is not None else -0.1,
            "vec_rr": 0.0 if c.vector_rank is None else 1.0 / (1 + c.vector_rank),
            "vec_found": float(c.vector_rank is not None),
            "city_match": float(bool(cities) and doc_city in cities),
            "city_other": float(bool(cities) and bool(doc_city) and doc_city not in cities),
            "city_unasked": float(not cities and bool(doc_city)),
            "penalty_art": float(penalty_art),
            "penalty_both": float(penalty_art and asks_penalty),
            "penalty_unasked": float(penalty_art and not asks_penalty),
            "title_overlap": _overlap(q_tokens, title),
            "chapter_overlap": _overlap(q_tokens, chapter),
            "text_overlap": _overlap(q_tokens, c.text),
            "log_len": math.log1p(len(c.text)) / 7.0,
            "definition_both": float(definition_art and asks_definition),
            "definition_art": float(definition_art),
            "peripheral": float(bool(PERIPHERAL_CHAPTER.search(chapter))),
            "general": float(bool(GENERAL_CHAPTER.search(chapter))),
            "effective": float(bool(EFFECTIVE_TEXT.search(c.text)) and len(c.text) < 120),
            "no_article": float(not meta.get("article")),
            "doc_support": per_doc[src] / n,
            "doc_best": best_doc[src] / top_score,
            "community": float(meta.get("kind") in {"community", "upload"}),
        }
        out[i] = [row[f] for f in FEATURES]
    return out


@dataclass
class RankerModel:
    """Linear scorer over standardised features plus a Platt calibration of its scores."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    platt_a: float = 1.0
    platt_b: float = 0.0
    threshold: float = 0.5

    def score(self, x: np.ndarray) -> np.ndarray:
        """Ranking scores (higher is better) for feature rows."""
        if not len(x):
            return np.zeros(0)
        return ((x - self.mean) / self.scale) @ self.weights

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probability that a passage with this score answers the question."""
        z = self.platt_a * np.asarray(scores, dtype=np.float64) + self.platt_b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

    def save(self, path: Path = MODEL_PATH) -> None:
        """Write the arrays (npz)."""
        np.savez(
            path, mean=self.mean, scale=self.scale, weights=self.weights,
            platt=np.array([self.platt_a, self.platt_b, self.threshold]),
            features=np.array(FEATURES),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> RankerModel:
        """Read the arrays; refuses a model trained on another feature list."""
        with np.load(path, allow_pickle=False) as data:
            names = tuple(str(f) for f in data["features"])
            if names != FEATURES:
                raise ValueError("ranker model was trained on a different feature list")
            platt = data["platt"]
            return cls(
                mean=data["mean"], scale=data["scale"], weights=data["weights"],
                platt_a=float(platt[0]), platt_b=float(platt[1]), threshold=float(platt[2]),
            )


_model: RankerModel | None = None
_model_lock = threading.Lock()


def get_model() -> RankerModel | None:
    """The shipped model (loaded once), or None when none is shipped."""
    global _model
    if _model is None and MODEL_PATH.exists():
        with _model_lock:
            if _model is None:
                _model = RankerModel.load(MODEL_PATH)
    return _model


def set_model(model: RankerModel | None) -> None:
    """Replace the process-wide model (training and tests)."""
    global _model
    with _model_lock:
        _model = model


def provenance() -> dict[str, Any]:
    """The shipped model's provenance (how it was trained, on what, with what figures)."""
    if not PROVENANCE_PATH.exists():
        return {}
    return dict(json.loads(PROVENANCE_PATH.read_text("utf-8")))


# ---- training (numpy only) -------------------------------------------------------------------


def fit_pairwise(
    groups: list[tuple[np.ndarray, np.ndarray]], *, l2: float = 1.0, iterations: int = 60
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise logistic regression (RankNet with a linear scorer) by Newton's method.

    `groups` holds (features, labels) per question; every (gold, other) pair in a group is one
    example `x_gold - x_other` with target 1. Returns (mean, scale, weights)."""
    allx = np.vstack([x for x, _ in groups])
    mean = allx.mean(axis=0)
    scale = allx.std(axis=0)
    scale[scale < 1e-9] = 1.0
    diffs = []
    for x, y in groups:
        z = (x - mean) / scale
        pos, neg = z[y > 0], z[y <= 0]
        if not len(pos) or not len(neg):
            continue
        diffs.append((pos[:, None, :] - neg[None, :, :]).reshape(-1, z.shape[1]))
    if not diffs:
        raise ValueError("no question has both a gold and a non-gold candidate to learn from")
    d = np.vstack(diffs)
    w = np.zeros(d.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(d @ w, -40, 40)))
        grad = d.T @ (p - 1.0) + l2 * w
        hess = (d * (p * (1 - p))[:, None]).T @ d + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return mean, scale, w


def fit_platt(
    scores: np.ndarray, labels: np.ndarray, *, iterations: int = 100
) -> tuple[float, float]:
    """Platt scaling: (a, b) so that sigmoid(a * score + b) matches the labels."""
    # Smoothed targets (Platt 1999) keep a perfectly separated dev set from diverging.
    pos, neg = float((labels > 0).sum()), float((labels <= 0).sum())
    t = np.where(labels > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    x = np.column_stack([scores, np.ones_like(scores)])
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        grad = x.T @ (p - t) + 1e-6 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])
