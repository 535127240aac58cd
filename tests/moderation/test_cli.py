"""CLI commands: screen (single and batch), train, eval."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from yishi.core.config import Settings
from yishi.moderation import classifier, semantic
from yishi.moderation.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    eval_app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    register(app, eval_app)
    return app


runner = CliRunner()


def test_screen_single_json() -> None:
    result = runner.invoke(_app(), ["screen", "你就是个傻逼", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["action"] == "block" and out["spans"][0]["text"] == "傻逼"


def test_screen_batch_writes_one_line_per_input(tmp_path: Path) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        "\n".join(
            json.dumps(r, ensure_ascii=False)
            for r in [{"id": "a", "text": "今天停水吗"}, {"id": "b", "text": "我的电话13812345678"}]
        )
        + "\nnot json\n",
        encoding="utf-8",
    )
    result = runner.invoke(_app(), ["screen", "--batch", str(batch), "--json"])
    assert result.exit_code == 0
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert [x["id"] for x in lines] == ["a", "b"]
    assert set(lines[0]) == {"id", "action", "categories", "score", "spans", "redacted"}
    assert lines[1]["redacted"] == "我的电话138****5678"


def _tiny_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir()
    harmful = [
        "你再敢乱停车，我就把你车胎扎了",
        "晚上走路小心点，我知道你住哪栋",
        "谁再投反对票我就去他家门口堵他",
        "等着吧，迟早让你在这个小区待不下去",
        "信不信我找几个人收拾你全家",
        "下次见面我一定让你好看",
    ]
    benign = [
        "请问周六的业主大会在几点开始",
        "楼道灯坏了，麻烦物业来修一下",
        "谁家的快递放错到我门口了",
        "明天上午小区停水，大家提前接点水",
        "电梯维保的师傅今天来过了吗",
        "二手婴儿床便宜出，自提",
    ]
    rows = []
    for i, text in enumerate(harmful):
        split = "dev" if i % 3 == 0 else "train"
        rows.append({"id": f"h{i}", "text": text, "label": "block", "categories": ["threat"],
                     "family": f"t{i}", "split": split})
    for i, text in enumerate(benign):
        split = "dev" if i % 3 == 0 else "train"
        rows.append({"id": f"b{i}", "text": text, "label": "allow", "categories": ["none"],
                     "family": f"b{i}", "split": split})
    (corpus / "tiny.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8"
    )
    return corpus


def test_train_rebuilds_both_artefacts_from_a_corpus_directory(
    yishi_env: Settings, tmp_path: Path
) -> None:
    corpus = _tiny_corpus(tmp_path)
    out = tmp_path / "out"
    args = ["moderation", "train", "--corpus", str(corpus), "--no-cold", "--out-dir", str(out)]
    result = runner.invoke(_app(), [*args, "--models", "lr"])
    assert result.exit_code == 0, result.output
    heads = semantic.load(out / "semantic.npz")
    assert heads is not None and set(heads.classes) == {"benign", "threat"}
    assert set(heads.thresholds) >= {"*", "threat", "fraud"}
    for t in heads.thresholds.values():
        assert 0.0 <= t.review <= t.block <= 1.0
    meta = json.loads((out / "semantic.json").read_text(encoding="utf-8"))
    assert meta["trained_on"]["team_corpus_train"] == 8
    assert meta["calibrated_on"].startswith("team corpus dev split (4")
    model = classifier.load(out / "classifier.npz")
    assert model is not None
    # The vectors are cached: a second run embeds nothing new and gives the same heads.
    cached = len(list((yishi_env.data_dir / "moderation" / "vectors").glob("*.npz")))
    assert cached >= 1
    again = runner.invoke(_app(), [*args, "--models", "lr"])
    assert again.exit_code == 0, again.output
    assert len(list((yishi_env.data_dir / "moderation" / "vectors").glob("*.npz"))) == cached
    assert "嵌入" not in again.output


def test_train_refuses_a_corpus_without_splits(yishi_env: Settings, tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "bad.jsonl").write_text(
        json.dumps({"text": "你好", "label": "maybe", "split": "train"}), encoding="utf-8"
    )
    result = runner.invoke(_app(), ["moderation", "train", "--corpus", str(corpus), "--no-cold"])
    assert result.exit_code == 2
    assert "label" in result.output


def test_eval_reports_per_action_and_category(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    rows = [
        {"id": "1", "text": "今天停水吗", "label": "allow", "categories": ["none"]},
        {"id": "2", "text": "你就是个傻逼", "label": "block", "categories": ["insult"]},
        {"id": "3", "text": "我的电话13812345678", "label": "allow", "categories": ["self_pii"]},
    ]
    dev.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    missing = tmp_path / "missing"
    result = runner.invoke(
        _app(),
        [
            "eval",
            "moderation",
            "--set",
            "dev,cold,harm",
            "--dev",
            str(dev),
            "--cold",
            str(missing),
            "--harm",
            str(missing),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["moderation_dev"]
    assert report["actions"]["block"]["recall"] == 1.0
    assert report["benign_blocked_rate"] == 0.0
    assert report["self_pii_redacted"] == "1/1"
