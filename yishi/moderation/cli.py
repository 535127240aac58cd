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
        data: Annotated[
            list[Path],
            typer.Option("--data", help="标注数据（CSV: TEXT,label 或 JSONL: text,label），可多次"),
        ],
        out: Annotated[
            Path | None, typer.Option(help="输出路径（默认随包的 data/classifier.npz）")
        ] = None,
        no_community: Annotated[
            bool, typer.Option("--no-community", help="不加入随包的社区示例")
        ] = False,
    ) -> None:
        """Train the char n-gram classifier and write the artifact."""
        from yishi.moderation import classifier

        missing = [str(p) for p in data if not p.is_file()]
        if missing:
            typer.echo(f"找不到训练数据：{', '.join(missing)}", err=True)
            raise typer.Exit(2)
        meta = classifier.train(
            data, out=out or classifier.ARTIFACT_NPZ, include_community=not no_community
        )
        typer.echo(json.dumps(meta, ensure_ascii=False, indent=2))

    @eval_app.command("moderation")
    def eval_cmd(
        dev: Annotated[Path, typer.Option(help="moderation_dev.jsonl")] = _shared_default(
            "eval", "moderation_dev.jsonl"
        ),
        cold: Annotated[Path, typer.Option(help="COLD test.csv")] = _shared_default(
            "eval", "moderation", "cold", "test.csv"
        ),
        harm: Annotated[Path, typer.Option(help="ChineseHarm-Bench bench.json")] = _shared_default(
            "eval", "moderation", "chineseharm", "bench.json"
        ),
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
        show_errors: Annotated[bool, typer.Option("--errors", help="列出 dev 上判错的 id")] = False,
    ) -> None:
        """P/R/F1 per action and category, false-block/review rates; COLD and ChineseHarm."""
        from yishi.moderation import evaluate, service

        def screen(text: str) -> service.Verdict:
            return service.screen(text)

        reports: dict[str, object] = {}
        for name, path, fn in (
            ("moderation_dev", dev, evaluate.eval_dev),
            ("cold_test", cold, evaluate.eval_cold),
            ("chineseharm_abuse_ads", harm, evaluate.eval_chineseharm),
        ):
            if not path.is_file():
                typer.echo(f"跳过 {name}：找不到 {path}（用选项指定路径）", err=True)
                continue
            report = fn(path, screen)
            if name == "moderation_dev" and not show_errors:
                report.pop("errors", None)
            reports[name] = report
            if not as_json:
                typer.echo(evaluate.format_report(name, report))
                if show_errors and "errors" in report:
                    for err in report["errors"]:
                        typer.echo(f"  miss {err}")
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
