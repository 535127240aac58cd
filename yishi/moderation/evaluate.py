"""Offline evaluation of the screening pipeline on labelled sets (measuring only)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from yishi.moderation import classifier
from yishi.moderation.schemas import CATEGORIES, Verdict

Screen = Callable[[str], Verdict]
SAMPLE_SEED = 29


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": tp + fn}


def eval_dev(path: Path, screen: Screen) -> dict[str, Any]:
    """moderation_dev-style JSONL (`text`, `label`, `categories`): per action and category."""
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    actions = ("allow", "review", "block")
    counts: dict[str, Counter[str]] = {a: Counter() for a in actions}
    cat_counts: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
    benign = blocked_benign = reviewed_benign = 0
    self_pii = self_redacted = 0
    errors: list[dict[str, Any]] = []
    for row in rows:
        v = screen(row["text"])
        gold = row["label"]
        for a in actions:
            if v.action == a and gold == a:
                counts[a]["tp"] += 1
            elif v.action == a:
                counts[a]["fp"] += 1
            elif gold == a:
                counts[a]["fn"] += 1
        gold_cats = set(row.get("categories", [])) - {"none"}
        pred_cats = set(v.categories)
        for c in CATEGORIES:
            if c in gold_cats and c in pred_cats:
                cat_counts[c]["tp"] += 1
            elif c in pred_cats:
                cat_counts[c]["fp"] += 1
            elif c in gold_cats:
                cat_counts[c]["fn"] += 1
        if gold == "allow":
            benign += 1
            blocked_benign += v.action == "block"
            reviewed_benign += v.action == "review"
        if "self_pii" in gold_cats:
            self_pii += 1
            self_redacted += v.redacted != row["text"]
        if v.action != gold:
            errors.append(
                {"id": row.get("id"), "gold": gold, "got": v.action, "cats": v.categories}
            )
    return {
        "rows": len(rows),
        "actions": {a: prf(counts[a]["tp"], counts[a]["fp"], counts[a]["fn"]) for a in actions},
        "categories": {
            c: prf(cat_counts[c]["tp"], cat_counts[c]["fp"], cat_counts[c]["fn"])
            for c in CATEGORIES
            if sum(cat_counts[c].values())
        },
        "benign_blocked_rate": round(blocked_benign / benign, 4) if benign else 0.0,
        "benign_review_rate": round(reviewed_benign / benign, 4) if benign else 0.0,
        "self_pii_redacted": f"{self_redacted}/{self_pii}",
        "errors": errors,
    }


def _binary(gold: Iterable[int], pred: Iterable[int]) -> dict[str, Any]:
    c: Counter[tuple[int, int]] = Counter(zip(gold, pred, strict=True))
    pos = prf(c[(1, 1)], c[(0, 1)], c[(1, 0)])
    neg = prf(c[(0, 0)], c[(1, 0)], c[(0, 1)])
    total = sum(c.values())
    return {
        "macro_f1": round((pos["f1"] + neg["f1"]) / 2, 4),
        "accuracy": round((c[(1, 1)] + c[(0, 0)]) / total, 4) if total else 0.0,
        "offensive": pos,
        "safe": neg,
    }


def eval_cold(
    path: Path, screen: Screen, *, pipeline: bool = True, sample: int | None = None
) -> dict[str, Any]:
    """COLD CSV: macro-F1 of the char n-gram classifier alone (at 0.5) and of the whole
    pipeline (offensive = held, i.e. not allowed)."""
    texts, labels = classifier.read_labelled(path)
    if sample is not None and sample < len(texts):
        order = list(range(len(texts)))
        random.Random(SAMPLE_SEED).shuffle(order)
        texts = [texts[i] for i in order[:sample]]
        labels = [labels[i] for i in order[:sample]]
    model = classifier.get_model()
    out: dict[str, Any] = {"rows": len(texts)}
    if model is not None:
        out["classifier"] = _binary(labels, [int(model.prob(t) >= 0.5) for t in texts])
    if pipeline:
        flagged = [int(screen(t).action != "allow") for t in texts]
        out["pipeline_flagged"] = _binary(labels, flagged)
    return out


HARM_CLASSES = {
    "谩骂引战": "abuse",
    "黑产广告": "ads",
    "博彩": "gambling",
    "欺诈": "fraud",
    "低俗色情": "sexual",
    "不违规": "benign",
}
HARMFUL = ("abuse", "ads", "gambling", "fraud", "sexual")
# Our categories on ChineseHarm-Bench's six classes (the strongest category decides).
OURS_TO_HARM = {
    "insult": "abuse",
    "harassment": "abuse",
    "threat": "abuse",
    "hate": "abuse",
    "incitement": "abuse",
    "doxxing": "abuse",
    "spam_ad": "ads",
    "prompt_injection": "ads",
    "gambling": "gambling",
    "fraud": "fraud",
    "sexual": "sexual",
}


def harm_class(v: Verdict) -> str:
    """The ChineseHarm-Bench class our verdict amounts to."""
    if v.action == "allow":
        return "benign"
    for c in v.categories:
        if c in OURS_TO_HARM:
            return OURS_TO_HARM[c]
    return "abuse"


def macro_f1(gold: list[str], pred: list[str], classes: Iterable[str]) -> dict[str, Any]:
    """Per-class F1 and their mean."""
    per: dict[str, float] = {}
    for c in classes:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == c and p != c)
        per[c] = prf(tp, fp, fn)["f1"]
    return {"macro_f1": round(sum(per.values()) / len(per), 4), "per_class_f1": per}


def read_chineseharm(path: Path, *, sample: int | None = None) -> list[tuple[str, str]]:
    """(text, our class name) pairs of ChineseHarm-Bench; `sample`: a seeded sample with the
    same number of rows from each class (evaluation on a busy machine)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [
        (str(row.get("文本", "")), HARM_CLASSES.get(str(row.get("标签", "")), "other"))
        for row in data
    ]
    if sample is None or sample >= len(rows):
        return rows
    by: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by.setdefault(r[1], []).append(r)
    out: list[tuple[str, str]] = []
    for name in sorted(by):
        group = by[name]
        random.Random(SAMPLE_SEED).shuffle(group)
        out += group[: max(1, sample // len(by))]
    return out


def eval_chineseharm(path: Path, screen: Screen, *, sample: int | None = None) -> dict[str, Any]:
    """ChineseHarm-Bench: flagged share per class, harmful flagged, benign false flags, and the
    paper's 6-class macro-F1 (our categories mapped onto its classes)."""
    rows = read_chineseharm(path, sample=sample)
    by_class: dict[str, Counter[str]] = {}
    gold: list[str] = []
    pred: list[str] = []
    for text, name in rows:
        v = screen(text)
        by_class.setdefault(name, Counter())[v.action] += 1
        gold.append(name)
        pred.append(harm_class(v))
    per_class: dict[str, Any] = {}
    for name, cnt in sorted(by_class.items()):
        total = sum(cnt.values())
        per_class[name] = {
            "rows": total,
            "flagged_rate": round((cnt["review"] + cnt["block"]) / total, 4),
            "blocked_rate": round(cnt["block"] / total, 4),
        }
    harmful = [by_class[c] for c in HARMFUL if c in by_class]
    n_harm = sum(sum(c.values()) for c in harmful)
    flagged = sum(c["review"] + c["block"] for c in harmful)
    benign = by_class.get("benign", Counter())
    n_benign = sum(benign.values())
    return {
        "rows": len(rows),
        "per_class": per_class,
        "harmful_flagged": round(flagged / n_harm, 4) if n_harm else 0.0,
        "benign_flagged": round((benign["review"] + benign["block"]) / n_benign, 4)
        if n_benign
        else 0.0,
        "six_class": macro_f1(gold, pred, (*HARMFUL, "benign")),
    }


def eval_team(items: list[Any], screen: Screen) -> dict[str, Any]:
    """The team corpus's held-out split: must-block recall, benign blocked / reviewed,
    injections held, and held/blocked shares per category."""
    must_block = blocked = held_block = 0
    review_items = review_held = 0
    benign = benign_blocked = benign_review = 0
    per_cat: dict[str, Counter[str]] = {}
    for it in items:
        v = screen(it.text)
        if it.label == "allow":
            benign += 1
            benign_blocked += v.action == "block"
            benign_review += v.action == "review"
            continue
        if it.label == "block":
            must_block += 1
            blocked += v.action == "block"
            held_block += v.action != "allow"
        else:
            review_items += 1
            review_held += v.action != "allow"
        for c in it.categories:
            cnt = per_cat.setdefault(c, Counter())
            cnt["rows"] += 1
            cnt["held"] += v.action != "allow"
            cnt["blocked"] += v.action == "block"
    return {
        "rows": len(items),
        "must_block_recall": round(blocked / must_block, 4) if must_block else 0.0,
        "must_block_held": round(held_block / must_block, 4) if must_block else 0.0,
        "review_items_held": round(review_held / review_items, 4) if review_items else 0.0,
        "benign_blocked_rate": round(benign_blocked / benign, 4) if benign else 0.0,
        "benign_review_rate": round(benign_review / benign, 4) if benign else 0.0,
        "injection_held": round(
            per_cat.get("prompt_injection", Counter())["held"]
            / max(1, per_cat.get("prompt_injection", Counter())["rows"]),
            4,
        ),
        "categories": {
            c: {
                "rows": cnt["rows"],
                "held": round(cnt["held"] / cnt["rows"], 4),
                "blocked": round(cnt["blocked"] / cnt["rows"], 4),
            }
            for c, cnt in sorted(per_cat.items())
        },
    }


def format_report(name: str, report: dict[str, Any]) -> str:
    """A compact human-readable report."""
    lines = [f"== {name} =="]
    for key, value in report.items():
        if key == "errors":
            continue
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            lines.append(f"{key}:")
            for sub, stats in value.items():
                lines.append(f"  {sub:<18} " + "  ".join(f"{k}={v}" for k, v in stats.items()))
        elif isinstance(value, dict):
            lines.append(f"{key}: " + "  ".join(f"{k}={v}" for k, v in value.items()))
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


def read_cold_texts(path: Path, *, sample: int | None = None) -> list[str]:
    """Just the texts of a COLD CSV (the same seeded sample as `eval_cold`)."""
    texts, _ = classifier.read_labelled(path)
    if sample is not None and sample < len(texts):
        order = list(range(len(texts)))
        random.Random(SAMPLE_SEED).shuffle(order)
        texts = [texts[i] for i in order[:sample]]
    return texts


def read_dev_texts(path: Path) -> list[str]:
    """Just the texts of a moderation_dev-style JSONL."""
    return [
        str(json.loads(line)["text"])
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def cached_screener(texts: list[str]) -> Any:
    """A copy of the configured screener whose sentence vectors for `texts` come from the
    on-disk vector cache (embedded in batches once), so evaluating thousands is affordable."""
    import dataclasses

    from yishi.core import embedding
    from yishi.core.config import get_settings
    from yishi.moderation import service
    from yishi.moderation.vectors import VectorCache, embed_input

    cache = VectorCache(get_settings().data_dir / "moderation" / "vectors")
    inputs = [embed_input(t) for t in texts]
    vecs = cache.get_many(inputs)
    lookup = dict(zip(inputs, vecs, strict=True))

    def embed(text: str) -> Any:
        hit = lookup.get(text)
        return hit if hit is not None else embedding.embed_message(text)

    return dataclasses.replace(service.get_screener(), embed=embed, stats=service.ScreenStats())
