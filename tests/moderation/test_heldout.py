"""Held-out behaviour: messages from the team corpus's test split (never used to fit or tune),
screened by the shipped models. Floors are the issue's, measured, not tuned."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from yishi.moderation import service, training
from yishi.moderation.training import Item

PER_CATEGORY = 8
BENIGN = 60


@pytest.fixture(scope="module")
def sample() -> list[Item]:
    items = [it for it in training.read_corpus([training.DEFAULT_CORPUS]) if it.split == "test"]
    rng = random.Random(5)
    rng.shuffle(items)
    taken: Counter[str] = Counter()
    out: list[Item] = []
    for it in items:
        key = it.target
        if taken[key] < (BENIGN if key == "benign" else PER_CATEGORY):
            taken[key] += 1
            out.append(it)
    return out


def test_the_sample_covers_every_category(sample: list[Item]) -> None:
    targets = {it.target for it in sample}
    assert {"benign", "threat", "fraud", "prompt_injection", "sexual", "doxxing"} <= targets


def test_must_block_messages_are_mostly_blocked(sample: list[Item]) -> None:
    """A regression floor under what the shipped models measure (0.62 blocked on this sample)."""
    must = [it for it in sample if it.label == "block"]
    actions = [service.screen(it.text).action for it in must]
    assert actions.count("block") / len(must) >= 0.55, actions
    assert (len(actions) - actions.count("allow")) / len(must) >= 0.7, actions


@pytest.mark.xfail(strict=True, reason="issue 9's floor is not reached yet (README: figures)")
def test_must_block_messages_are_blocked_at_the_issue_floor(sample: list[Item]) -> None:
    must = [it for it in sample if it.label == "block"]
    blocked = [it for it in must if service.screen(it.text).action == "block"]
    assert len(blocked) / len(must) >= 0.85


def test_harmful_messages_are_held_and_name_a_reason(sample: list[Item]) -> None:
    harmful = [it for it in sample if it.label != "allow"]
    verdicts = [service.screen(it.text) for it in harmful]
    held = [v for v in verdicts if v.action != "allow"]
    assert len(held) / len(harmful) >= 0.7  # measured 0.78 on this sample
    assert all(v.reasons and v.categories for v in held)


def test_benign_messages_pass(sample: list[Item]) -> None:
    benign = [it for it in sample if it.label == "allow"]
    actions = Counter(service.screen(it.text).action for it in benign)
    assert actions["block"] / len(benign) <= 0.03, actions
    assert (actions["block"] + actions["review"]) / len(benign) <= 0.1, actions
