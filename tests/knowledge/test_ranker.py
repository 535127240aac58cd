"""The learned ranker and the calibrated relevance gate: the numpy training, the shipped model,
ranking on held-out pairs against the hybrid baseline, 'not found' for off-topic questions, and
the train-ranker / eval relevance commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tests.knowledge.conftest import make_settings, policy_file
from yishi.core.config import Settings, get_settings
from yishi.core.db import dispose_engines
from yishi.knowledge import cli as knowledge_cli
from yishi.knowledge import ranker, training
from yishi.knowledge import service as knowledge_service

# Small laws whose articles many of the team's pairs point to (keeps embedding time low).
RANKER_FILES = (
    "城市居民委员会组织法(2018-12-29).md",
    "北京市实施《城市居民委员会组织法》办法.md",
    "上海市居民委员会工作条例(2020-05-14).md",
    "北京市养犬管理规定.md",
    "上海市养犬管理条例.md",
    "志愿服务条例(2017-08-22).md",
)


@pytest.fixture(scope="module")
def laws_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An index of the six small laws, without the community samples."""
    settings = make_settings(tmp_path_factory.mktemp("kb-ranker"))
    knowledge_service.ensure_ready(settings)
    report = knowledge_service.ingest_paths(
        paths=[policy_file(n) for n in RANKER_FILES], settings=settings
    )
    assert not report.errors, report.errors
    yield settings
    dispose_engines()


@pytest.fixture()
def cli_app(fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    """The knowledge commands on a Typer app of their own, with an empty data dir."""
    monkeypatch.setenv("YISHI_DATA_DIR", str(fresh_settings.data_dir))
    monkeypatch.setenv("YISHI_LOAD_SAMPLE_KNOWLEDGE", "false")
    get_settings.cache_clear()
    app, eval_app = typer.Typer(), typer.Typer()
    app.add_typer(eval_app, name="eval")
    knowledge_cli.register(app, eval_app)
    yield app
    get_settings.cache_clear()


def pairs_in(files: tuple[str, ...], split: str | None) -> list[dict[str, object]]:
    """The shipped pairs whose every gold article is in these files."""
    items = training.read_items(training.PAIRS_PATH, split=split)
    return [i for i in items if all(g["file"] in files for g in i["gold"])]  # type: ignore[index]


# ---------------------------------------------------------------- numpy training
def test_pairwise_fit_learns_which_feature_marks_the_gold() -> None:
    rng = np.random.default_rng(7)
    groups = []
    for _ in range(40):
        x = rng.normal(size=(12, 3))
        y = np.zeros(12)
        gold = int(rng.integers(12))
        x[gold, 1] += 3.0  # feature 1 carries the signal; 0 and 2 are noise
        y[gold] = 1.0
        groups.append((x, y))
    mean, scale, weights = ranker.fit_pairwise(groups, l2=1.0)
    assert weights[1] > 5 * max(abs(weights[0]), abs(weights[2]))
    model = ranker.RankerModel(mean, scale, weights)
    top = [int(np.argmax(model.score(x))) for x, _ in groups]
    assert sum(t == int(np.argmax(y)) for t, (_, y) in zip(top, groups, strict=True)) >= 30


def test_platt_calibration_matches_observed_rates() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=4000)
    truth = 1 / (1 + np.exp(-(2.0 * scores - 0.5)))
    labels = (rng.random(4000) < truth).astype(float)
    a, b = ranker.fit_platt(scores, labels)
    assert a == pytest.approx(2.0, abs=0.3) and b == pytest.approx(-0.5, abs=0.2)


def test_model_round_trips_through_npz_and_refuses_other_features(tmp_path: Path) -> None:
    model = ranker.RankerModel(
        np.zeros(len(ranker.FEATURES)), np.ones(len(ranker.FEATURES)),
        np.arange(len(ranker.FEATURES), dtype=float), platt_a=1.5, platt_b=-0.2,
    )
    path = tmp_path / "m.npz"
    model.save(path)
    back = ranker.RankerModel.load(path)
    x = np.ones((2, len(ranker.FEATURES)))
    assert np.allclose(back.score(x), model.score(x))
    assert (back.platt_a, back.platt_b) == (1.5, -0.2)
    with np.load(path) as data:
        arrays = dict(data)
    arrays["features"] = np.array(["only_one"])
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="different feature list"):
        ranker.RankerModel.load(path)


