"""`yishi consensus`: run the consensus math on a Polis export folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from yishi.core.errors import YishiError
from yishi.deliberation import consensus, polis


def _summary(result: consensus.ConsensusResult, export: polis.PolisExport) -> str:
    sizes: dict[str, int] = {}
    for group in result.groups.values():
        sizes[str(group)] = sizes.get(str(group), 0) + 1
    lines = [
        f"参与者 {len(export.matrix.participants)} 人，纳入分组 {len(result.participants)} 人，"
        f"观点 {len(export.matrix.comments)} 条，分为 {result.k} 组："
        + "、".join(f"第{g}组 {n} 人" for g, n in sorted(sizes.items()))
    ]
    for statement in result.consensus:
        side = "赞同" if statement.side == "agree" else "反对"
        text = export.comment_text.get(statement.comment, "")  # type: ignore[call-overload]
        lines.append(f"共识（多数{side}）#{statement.comment} {text[:60]}")
    for group, reps in result.repness.items():
        for rep in reps:
            side = "赞同" if rep.repful_for == "agree" else "反对"
            text = export.comment_text.get(rep.comment, "")  # type: ignore[call-overload]
            lines.append(f"第{group}组代表性观点（{side}）#{rep.comment} {text[:60]}")
    return "\n".join(lines)


def register_consensus(app: typer.Typer) -> None:
    """Add the `consensus` command to the `yishi` CLI."""

    @app.command("consensus")
    def consensus_command(
        polis_dir: Path = typer.Option(
            ...,
            "--polis",
            help="Polis 导出目录（comments.csv + votes.csv 或 participants-votes.csv）",
        ),
        as_json: bool = typer.Option(False, "--json", help="以 JSON 输出完整结果"),
        seed: int = typer.Option(0, help="聚类随机种子（结果对同一输入是确定的）"),
    ) -> None:
        """Opinion groups, consensus and representative statements of a Polis conversation."""
        try:
            export = polis.load_export(polis_dir)
            result = consensus.compute(export.matrix, mod_out=export.mod_out, seed=seed)
        except YishiError as exc:
            typer.echo(f"错误：{exc.message}" + (f"（{exc.hint}）" if exc.hint else ""), err=True)
            raise typer.Exit(code=1) from exc
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            typer.echo(_summary(result, export))
