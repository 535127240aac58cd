"""The engine's learned heads on the shared message embedding: intent, category and urgency.

Each head is a multinomial logistic regression trained with scikit-learn on the team's corpus
(`intent_corpus`), shipped as plain arrays in `data/intents/heads.npz` with a provenance file, and
applied with numpy at run time. Probabilities are temperature-scaled on the dev split; the intent
head's confidence threshold is chosen on the dev split too. The test split is never read here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yishi.bot import intent_corpus
from yishi.core import embedding

HEADS_PATH = intent_corpus.DATA_DIR / "heads.npz"
PROVENANCE_PATH = intent_corpus.DATA_DIR / "heads.json"
HEAD_NAMES = ("intent", "category", "urgency")
TARGET_PRECISION = 0.98  # the intent threshold keeps answers at least this precise on dev
C_GRID = (1.0, 4.0, 16.0, 64.0, 256.0)


@dataclass(frozen=True)
class Head:
    """One linear head: logits = x @ weights + bias, divided by a temperature."""

    labels: tuple[str, ...]
    weights: np.ndarray  # (dim, classes)
    bias: np.ndarray  # (classes,)
    temperature: float

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Class probabilities for one vector (classes,) or many (n, classes)."""
        logits = (np.atleast_2d(vectors) @ self.weights + self.bias) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probs = exp / exp.sum(axis=1, keepdims=True)
        return probs[0] if np.ndim(vectors) == 1 else probs


@dataclass(frozen=True)
class Prediction:
    """The best label of one head, its calibrated probability, and every class's probability."""

    label: str
    confidence: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Heads:
    """The three heads and the intent threshold chosen on dev."""

    heads: dict[str, Head]
    intent_threshold: float

    def predict(self, vector: np.ndarray) -> dict[str, Prediction]:
        """Every head's prediction for one message vector."""
        out: dict[str, Prediction] = {}
        for name, head in self.heads.items():
            probs = head.probabilities(vector)
            best = int(np.argmax(probs))
            out[name] = Prediction(head.labels[best], float(probs[best]),
                                   {lab: float(p) for lab, p in zip(head.labels, probs,
                                                                    strict=True)})
        return out


_loaded: Heads | None = None
_load_lock = threading.Lock()


def load(path: Path = HEADS_PATH) -> Heads:
    """The shipped heads (read once per process)."""
    global _loaded
    if _loaded is not None and path == HEADS_PATH:
        return _loaded
    with _load_lock:
        with np.load(path, allow_pickle=False) as data:
            heads = {
                name: Head(
                    labels=tuple(str(x) for x in data[f"{name}_labels"]),
                    weights=np.asarray(data[f"{name}_weights"], dtype=np.float32),
                    bias=np.asarray(data[f"{name}_bias"], dtype=np.float32),
                    temperature=float(data[f"{name}_temperature"]),
                )
                for name in HEAD_NAMES
            }
            result = Heads(heads=heads, intent_threshold=float(data["intent_threshold"]))
        if path == HEADS_PATH:
            _loaded = result
        return result


def predict_text(text: str) -> dict[str, Prediction]:
    """Embed a message once (shared memo) and run every head on it."""
    return load().predict(embedding.embed_message(text))


# ---------------------------------------------------------------- training
def cached_vectors(texts: list[str], cache: Path,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Message vectors, read from / added to an on-disk cache keyed by the text's sha1."""
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            known = dict(zip((str(k) for k in data["keys"]), data["vectors"], strict=True))
    keys = [hashlib.sha1(f"{embedding.MODEL_ID}|{t}".encode()).hexdigest() for t in texts]
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        fresh = embedding.embed_messages([texts[i] for i in missing], progress=progress)
        for i, vec in zip(missing, fresh, strict=True):
            known[keys[i]] = vec
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[k] for k in keys]).astype(np.float32)