def test_shipped_model_loads_and_its_provenance_reports_held_out_figures() -> None:
    model = ranker.get_model()
    assert model is not None and model.weights.shape == (len(ranker.FEATURES),)
    info = ranker.provenance()
    assert info["pairs"]["sha256_16"] == training._fingerprint(training.PAIRS_PATH)
    test = info["report"]["test"]
    assert test["n"] >= 150
    assert test["ranked"]["mrr"] > test["hybrid"]["mrr"]


# ---------------------------------------------------------------- ranking on held-out pairs
def test_ranker_beats_the_hybrid_on_held_out_pairs(laws_settings: Settings) -> None:
    items = pairs_in(RANKER_FILES, "test")
    assert len(items) >= 30
    groups = training.collect(items, settings=laws_settings)
    golds = [len(training.gold_of(i)) for i in items]
    hybrid = training.ranking_figures(groups, golds, None)
    model = ranker.get_model()
    assert model is not None
    ranked = training.ranking_figures(groups, golds, model.score)
    assert ranked["mrr"] >= hybrid["mrr"] + 0.03
    assert ranked["recall@5"] >= 0.85
    # search() itself returns the ranker's order, each hit with a calibrated relevance.
    hits = knowledge_service.search(str(items[0]["question"]), k=5, settings=laws_settings)
    assert all(h.relevance is not None and 0.0 <= h.relevance <= 1.0 for h in hits)


# ---------------------------------------------------------------- relevance gate
@pytest.mark.parametrize(
    "question", ["周末带孩子去哪玩", "红烧肉怎么做好吃", "我的手机充不进电", "推荐几本小说"]
)
def test_off_topic_questions_are_not_answered(laws_settings: Settings, question: str) -> None:
    result = knowledge_service.answer(question, settings=laws_settings)
    assert not result.answered and not result.confident
    assert result.citations == []
    assert result.relevance < ranker.get_model().threshold  # type: ignore[union-attr]
    assert "没有找到" in result.text and "转人工" in result.text


def test_a_question_the_laws_answer_is_answered_with_the_governing_article(
    laws_settings: Settings,
) -> None:
    result = knowledge_service.answer("北京遛狗的时候狗拉了屎要不要清理", settings=laws_settings)
    assert result.answered and result.confident
    assert result.relevance >= ranker.get_model().threshold  # type: ignore[union-attr]
    assert result.citations[0].source == "北京市养犬管理规定.md"
    assert result.citations[0].article in {"第十七条", "第三十条"}


# ---------------------------------------------------------------- commands
def test_cli_train_ranker_dry_run_and_eval_relevance(
    cli_app: typer.Typer, tmp_path: Path
) -> None:
    files = RANKER_FILES[:2]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in files:
        (corpus / name).write_bytes(policy_file(name).read_bytes())
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "\n".join(json.dumps(i, ensure_ascii=False) for i in pairs_in(files, None)), "utf-8"
    )
    oos = tmp_path / "oos.jsonl"
    oos.write_text(training.OUT_OF_SCOPE_PATH.read_text("utf-8"), "utf-8")
    shipped = ranker.MODEL_PATH.read_bytes()
    runner = CliRunner()
    r = runner.invoke(cli_app, ["train-ranker", "--corpus", str(corpus), "--pairs", str(pairs),
                                "--out-of-scope", str(oos), "--dry-run"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout[r.stdout.index("{"):])
    assert report["train"]["n"] > 0 and report["test"]["n"] > 0
    assert set(report["test"]["ranked"]) >= {"recall@5", "mrr", "recall_all@5"}
    assert ranker.MODEL_PATH.read_bytes() == shipped  # --dry-run wrote nothing
    r = runner.invoke(cli_app, ["eval", "relevance", "--corpus", str(corpus), "--data",
                                str(pairs), "--out-of-scope", str(oos), "--json"])
    assert r.exit_code == 0, r.output
    fig = json.loads(r.stdout.strip().splitlines()[-1])
    assert fig["out_of_scope"] == 13 and fig["in_scope"] > 0
    assert 0.0 <= fig["answered_precision"] <= 1.0
    assert fig["out_of_scope_answered"] <= 0.25


def test_cli_train_ranker_refuses_pairs_with_nothing_to_learn(
    cli_app: typer.Typer, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    name = RANKER_FILES[0]
    (corpus / name).write_bytes(policy_file(name).read_bytes())
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "a", "question": "居委会几个人", "split": "train",
                                 "gold": [{"file": "别的文件.md", "article": "第一条"}]},
                                ensure_ascii=False), "utf-8")
    r = CliRunner().invoke(cli_app, ["train-ranker", "--corpus", str(corpus), "--pairs",
                                     str(pairs), "--dry-run"])
    assert r.exit_code == 1
    assert "没有能用来学习排序的问题" in r.output
