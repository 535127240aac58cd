"""The decision: per-category thresholds and actions (configurable per community) turn detector
signals into allow / review / block."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yishi.core.errors import Invalid
from yishi.moderation.lexicon import Entry
from yishi.moderation.schemas import CATEGORIES, Action, Signal

_RANK: dict[str, int] = {"allow": 0, "review": 1, "block": 2}


@dataclass(frozen=True)
class CategoryRule:
    """When a category's score reaches `review` or `block`, and the strongest action allowed."""

    review: float = 0.5
    block: float = 0.85
    max_action: Action = "block"


DEFAULT_RULES: dict[str, CategoryRule] = {
    **{c: CategoryRule() for c in CATEGORIES},
    # A resident's own data is allowed (and redacted), never held.
    "self_pii": CategoryRule(review=2.0, block=2.0, max_action="allow"),
}


@dataclass(frozen=True)
class Policy:
    """One community's moderation policy."""

    rules: dict[str, CategoryRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    # Char n-gram classifier probability bands: at or above `clf_review` the message is
    # reviewed, at or above `clf_block` blocked. None: the bands calibrated at training time.
    clf_review: float | None = None
    clf_block: float | None = None
    # Semantic-head harm thresholds per category, (review, block); categories not listed use
    # the thresholds calibrated at training time.
    semantic: dict[str, tuple[float, float]] = field(default_factory=dict)
    allow_terms: tuple[str, ...] = ()
    extra_terms: tuple[Entry, ...] = ()
    # Where an LLM judge (if configured) is asked: scores within [review, block) by default.
    judge_band: tuple[float, float] = (0.5, 0.85)
    # Strikes count only confirmed violations: a moderator's rejection, or an automatic block
    # whose score reaches `auto_strike_score` in a category not listed in `no_strike_categories`
    # (a resident who trips the injection check or shares their own number has hurt no one).
    # The n-th strike within `strike_window_days` brings `mute_ladder_hours[n-1]` hours of mute
    # (the last step repeats); 0 means a warning only.
    strike_window_days: float = 30.0
    auto_strike_score: float = 0.95
    no_strike_categories: tuple[str, ...] = ("prompt_injection", "self_pii")
    mute_ladder_hours: tuple[float, ...] = (0.0, 1.0, 24.0, 168.0)
    # Older settings, still read: `strikes_for_mute` strikes mute for `mute_hours`, doubling
    # with each further strike up to `mute_max_hours` (used to build the ladder when no ladder
    # is given).
    strikes_for_mute: int = 2
    mute_hours: float = 1.0
    mute_max_hours: float = 168.0

    def mute_hours_for(self, strike_number: int) -> float:
        """Hours of mute that the `strike_number`-th strike in the window brings (0: warning)."""
        if strike_number <= 0 or not self.mute_ladder_hours:
            return 0.0
        return self.mute_ladder_hours[min(strike_number, len(self.mute_ladder_hours)) - 1]

    def rule(self, category: str) -> CategoryRule:
        """The rule for a category (unknown categories get the defaults)."""
        return self.rules.get(category, CategoryRule())

    def decide(self, signals: list[Signal]) -> tuple[Action, list[str], float]:
        """The action, the categories that count and the overall score for a set of signals."""
        best: dict[str, float] = {}
        strong_hits: dict[str, set[tuple[int, int]]] = {}
        for s in signals:
            if s.score > best.get(s.category, 0.0):
                best[s.category] = s.score
            if s.score >= 0.5 and s.end > s.start and s.category in _CUMULATIVE:
                strong_hits.setdefault(s.category, set()).add((s.start, s.end))
        for cat, spans in strong_hits.items():
            # Several separate abusive phrases in one message weigh more than one.
            distinct = len(_disjoint(spans))
            if distinct >= 2:
                best[cat] = min(0.95, max(best[cat], best[cat] + 0.15 * (distinct - 1)))
        action: Action = "allow"
        cats: list[str] = []
        score = 0.0
        for cat, value in sorted(best.items(), key=lambda kv: -kv[1]):
            rule = self.rule(cat)
            cat_action: Action = "allow"
            if value >= rule.block:
                cat_action = "block"
            elif value >= rule.review:
                cat_action = "review"
            if _RANK[cat_action] > _RANK[rule.max_action]:
                cat_action = rule.max_action
            if cat == "self_pii":
                cats.append(cat)
                continue
            if cat_action != "allow":
                cats.append(cat)
                score = max(score, value)
            if _RANK[cat_action] > _RANK[action]:
                action = cat_action
        if action == "allow":
            score = max((v for c, v in best.items() if c != "self_pii"), default=0.0)
        return action, cats, round(min(score, 1.0), 4)


# Organising a gathering legitimately takes several phrases, so incitement does not add up.
_CUMULATIVE = {"insult", "harassment", "threat", "hate", "sexual"}


def _disjoint(spans: set[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a < out[-1][1]:
            continue
        out.append((a, b))
    return out


def load(path: Path | None) -> Policy:
    """A policy from a TOML or JSON file (None: the defaults).

    Format: `[categories.<name>] review = 0.5, block = 0.85, max_action = "review"`,
    `[semantic.<name>] review = 0.4, block = 0.8` (harm thresholds of the semantic heads),
    top-level `clf_review`, `clf_block`, `allow_terms = [...]`,
    `extra_terms = [{term, category, weight, flags}]`, `strike_window_days`, `auto_strike_score`,
    `no_strike_categories`, `mute_ladder_hours = [0, 1, 24, 168]` (or the older
    `strikes_for_mute`, `mute_hours`, `mute_max_hours`).
    """
    if path is None:
        return Policy()
    p = Path(path)
    if not p.is_file():
        raise Invalid(f"找不到审核策略文件：{p}", hint="检查 YISHI_MODERATION_POLICY_PATH")
    try:
        raw: dict[str, Any] = (
            tomllib.loads(p.read_text(encoding="utf-8"))
            if p.suffix.lower() == ".toml"
            else json.loads(p.read_text(encoding="utf-8"))
        )
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise Invalid(f"审核策略文件格式错误：{exc}", hint="用 TOML 或 JSON 书写") from exc
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> Policy:
    """A policy from a parsed mapping (see `load`)."""
    rules = dict(DEFAULT_RULES)
    for cat, conf in (raw.get("categories") or {}).items():
        base = rules.get(cat, CategoryRule())
        action = conf.get("max_action", base.max_action)
        if action not in _RANK:
            raise Invalid(f"未知的处理方式：{action}", hint="只能是 allow、review 或 block")
        rules[cat] = CategoryRule(
            review=float(conf.get("review", base.review)),
            block=float(conf.get("block", base.block)),
            max_action=action,
        )
    defaults = Policy()
    semantic: dict[str, tuple[float, float]] = {}
    for cat, conf in (raw.get("semantic") or {}).items():
        try:
            review, block = float(conf["review"]), float(conf["block"])
        except (KeyError, TypeError, ValueError) as exc:
            raise Invalid(
                f"语义阈值 {cat} 需要 review 和 block 两个数值",
                hint="例如 review = 0.4, block = 0.8",
            ) from exc
        if not 0.0 <= review <= block <= 1.0:
            raise Invalid(f"语义阈值 {cat} 需满足 0 ≤ review ≤ block ≤ 1")
        semantic[cat] = (review, block)
    extra = tuple(
        Entry(
            str(e["term"]), str(e["category"]), float(e.get("weight", 0.9)), str(e.get("flags", ""))
        )
        for e in raw.get("extra_terms", [])
    )
    ladder = _ladder(raw, defaults)
    return Policy(
        rules=rules,
        clf_review=_opt_float(raw.get("clf_review")),
        clf_block=_opt_float(raw.get("clf_block")),
        semantic=semantic,
        allow_terms=tuple(str(t) for t in raw.get("allow_terms", [])),
        extra_terms=extra,
        strikes_for_mute=int(raw.get("strikes_for_mute", defaults.strikes_for_mute)),
        strike_window_days=float(raw.get("strike_window_days", defaults.strike_window_days)),
        auto_strike_score=float(raw.get("auto_strike_score", defaults.auto_strike_score)),
        no_strike_categories=tuple(
            str(c) for c in raw.get("no_strike_categories", defaults.no_strike_categories)
        ),
        mute_ladder_hours=ladder,
        mute_hours=float(raw.get("mute_hours", defaults.mute_hours)),
        mute_max_hours=float(raw.get("mute_max_hours", defaults.mute_max_hours)),
    )


def _ladder(raw: dict[str, Any], defaults: Policy) -> tuple[float, ...]:
    """The mute ladder from `mute_ladder_hours`, or built from the older three settings."""
    if "mute_ladder_hours" in raw:
        steps = tuple(float(h) for h in raw["mute_ladder_hours"])
        if not steps or any(h < 0 for h in steps):
            raise Invalid("mute_ladder_hours 需是非负小时数的列表", hint="例如 [0, 1, 24, 168]")
        return steps
    if not any(k in raw for k in ("strikes_for_mute", "mute_hours", "mute_max_hours")):
        return defaults.mute_ladder_hours
    n = max(1, int(raw.get("strikes_for_mute", defaults.strikes_for_mute)))
    base = float(raw.get("mute_hours", defaults.mute_hours))
    top = max(base, float(raw.get("mute_max_hours", defaults.mute_max_hours)))
    steps_list = [0.0] * (n - 1)
    hours = base
    while hours < top:
        steps_list.append(hours)
        hours *= 2
    steps_list.append(top)
    return tuple(steps_list)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