def _fit(x: np.ndarray, y: list[str], c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit(x, y)
    return model


def _to_head(model: Any, temperature: float = 1.0) -> Head:
    labels = tuple(str(c) for c in model.classes_)
    weights = np.asarray(model.coef_, dtype=np.float64).T
    bias = np.asarray(model.intercept_, dtype=np.float64)
    if len(labels) == 2:  # sklearn keeps one row for two classes: make it a softmax pair
        weights = np.hstack([-weights / 2, weights / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return Head(labels, weights.astype(np.float32), bias.astype(np.float32), temperature)


def _nll(head: Head, x: np.ndarray, y: list[str]) -> float:
    probs = head.probabilities(x)
    index = {lab: i for i, lab in enumerate(head.labels)}
    picked = [probs[n, index[lab]] if lab in index else 1e-9 for n, lab in enumerate(y)]
    return float(-np.mean(np.log(np.clip(picked, 1e-9, 1.0))))


def _accuracy(head: Head, x: np.ndarray, y: list[str]) -> float:
    if not y:
        return 0.0
    probs = head.probabilities(x)
    return float(np.mean([head.labels[int(i)] == lab for i, lab in
                          zip(probs.argmax(axis=1), y, strict=True)]))


def _calibrate(head: Head, x: np.ndarray, y: list[str]) -> Head:
    """The temperature that minimises dev log-loss (a one-parameter calibration)."""
    best = min((_nll(Head(head.labels, head.weights, head.bias, t), x, y), t)
               for t in np.exp(np.linspace(np.log(0.02), np.log(5.0), 61)))
    return Head(head.labels, head.weights, head.bias, float(best[1]))


def choose_threshold(confidences: np.ndarray, correct: np.ndarray,
                     target: float = TARGET_PRECISION) -> float:
    """The lowest threshold whose accepted dev predictions are at least `target` precise."""
    for t in np.round(np.arange(0.30, 0.96, 0.01), 2):
        kept = confidences >= t
        if kept.sum() and correct[kept].mean() >= target:
            return float(t)
    return 0.95


def train(*, out: Path = HEADS_PATH, provenance: Path = PROVENANCE_PATH, cache: Path,
          progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Fit the heads on train, calibrate and pick C and the threshold on dev, write the arrays."""
    rows = intent_corpus.load_corpus()
    train_rows = [r for r in rows if r["split"] == "train"]
    dev_rows = [r for r in rows if r["split"] == "dev"]
    xs = cached_vectors([r["text"] for r in train_rows + dev_rows], cache, progress)
    x_train, x_dev = xs[: len(train_rows)], xs[len(train_rows):]
    report: dict[str, Any] = {"heads": {}}
    arrays: dict[str, np.ndarray] = {}
    for name in HEAD_NAMES:
        field = "intent" if name == "intent" else name

        def pick(rs: list[dict[str, Any]], xm: np.ndarray,
                 key: str = field) -> tuple[np.ndarray, list[str]]:
            keep = [i for i, r in enumerate(rs) if r[key] is not None
                    and (key == "intent" or r["intent"] == "report")]
            return xm[keep], [str(rs[i][key]) for i in keep]

        xt, yt = pick(train_rows, x_train)
        xd, yd = pick(dev_rows, x_dev)
        scored = []
        for c in C_GRID:
            head = _to_head(_fit(xt, yt, c))
            scored.append((_accuracy(head, xd, yd), -c, c, head))
        dev_acc, _, best_c, head = max(scored, key=lambda s: (s[0], s[1]))
        head = _calibrate(head, xd, yd)
        report["heads"][name] = {"C": best_c, "temperature": round(head.temperature, 3),
                                 "dev_accuracy": round(dev_acc, 4), "train": len(yt),
                                 "dev": len(yd), "labels": list(head.labels)}
        arrays[f"{name}_labels"] = np.array(head.labels)
        arrays[f"{name}_weights"] = head.weights
        arrays[f"{name}_bias"] = head.bias
        arrays[f"{name}_temperature"] = np.array(head.temperature)
        if name == "intent":
            probs = head.probabilities(xd)
            conf = probs.max(axis=1)
            correct = np.array([head.labels[int(i)] == lab
                                for i, lab in zip(probs.argmax(axis=1), yd, strict=True)])
            threshold = choose_threshold(conf, correct)
            arrays["intent_threshold"] = np.array(threshold)
            report["intent_threshold"] = threshold
            report["dev_accepted"] = round(float((conf >= threshold).mean()), 4)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    corpus_bytes = intent_corpus.CORPUS_PATH.read_bytes()
    report.update({
        "embedding": embedding.MODEL_ID,
        "corpus": "yishi/bot/data/intents/corpus.jsonl",
        "corpus_sha1": hashlib.sha1(corpus_bytes).hexdigest(),
        "train_messages": len(train_rows), "dev_messages": len(dev_rows),
        "method": "sklearn LogisticRegression (multinomial, class_weight=balanced), C chosen on "
                  "dev accuracy, temperature fitted on dev log-loss; test split never read",
        "rebuild": "yishi engine train",
    })
    provenance.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    global _loaded
    _loaded = None
    return report
