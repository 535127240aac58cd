"""The semantic stage: small learned heads over the shared sentence embedding.

A message's vector (`yishi.core.embedding.embed_message`, multilingual-e5-small, memoised so the
conversation engine reuses it) plus a few structural features (`structure.features`) go through
one small network (a hidden ReLU layer, or none) with a softmax over "benign" and the policy's
harm categories. The harm score is 1 - P(benign), averaged with the char n-gram classifier's
probability (`Heads.fuse`); the category is the most likely harmful class.
Thresholds per category (review, block) were calibrated on the team corpus's dev split and ship
with the weights; a community's policy file may override them.

The artefact is plain numpy arrays (`data/semantic.npz`) plus JSON (`data/semantic.json`): no
pickle, no scikit-learn at run time.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yishi.moderation import structure
from yishi.moderation.schemas import Signal

DATA_DIR = Path(__file__).resolve().parent / "data"
ARTIFACT_NPZ = DATA_DIR / "semantic.npz"
ARTIFACT_META = DATA_DIR / "semantic.json"
BENIGN = "benign"

CATEGORY_LABELS = {
    "insult": "辱骂",
    "harassment": "骚扰",
    "threat": "威胁",
    "hate": "歧视或仇恨",
    "sexual": "色情或性骚扰",
    "doxxing": "泄露他人信息",
    "spam_ad": "广告引流",
    "fraud": "诈骗",
    "gambling": "赌博",
    "incitement": "煽动",
    "prompt_injection": "试图操纵助手",
}


@dataclass(frozen=True)
class Thresholds:
    """Harm scores at which a category's message is reviewed and blocked."""

    review: float
    block: float


@dataclass
class Heads:
    """The trained heads: input scaling, layers, class names and calibrated thresholds."""

    classes: list[str]
    mean: np.ndarray
    scale: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    thresholds: dict[str, Thresholds] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for input rows (embedding + structural features)."""
        h = (np.atleast_2d(x).astype(np.float64) - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                np.maximum(h, 0.0, out=h)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return out

    def judge(self, vec: np.ndarray, text: str) -> tuple[str, float, np.ndarray]:
        """(top harmful category, harm score, all class probabilities) for one message."""
        x = np.concatenate([vec.astype(np.float32), np.asarray(structure.features(text))])
        p = self.probs(x)[0]
        return self.top(p)

    def top(self, p: np.ndarray) -> tuple[str, float, np.ndarray]:
        """The most likely harmful category and the harm score of a probability row."""
        b = self.classes.index(BENIGN)
        harm = float(1.0 - p[b])
        order = np.argsort(-p)
        cat = next(self.classes[i] for i in order if i != b)
        return cat, harm, p

    def fuse(self, harm: float, clf_prob: float | None) -> float:
        """The decision score: the heads' harm averaged with the char n-gram probability."""
        weight = float(self.meta.get("char_ngram_weight", 0.0) or 0.0)  # type: ignore[arg-type]
        if clf_prob is None or weight <= 0.0:
            return harm
        return (1.0 - weight) * harm + weight * clf_prob

    def threshold(self, category: str) -> Thresholds:
        """The calibrated thresholds of a category (the overall ones if it has none)."""
        return self.thresholds.get(category) or self.thresholds.get("*") or Thresholds(0.5, 0.9)


def to_signal(category: str, harm: float, t: Thresholds, *, source: str = "semantic") -> Signal:
    """A Signal on the policy's common scale: review at 0.5, block at 0.85."""
    if harm >= t.block:
        score = 0.85 + 0.15 * (harm - t.block) / max(1e-6, 1.0 - t.block)
    elif harm >= t.review:
        score = 0.5 + 0.35 * (harm - t.review) / max(1e-6, t.block - t.review)
    else:
        score = 0.5 * harm / max(1e-6, t.review)
    label = CATEGORY_LABELS.get(category, category)
    return Signal(
        category=category,
        score=round(min(score, 0.99), 4),
        source=source,
        reason=f"语义模型：{label}（{harm:.2f}）",
    )


def write(path: Path, heads: Heads) -> None:
    """Write an artefact (arrays in `.npz`, classes, thresholds and provenance in `.json`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"mean": heads.mean, "scale": heads.scale}
    for i, (w, b) in enumerate(heads.layers):
        arrays[f"w{i}"] = w.astype(np.float32)
        arrays[f"b{i}"] = b.astype(np.float32)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    meta = {
        **heads.meta,
        "classes": heads.classes,
        "layers": len(heads.layers),
        "thresholds": {c: [t.review, t.block] for c, t in sorted(heads.thresholds.items())},
    }
    path.with_suffix(".json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


def load(path: Path = ARTIFACT_NPZ) -> Heads | None:
    """Read an artefact (None if it is missing)."""
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    with np.load(path, allow_pickle=False) as data:
        layers = [
            (data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32))
            for i in range(int(meta["layers"]))
        ]
        mean = data["mean"].astype(np.float32)
        scale = data["scale"].astype(np.float32)
    thresholds = {c: Thresholds(float(r), float(b)) for c, (r, b) in meta["thresholds"].items()}
    return Heads(
        classes=list(meta["classes"]),
        mean=mean,
        scale=scale,
        layers=layers,
        thresholds=thresholds,
        meta={k: v for k, v in meta.items() if k not in ("classes", "thresholds")},
    )


_lock = threading.Lock()
_heads: Heads | None = None
_loaded = False


def get_heads() -> Heads | None:
    """The shipped heads, loaded once per process (None if no artefact is present)."""
    global _heads, _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                _heads = load()
                _loaded = True
    return _heads


def reset() -> None:
    """Forget the loaded heads (tests, after retraining)."""
    global _heads, _loaded
    with _lock:
        _heads = None
        _loaded = False
