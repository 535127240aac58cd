"""Offline evaluation of the screening pipeline on labelled sets (measuring only)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from yishi.moderation import classifier
from yishi.moderation.schemas import CATEGORIES, Verdict

Screen = Callable[[str], Verdict]


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


def eval_cold(path: Path, screen: Screen, *, pipeline: bool = True) -> dict[str, Any]:
    """COLD CSV: macro-F1 of the classifier alone and of the pipeline (flag = not allow)."""
    texts, labels = classifier.read_labelled(path)
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


def eval_chineseharm(
    path: Path, screen: Screen, classes: tuple[str, ...] = ("abuse", "ads")
) -> dict[str, Any]:
    """ChineseHarm-Bench: flag and block rate per class, and harmful-vs-benign P/R/F1."""
    data = json.loads(path.read_text(encoding="utf-8"))
    by_class: dict[str, Counter[str]] = {}
    for row in data:
        name = HARM_CLASSES.get(row.get("标签", ""), "other")
        if name not in (*classes, "benign"):
            continue
        v = screen(str(row.get("文本", "")))
        by_class.setdefault(name, Counter())[v.action] += 1
    report: dict[str, Any] = {}
    for name, cnt in by_class.items():
        total = sum(cnt.values())
        report[name] = {
            "rows": total,
            "flagged_rate": round((cnt["review"] + cnt["block"]) / total, 4),
            "blocked_rate": round(cnt["block"] / total, 4),
        }
    flagged = sum(report[c]["flagged_rate"] * report[c]["rows"] for c in classes if c in report)
    harmful = sum(report[c]["rows"] for c in classes if c in report)
    benign = by_class.get("benign", Counter())
    fp = benign["review"] + benign["block"]
    tp = round(flagged)
    report["harmful_vs_benign"] = prf(tp, fp, harmful - tp)
    return report


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


def read_cold_texts(path: Path) -> list[str]:
    """Just the texts of a COLD CSV (for benchmarks)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [row.get("TEXT", "") for row in csv.DictReader(fh)]
