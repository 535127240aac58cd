"""CLI: `yishi engine corpus`, `yishi engine train`, `yishi eval engine`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add the engine commands to the `yishi` app and its `eval` group."""
    engine_app = typer.Typer(help="离线引擎：语料与意图模型", no_args_is_help=True)
    app.add_typer(engine_app, name="engine")

    @engine_app.command("corpus")
    def corpus_cmd() -> None:
        """Rebuild corpus.jsonl from the hand-written seeds (deterministic)."""
        from yishi.bot import intent_corpus

        count = intent_corpus.write_corpus()
        typer.echo(f"已写入 {count} 条语料：{intent_corpus.CORPUS_PATH}")

    @engine_app.command("train")
    def train_cmd(
        cache: Annotated[Path | None, typer.Option(
            help="向量缓存（默认 数据目录/engine/message_vectors.npz）")] = None,
    ) -> None:
        """Retrain the intent, category and urgency heads (train split; dev for calibration)."""
        from yishi.bot import heads
        from yishi.core.config import get_settings

        path = cache or Path(get_settings().data_dir) / "engine" / "message_vectors.npz"
        report = heads.train(cache=path)
        for name, info in report["heads"].items():
            typer.echo(f"{name}: dev accuracy {info['dev_accuracy']:.3f} "
                       f"(C={info['C']}, T={info['temperature']})")
        typer.echo(f"intent threshold {report['intent_threshold']} "
                   f"(dev kept {report['dev_accepted']:.1%}); written {heads.HEADS_PATH}")

    @eval_app.command("engine")
    def eval_engine_cmd(
        split: Annotated[str, typer.Option(help="test（留出）、dev 或 train")] = "test",
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
        misses: Annotated[bool, typer.Option(help="列出错例")] = False,
        cache: Annotated[Path | None, typer.Option(
            help="向量缓存（默认 数据目录/engine/message_vectors.npz）")] = None,
    ) -> None:
        """Intent, report-recorded, category, place, status and chit-chat figures on a split."""
        from yishi.bot.evaluation import evaluate
        from yishi.core.config import get_settings

        if split not in ("test", "dev", "train"):
            typer.echo("split 只能是 test、dev 或 train", err=True)
            raise typer.Exit(2)
        path = cache or Path(get_settings().data_dir) / "engine" / "message_vectors.npz"
        figures = evaluate(split, cache=path)
        if as_json:
            typer.echo(json.dumps(figures.as_dict(), ensure_ascii=False, indent=2))
        else:
            typer.echo(f"engine on the {split} split ({figures.messages} messages)")
            for name, (hits, total) in figures.counts.items():
                typer.echo(f"  {name:<22} {figures.rate(name):.3f}  ({hits}/{total})")
        if misses:
            for line in figures.misses:
                typer.echo(f"  miss: {line}")
