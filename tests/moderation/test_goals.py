"""The issue's measured goals, on the shared evaluation sets (read from ../shared, never copied)."""

from __future__ import annotations

from pathlib import Path

from yishi.moderation import evaluate, service


def test_moderation_dev_goals(shared_dir: Path) -> None:
    report = evaluate.eval_dev(shared_dir / "eval" / "moderation_dev.jsonl", service.screen)
    assert report["actions"]["block"]["recall"] >= 0.95
    assert report["benign_blocked_rate"] <= 0.01
    assert report["benign_review_rate"] <= 0.05
    done, total = report["self_pii_redacted"].split("/")
    assert done == total


def test_cold_test_macro_f1_of_the_shipped_classifier(shared_dir: Path) -> None:
    report = evaluate.eval_cold(
        shared_dir / "eval" / "moderation" / "cold" / "test.csv", service.screen, pipeline=False
    )
    assert report["classifier"]["macro_f1"] >= 0.80


def test_policy_corpus_passes_as_bot_replies(shared_dir: Path) -> None:
    """Law text is what the bot quotes: it must never be withheld and rarely reviewed."""
    paragraphs = [
        line.strip()
        for f in sorted((shared_dir / "corpus" / "policy").glob("*.md"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if len(line.strip()) >= 10
    ]
    verdicts = [service.screen(p, context="reply") for p in paragraphs]
    assert len(paragraphs) > 1000
    assert sum(v.action == "block" for v in verdicts) == 0
    assert sum(v.action == "review" for v in verdicts) / len(paragraphs) <= 0.01
