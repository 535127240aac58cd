"""The offline engine on the team's scenario set: intent accuracy and field-extraction accuracy,
with real SQLite and the real deliberation service; knowledge behind a small in-test fake."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.bot.scenarios.support import load_scenarios, run_scenarios
from yishi.core.config import Settings

# The thresholds. The rules were written first. On its first run the main set (45 conversations)
# scored 0.96 intent / 0.94 fields / 0.93 actions and one round of fixes followed; the 15 held-out
# conversations, written after that, scored 16/17 intents, 12/14 fields, 14/15 actions untuned.
# 0.90 sits below all of those: room for ~8 of 84 turns to slip after a rule change, while a
# regression that breaks one intent family (usually 8+ turns) fails.
# Since issue 10 intent, category and urgency come from heads trained on the team's own corpus,
# which never saw these conversations (the rules had been fixed against them). First run of the
# heads: intents 81/84, fields 52/61 (misses: 6 urgency, 4 category), actions 70/70. Fields sit at
# 0.80: the urgency head is the weakest part (see README), and a broken place extractor or
# category head (one family of fields, 10+ of 61) still fails.
INTENT_THRESHOLD = 0.90
FIELD_THRESHOLD = 0.80
ACTION_THRESHOLD = 0.90


@pytest.fixture
def settings(yishi_env: Settings) -> Iterator[Settings]:
    yield yishi_env


def test_scenario_set_is_large_and_covers_every_intent_and_style() -> None:
    convos = load_scenarios()
    assert len(convos) >= 40
    intents = {t["intent"] for c in convos for t in c["turns"]}
    assert intents == {"question", "report", "status", "discussion", "vote", "command", "chat"}
    assert {c["style"] for c in convos} >= {"voice", "typo", "dialect", "elderly", "plain"}
    assert sum(len(c["turns"]) > 1 for c in convos) >= 15


def test_offline_engine_meets_accuracy_thresholds_on_scenarios(
    settings: Settings, knowledge: ModuleType
) -> None:
    score = run_scenarios(settings, "memory")
    report = "\n".join(score.failures)
    assert score.intent_accuracy >= INTENT_THRESHOLD, report
    assert score.field_accuracy >= FIELD_THRESHOLD, report
    assert score.action_accuracy >= ACTION_THRESHOLD, report
    assert not [f for f in score.failures if "empty reply" in f]
