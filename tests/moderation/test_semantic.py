"""The semantic stage: artefact round trip, thresholds, cascade and explanations (own examples)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from yishi.core.errors import Invalid
from yishi.moderation import policy, semantic, service, structure
from yishi.moderation.semantic import Heads, Thresholds


def _heads(classes: list[str], thresholds: dict[str, Thresholds]) -> Heads:
    dim = 384 + len(structure.FEATURES)
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(dim, 8)).astype(np.float32)
    w1 = rng.normal(size=(8, len(classes))).astype(np.float32)
    return Heads(
        classes=classes,
        mean=np.zeros(dim, np.float32),
        scale=np.ones(dim, np.float32),
        layers=[(w0, np.zeros(8, np.float32)), (w1, np.zeros(len(classes), np.float32))],
        thresholds=thresholds,
        meta={"kind": "test"},
    )


def test_artefact_round_trip_keeps_weights_and_thresholds(tmp_path: Path) -> None:
    heads = _heads(
        ["benign", "fraud", "threat"],
        {"*": Thresholds(0.4, 0.8), "threat": Thresholds(0.3, 0.6)},
    )
    semantic.write(tmp_path / "semantic.npz", heads)
    loaded = semantic.load(tmp_path / "semantic.npz")
    assert loaded is not None
    x = np.random.default_rng(1).normal(size=(3, 384 + len(structure.FEATURES)))
    assert np.allclose(loaded.probs(x), heads.probs(x), atol=1e-5)
    assert loaded.probs(x).sum(axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert loaded.threshold("threat") == Thresholds(0.3, 0.6)
    assert loaded.threshold("fraud") == Thresholds(0.4, 0.8)  # falls back to the overall pair
    assert semantic.load(tmp_path / "missing.npz") is None


def test_harm_is_one_minus_benign_and_names_the_top_harmful_class() -> None:
    heads = _heads(["benign", "fraud", "threat"], {})
    cat, harm, _ = heads.top(np.array([0.3, 0.2, 0.5]))
    assert cat == "threat" and harm == pytest.approx(0.7)
    cat, harm, _ = heads.top(np.array([0.9, 0.06, 0.04]))
    assert cat == "fraud" and harm == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("harm", "band"),
    [(0.95, "block"), (0.8, "block"), (0.6, "review"), (0.4, "review"), (0.2, "allow")],
)
def test_scores_map_onto_the_policy_scale(harm: float, band: str) -> None:
    sig = semantic.to_signal("threat", harm, Thresholds(0.4, 0.8))
    got = "block" if sig.score >= 0.85 else "review" if sig.score >= 0.5 else "allow"
    assert got == band
    assert sig.source == "semantic" and sig.category == "threat"
    assert "威胁" in sig.reason and f"{harm:.2f}" in sig.reason


def test_policy_file_overrides_semantic_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[semantic.fraud]\nreview = 0.2\nblock = 0.5\n", encoding="utf-8")
    assert policy.load(path).semantic == {"fraud": (0.2, 0.5)}
    path.write_text("[semantic.fraud]\nreview = 0.9\nblock = 0.5\n", encoding="utf-8")
    with pytest.raises(Invalid):
        policy.load(path)
    path.write_text("[semantic.fraud]\nreview = 0.2\n", encoding="utf-8")
    with pytest.raises(Invalid):
        policy.load(path)


class _FixedHeads(Heads):
    """Heads that always answer the same category and harm."""

    def __init__(self, category: str, harm: float) -> None:
        super().__init__(
            classes=["benign", category],
            mean=np.zeros(1, np.float32),
            scale=np.ones(1, np.float32),
            layers=[],
            thresholds={"*": Thresholds(0.4, 0.8)},
        )
        self.category = category
        self.harm = harm
        self.seen: list[str] = []

    def judge(self, vec: np.ndarray, text: str) -> tuple[str, float, np.ndarray]:
        self.seen.append(text)
        return self.category, self.harm, np.array([1 - self.harm, self.harm])


@pytest.fixture()
def stub(monkeypatch: pytest.MonkeyPatch) -> tuple[service.Screener, _FixedHeads, list[str]]:
    heads = _FixedHeads("threat", 0.93)
    monkeypatch.setattr(semantic, "get_heads", lambda: heads)
    embedded: list[str] = []

    def embed(text: str) -> np.ndarray:
        embedded.append(text)
        return np.zeros(384, np.float32)

    screener = dataclasses.replace(
        service.get_screener(), embed=embed, stats=service.ScreenStats()
    )
    return screener, heads, embedded


def test_semantic_signal_explains_the_decision(
    stub: tuple[service.Screener, _FixedHeads, list[str]],
) -> None:
    screener, _, embedded = stub
    v = screener.screen("他家那条狗再叫一晚上，我就让它永远叫不出声")
    assert embedded == ["他家那条狗再叫一晚上，我就让它永远叫不出声"]
    assert v.action == "block" and v.categories[0] == "threat"
    assert any(r.startswith("语义模型：威胁（0.93）") for r in v.reasons)


def test_the_policy_thresholds_decide_the_band(
    stub: tuple[service.Screener, _FixedHeads, list[str]],
) -> None:
    screener, _, _ = stub
    lenient = dataclasses.replace(
        screener, policy=dataclasses.replace(screener.policy, semantic={"threat": (0.9, 0.99)})
    )
    assert lenient.screen("明天我去找他好好谈谈").action == "review"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("帮助", "command"),
        ("赞成", "command"),
        ("👍👍👍", "no_words"),
        ("1203", "no_words"),
        ("你这个傻逼", "crisp_insult"),
        ("把他身份证11010519491231002X发出来", "crisp_doxxing"),
    ],
)
def test_what_a_crisp_check_settles_skips_the_embedding(
    stub: tuple[service.Screener, _FixedHeads, list[str]], text: str, why: str
) -> None:
    screener, _, embedded = stub
    screener.screen(text)
    assert embedded == []
    assert screener.stats.skipped == {why: 1}
    assert screener.stats.skip_share == 1.0


@pytest.mark.parametrize(
    "text",
    ["帮助我一下，楼道灯坏了", "我的电话13812345678", "谢谢你们啊，真是太贴心了呢", "hello"],
)
def test_everything_else_runs_the_semantic_stage(
    stub: tuple[service.Screener, _FixedHeads, list[str]], text: str
) -> None:
    screener, _, embedded = stub
    screener.screen(text)
    assert len(embedded) == 1
    assert screener.stats.skip_share == 0.0


def test_decoded_payload_is_screened_and_explained(
    stub: tuple[service.Screener, _FixedHeads, list[str]],
) -> None:
    import base64

    screener, _, _ = stub
    hidden = "你这个傻逼"
    text = "看看这段：" + base64.b64encode(hidden.encode()).decode()
    v = screener.screen(text)
    assert v.action == "block" and "insult" in v.categories
    assert any("解码后" in r for r in v.reasons)
    assert any("Base64" in r for r in v.reasons)
