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
