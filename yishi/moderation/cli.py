"""CLI: `yishi screen`, `yishi moderation train`, `yishi eval moderation`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

SHARED = Path("..") / "shared"


def _shared_default(*parts: str) -> Path:
    import os

    base = Path(os.environ["YISHI_SHARED_DIR"]) if os.environ.get("YISHI_SHARED_DIR") else SHARED
    return base.joinpath(*parts)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add the moderation commands to the `yishi` app and its `eval` group."""
    moderation_app = typer.Typer(help="审核：训练分类器等", no_args_is_help=True)
    app.add_typer(moderation_app, name="moderation")
    app.add_typer(audit_app, name="audit")

    @app.command("screen")
    def screen_cmd(
        text: Annotated[str | None, typer.Argument(help="要审核的文本")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
        batch: Annotated[
            Path | None, typer.Option("--batch", help="JSONL 文件，每行含 id 和 text")
        ] = None,
        context: Annotated[str, typer.Option(help="message 或 reply")] = "message",
    ) -> None:
        """Screen one text, or a JSONL batch (one result line per input line)."""
        from yishi.core import jsonl
        from yishi.moderation import service

        if batch is not None:
            skipped: list[int] = []
            for row in jsonl.read_objects(batch, skipped=skipped):
                v = service.screen(str(row.get("text", "")), context=context)
                out = {
                    "id": row.get("id"),
                    "action": v.action,
                    "categories": v.categories,
                    "score": v.score,
                    "spans": [s.model_dump() for s in v.spans],
                    "redacted": v.redacted,
                }
                sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            for n in skipped:
                typer.echo(f"第 {n} 行不是有效的 JSON 对象，已跳过", err=True)
            return
        if text is None:
            typer.echo("请提供要审核的文本，或用 --batch FILE.jsonl", err=True)
            raise typer.Exit(2)
        v = service.screen(text, context=context)
        if as_json:
            typer.echo(json.dumps(v.model_dump(), ensure_ascii=False))
            return
        typer.echo(f"{v.action}  score={v.score}  categories={','.join(v.categories) or '-'}")
        for span in v.spans:
            typer.echo(f"  [{span.start},{span.end}) {span.category}: {span.text}")
        for reason in v.reasons:
            typer.echo(f"  · {reason}")
        if v.redacted != text:
            typer.echo(f"  redacted: {v.redacted}")

    @moderation_app.command("train")
    def train_cmd(
        corpus: Annotated[
            list[Path] | None,
            typer.Option(
                "--corpus", help="语料目录或 JSONL 文件（默认随包的 data/corpus/），可多次"
            ),
        ] = None,
        cold: Annotated[
            Path, typer.Option(help="COLD train.csv（第二训练来源）")
        ] = _shared_default("eval", "moderation", "cold", "train.csv"),
        no_cold: Annotated[bool, typer.Option("--no-cold", help="不使用 COLD")] = False,
        cold_rows: Annotated[int, typer.Option(help="语义头使用的 COLD 抽样条数")] = 4000,
        out_dir: Annotated[
            Path | None, typer.Option(help="模型输出目录（默认随包的 data/）")
        ] = None,
        models: Annotated[
            str, typer.Option(help="在 dev 上比较的模型形状，逗号分隔：mlp,lr")
        ] = "mlp,lr",
    ) -> None:
        """Retrain the semantic heads and the char n-gram classifier, calibrated on dev."""
        from yishi.core.config import get_settings
        from yishi.core.errors import Invalid
        from yishi.moderation import semantic, training

        cold_path: Path | None = None if no_cold else cold
        if cold_path is not None and not cold_path.is_file():
            typer.echo(
                f"找不到 COLD 训练集 {cold_path}，只用团队语料训练（或用 --no-cold）", err=True
            )
            cold_path = None
        try:
            result = training.train(
                corpus=corpus or [training.DEFAULT_CORPUS],
                cold=cold_path,
                cold_rows=cold_rows,
                cache_dir=get_settings().data_dir / "moderation" / "vectors",
                out_dir=out_dir or semantic.DATA_DIR,
                kinds=tuple(k.strip() for k in models.split(",") if k.strip()),
                log=lambda line: typer.echo(line, err=True),
            )
        except Invalid as exc:
            typer.echo(f"{exc}（{exc.hint}）" if exc.hint else str(exc), err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))

    @eval_app.command("moderation")
    def eval_cmd(
        which: Annotated[
            str, typer.Option("--set", help="team、dev、cold、harm 或 all（逗号分隔）")
        ] = "all",
        corpus: Annotated[
            list[Path] | None, typer.Option("--corpus", help="团队语料目录（默认 data/corpus/）")
        ] = None,
        split: Annotated[str, typer.Option(help="团队语料的哪一部分")] = "test",
        dev: Annotated[Path, typer.Option(help="moderation_dev.jsonl")] = _shared_default(
            "eval", "moderation_dev.jsonl"
        ),
        cold: Annotated[Path, typer.Option(help="COLD test.csv")] = _shared_default(
            "eval", "moderation", "cold", "test.csv"
        ),
        harm: Annotated[Path, typer.Option(help="ChineseHarm-Bench bench.json")] = _shared_default(
            "eval", "moderation", "chineseharm", "bench.json"
        ),
        sample: Annotated[
            int | None,
            typer.Option(help="COLD 与 ChineseHarm 只评一个固定种子的样本（各类等量）"),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
    ) -> None:
        """Figures on the team held-out split, moderation_dev, COLD test and ChineseHarm-Bench."""
        from yishi.moderation import evaluate, training

        sets = {"team", "dev", "cold", "harm"} if which == "all" else set(which.split(","))
        reports: dict[str, object] = {}

        def run(name: str, texts: list[str], fn: object) -> None:
            screener = evaluate.cached_screener(texts)
            report = fn(screener.screen)  # type: ignore[operator]
            report["skipped_embedding"] = round(screener.stats.skip_share, 4)
            reports[name] = report
            if not as_json:
                typer.echo(evaluate.format_report(name, report))

        if "team" in sets:
            items = [
                it
                for it in training.read_corpus(corpus or [training.DEFAULT_CORPUS])
                if it.split == split
            ]
            run(f"team_{split}", [it.text for it in items], lambda s: evaluate.eval_team(items, s))
        for key, name, path in (
            ("dev", "moderation_dev", dev),
            ("cold", "cold_test", cold),
            ("harm", "chineseharm_bench", harm),
        ):
            if key not in sets:
                continue
            if not path.is_file():
                typer.echo(f"跳过 {name}：找不到 {path}（用选项指定路径）", err=True)
                continue
            if key == "dev":
                texts = evaluate.read_dev_texts(path)
                run(name, texts, lambda s, p=path: evaluate.eval_dev(p, s))
            elif key == "cold":
                texts = evaluate.read_cold_texts(path, sample=sample)
                run(name, texts, lambda s, p=path: evaluate.eval_cold(p, s, sample=sample))
            else:
                texts = [t for t, _ in evaluate.read_chineseharm(path, sample=sample)]
                run(
                    name, texts, lambda s, p=path: evaluate.eval_chineseharm(p, s, sample=sample)
                )
        if as_json:
            typer.echo(json.dumps(reports, ensure_ascii=False, indent=2))


audit_app = typer.Typer(help="审核记录：校验是否被篡改", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 at the first entry that does not fit."""
    from yishi.core.config import get_settings
    from yishi.core.db import init_db, session_scope
    from yishi.moderation import audit

    settings = get_settings()
    init_db(settings)
    with session_scope(settings) as session:
        check = audit.verify(session=session)
    if check.ok:
        typer.echo(f"审核记录完整：已校验 {check.checked} 条，未发现篡改。")
        return
    typer.secho(f"审核记录被改动：第 {check.checked + 1} 条记录（序号 {check.broken_id}）"
                f"{_BROKEN_REASONS.get(check.reason, '')}，之前的 {check.checked} 条完好。",
                fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


_BROKEN_REASONS = {
    "unlinked": "与前一条记录衔接不上",
    "altered": "内容与其校验值不符",
}
