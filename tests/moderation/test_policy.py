"""Per-community policy (thresholds, actions, allow-list, extra terms) and weak lexicons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session

from yishi.core.config import Settings
from yishi.core.errors import Invalid
from yishi.moderation import policy, service
from yishi.moderation.schemas import Signal


def test_default_decision_bands() -> None:
    pol = policy.Policy()
    assert pol.decide([Signal(category="insult", score=0.9)])[0] == "block"
    assert pol.decide([Signal(category="insult", score=0.6)])[0] == "review"
    assert pol.decide([Signal(category="insult", score=0.3)])[0] == "allow"
    action, cats, _ = pol.decide([Signal(category="self_pii", score=0.9)])
    assert action == "allow" and cats == ["self_pii"]


def test_separate_abusive_phrases_add_up_but_gatherings_do_not() -> None:
    pol = policy.Policy()
    two = [
        Signal(category="insult", score=0.7, start=0, end=2),
        Signal(category="insult", score=0.7, start=5, end=8),
    ]
    assert pol.decide(two)[0] == "block"
    same = [
        Signal(category="insult", score=0.7, start=0, end=2),
        Signal(category="insult", score=0.7, start=0, end=2),
    ]
    assert pol.decide(same)[0] == "review"
    gather = [
        Signal(category="incitement", score=0.6, start=0, end=4),
        Signal(category="incitement", score=0.6, start=6, end=9),
    ]
    assert pol.decide(gather)[0] == "review"


def test_policy_file_changes_thresholds_actions_and_words(
    yishi_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        """
extra_terms = [{term = "臭鸡蛋", category = "insult", weight = 0.9}]

[categories.insult]
max_action = "review"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("YISHI_MODERATION_POLICY_PATH", str(path))
    from yishi.core.config import get_settings

    get_settings.cache_clear()
    service.reset()
    v = service.screen("你就是个臭鸡蛋")
    assert v.action == "review" and "insult" in v.categories  # insult capped at review here
    assert service.screen("你就是个傻逼").action == "review"


def test_bad_policy_file_is_a_friendly_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"categories": {"insult": {"max_action": "delete"}}}))
    with pytest.raises(Invalid):
        policy.load(bad)
    with pytest.raises(Invalid):
        policy.load(tmp_path / "missing.toml")


def test_external_lexicons_are_weak_signals_only(
    yishi_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lex = tmp_path / "lists"
    lex.mkdir()
    (lex / "broad.txt").write_text("维权\n业委会\n拆迁\n", encoding="utf-8")
    monkeypatch.setenv("YISHI_MODERATION_LEXICON_PATHS", json.dumps([str(lex)]))
    from yishi.core.config import get_settings

    get_settings.cache_clear()
    service.reset()
    v = service.screen("业委会组织业主依法维权，讨论拆迁补偿")
    assert v.action == "allow"
    assert any("外部词表" in r for r in v.reasons)


def test_shared_broad_lexicons_do_not_block_governance_talk(
    yishi_env: Settings, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(shared_dir / "eval" / "moderation" / "lexicons" / "konsheng")]
    monkeypatch.setenv("YISHI_MODERATION_LEXICON_PATHS", json.dumps(paths))
    from yishi.core.config import get_settings

    get_settings.cache_clear()
    service.reset()
    for text in ("我们要维权，找业委会和政府讨说法", "小区集会前要去街道报备", "听说要拆迁了"):
        assert service.screen(text).action == "allow", text


def test_policy_file_sets_strikes_and_mute_length(
    yishi_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"strikes_for_mute": 1, "mute_hours": 2}), encoding="utf-8")
    monkeypatch.setenv("YISHI_MODERATION_POLICY_PATH", str(path))
    from yishi.core.config import get_settings

    get_settings.cache_clear()
    service.reset()
    v = service.screen("你就是个傻逼")
    service.hold(session=session, text="你就是个傻逼", verdict=v, sender_id="u:1", source="message")
    mutes = service.get_mutes(session=session)
    assert [m.sender_id for m in mutes] == ["u:1"]
    assert (mutes[0].until - mutes[0].created_at).total_seconds() == 2 * 3600
