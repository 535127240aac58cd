"""CLI commands: screen (single and batch), train, eval."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from yishi.moderation import classifier
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


def test_train_writes_a_loadable_artifact(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    rows = [{"text": f"你这个蠢货第{i}次乱停车", "label": 1} for i in range(20)]
    rows += [{"text": f"请大家第{i}次注意停车秩序", "label": 0} for i in range(20)]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out = tmp_path / "model.npz"
    result = runner.invoke(
        _app(), ["moderation", "train", "--data", str(data), "--out", str(out), "--no-community"]
    )
    assert result.exit_code == 0, result.output
    model = classifier.load(out)
    assert model is not None
    assert model.prob("你这个蠢货") > 0.5 > model.prob("请大家注意秩序")
    assert json.loads(out.with_suffix(".json").read_text())["rows"] == 40


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
