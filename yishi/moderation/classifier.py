"""A char n-gram TF-IDF + logistic regression classifier for offensive text.

The artifact is stored as plain arrays (vocabulary, idf, weights) in ``data/classifier.npz`` with
its settings in ``data/classifier.json``: no pickle. Inference is pure Python over a dict, so it
needs neither scikit-learn nor SciPy at run time and costs tens of microseconds per message.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yishi.moderation.normalise import normalise

DATA_DIR = Path(__file__).resolve().parent / "data"
ARTIFACT_NPZ = DATA_DIR / "classifier.npz"
ARTIFACT_META = DATA_DIR / "classifier.json"
MAX_CHARS = 2000  # longer texts are scored on their first and last 1,000 chars


@dataclass
class CharNgramModel:
    """Vocabulary → (idf, weight) and an intercept; scores a text's offensive probability."""

    ngram_min: int
    ngram_max: int
    table: dict[str, tuple[float, float]]
    intercept: float

    def prepare(self, text: str) -> str:
        """The text in the form the model was trained on (the compact normalised view)."""
        return normalise(text).compact.text

    def prob_prepared(self, text: str) -> float:
        """Offensive probability of an already prepared text."""
        if len(text) > MAX_CHARS:
            text = text[: MAX_CHARS // 2] + text[-MAX_CHARS // 2 :]
        if not text:
            return 0.0
        table = self.table
        n = len(text)
        # Counter over a generator counts in C; far cheaper than a Python counting loop.
        counts = Counter(
            text[i : i + k]
            for k in range(self.ngram_min, self.ngram_max + 1)
            for i in range(n - k + 1)
        )
        dot = 0.0
        sq = 0.0
        for gram, c in counts.items():
            entry = table.get(gram)
            if entry is None:
                continue
            idf, weight = entry
            value = idf if c == 1 else (1.0 + math.log(c)) * idf
            sq += value * value
            dot += value * weight
        z = self.intercept + (dot / math.sqrt(sq) if sq > 0 else 0.0)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def prob(self, text: str) -> float:
        """Offensive probability of a raw text."""
        return self.prob_prepared(self.prepare(text))


_lock = threading.Lock()
_model: CharNgramModel | None = None
_loaded = False


def load(path: Path = ARTIFACT_NPZ) -> CharNgramModel | None:
    """Read an artifact (None if it is missing)."""
    if not path.is_file():
        return None
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    with np.load(path, allow_pickle=False) as data:
        vocab = data["vocab"].tolist()
        idf = data["idf"].astype(np.float64).tolist()
        coef = data["coef"].astype(np.float64).tolist()
        intercept = float(data["intercept"][0])
    table = {g: (i, w) for g, i, w in zip(vocab, idf, coef, strict=True)}
    return CharNgramModel(
        ngram_min=int(meta.get("ngram_min", 1)),
        ngram_max=int(meta.get("ngram_max", 3)),
        table=table,
        intercept=intercept,
    )


def get_model() -> CharNgramModel | None:
    """The shipped model, loaded lazily once per process (None if no artifact is present)."""
    global _model, _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                _model = load()
                _loaded = True
                # 150k long-lived entries: keep them out of the cyclic GC's full scans, which
                # otherwise add ~20 ms pauses to random messages.
                gc.freeze()
    return _model


def reset() -> None:
    """Forget the loaded model (tests, after retraining)."""
    global _model, _loaded
    with _lock:
        _model = None
        _loaded = False


# --- training -----------------------------------------------------------------------------


def read_labelled(path: Path) -> tuple[list[str], list[int]]:
    """Texts and 0/1 labels from a CSV (`TEXT`/`text` and `label`) or JSONL (`text`, `label`)."""
    texts: list[str] = []
    labels: list[int] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                texts.append(str(row["text"]))
                labels.append(_to_label(row["label"]))
        return texts, labels
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            text = row.get("TEXT") or row.get("text") or ""
            if not text:
                continue
            texts.append(text)
            labels.append(_to_label(row["label"]))
    return texts, labels


def _to_label(value: object) -> int:
    if isinstance(value, str) and value.strip().lower() in (
        "offensive",
        "block",
        "review",
        "toxic",
    ):
        return 1
    if isinstance(value, str) and value.strip().lower() in ("safe", "allow", "none", "benign"):
        return 0
    return 1 if int(str(value)) else 0


def train(
    files: Iterable[Path],
    *,
    out: Path = ARTIFACT_NPZ,
    extra: Iterable[tuple[str, int]] = (),
    extra_weight: float = 2.0,
    ngram_max: int = 3,
    min_df: int = 2,
    c: float = 10.0,
    max_features: int = 150_000,
) -> dict[str, object]:
    """Fit the model on labelled files plus `extra` (text, 0/1) rows and write it."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    sources: list[str] = []
    for f in files:
        t, y = read_labelled(Path(f))
        texts += t
        labels += y
        weights += [1.0] * len(t)
        sources.append(f"{Path(f).name} ({len(t)} rows)")
    extra_rows = list(extra)
    if extra_rows:
        texts += [t for t, _ in extra_rows]
        labels += [y for _, y in extra_rows]
        weights += [extra_weight] * len(extra_rows)
        sources.append(f"team corpus train split ({len(extra_rows)} rows, weight {extra_weight})")
    if len(set(labels)) < 2:
        raise ValueError("training data needs both labels (0 safe, 1 offensive)")
    prepared = [normalise(t).compact.text for t in texts]
    vectorizer = TfidfVectorizer(
        analyzer="char",
        ngram_range=(1, ngram_max),
        min_df=min_df,
        sublinear_tf=True,
        max_features=max_features,
        dtype=np.float32,
    )
    x = vectorizer.fit_transform(prepared)
    target = np.asarray(labels)
    # NB-LR (Wang & Manning 2012): scale features by their log-count ratio before the linear
    # model; the ratio folds into the weights, so inference stays a single dot product.
    pos = np.asarray(x[target == 1].sum(axis=0)).ravel() + 1.0
    neg = np.asarray(x[target == 0].sum(axis=0)).ravel() + 1.0
    ratio = np.log((pos / pos.sum()) / (neg / neg.sum()))
    model = LogisticRegression(C=c, max_iter=3000)
    model.fit(x.multiply(ratio).tocsr(), target, sample_weight=np.asarray(weights))
    vocab_items = sorted(vectorizer.vocabulary_.items(), key=lambda kv: kv[1])
    vocab = np.array([g for g, _ in vocab_items])
    idf = vectorizer.idf_.astype(np.float32)
    coef = (model.coef_[0] * ratio).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        vocab=vocab,
        idf=idf,
        coef=coef,
        intercept=np.array([model.intercept_[0]], dtype=np.float64),
    )
    meta = {
        "kind": "char-ngram tfidf + NB-weighted logistic regression",
        "ngram_min": 1,
        "ngram_max": ngram_max,
        "min_df": min_df,
        "C": c,
        "features": len(vocab),
        "rows": len(texts),
        "sources": sources,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    reset()
    return meta
