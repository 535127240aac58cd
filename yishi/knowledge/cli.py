"""CLI: `yishi ingest`, `yishi search`, `yishi documents`, `yishi eval retrieval`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from yishi.core.errors import YishiError


def _shared_default(*parts: str) -> Path:
    base = Path(os.environ.get("YISHI_SHARED_DIR") or Path("..") / "shared")
    return base.joinpath(*parts)


def _fail(exc: YishiError) -> None:
    typer.secho(f"错误：{exc.message}", fg=typer.colors.RED, err=True)
    if exc.hint:
        typer.secho(f"提示：{exc.hint}", err=True)
    raise typer.Exit(1)


def _hit_json(hit: object) -> dict[str, object]:
    from yishi.knowledge.schemas import Hit

    assert isinstance(hit, Hit)
    return hit.model_dump(include={"source", "title", "article", "chapter", "text", "score"})


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add the knowledge commands to the `yishi` app and its `eval` group."""

    @app.command("ingest")
    def ingest_cmd(
        paths: Annotated[
            list[Path], typer.Argument(help="文件或文件夹（md、txt、html、pdf、docx）")
        ],
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="不显示进度条")] = False,
    ) -> None:
        """Add documents to the knowledge base (unchanged files skipped, changed ones replaced)."""
        from yishi.core.config import get_settings
        from yishi.knowledge import service

        settings = get_settings()
        try:
            service.ensure_ready(settings)
            report = service.ingest_paths(paths=paths, settings=settings, show_progress=not quiet)
        except YishiError as exc:
            _fail(exc)
            return
        labels = {"added": "新增", "replaced": "已更新", "unchanged": "未变化", "error": "失败"}
        for f in report.files:
            line = f"{labels.get(f.status, f.status)}  {f.path}"
            line += f"  （{f.chunks} 段）" if f.status != "error" else f"  {f.error}"
            typer.secho(
                line, fg=typer.colors.RED if f.status == "error" else None, err=f.status == "error"
            )
        typer.echo(
            f"共 {len(report.files)} 个文件：新增 {report.count('added')}，更新 "
            f"{report.count('replaced')}，未变化 {report.count('unchanged')}，"
            f"失败 {len(report.errors)}"
        )
        if report.errors and len(report.errors) == len(report.files):
            raise typer.Exit(1)

    @app.command("search")
    def search_cmd(
        query: Annotated[str | None, typer.Argument(help="问题或关键词")] = None,
        k: Annotated[int, typer.Option("--k", help="返回条数")] = 5,
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
        batch: Annotated[
            Path | None, typer.Option("--batch", help="JSONL 文件，每行含 id 和 question")
        ] = None,
        document: Annotated[str | None, typer.Option(help="只在这个文档（文件名）里找")] = None,
        city: Annotated[str | None, typer.Option(help="只看这个城市的地方法规")] = None,
    ) -> None:
        """Search the knowledge base; `--batch` answers a JSONL file, one JSON line per question."""
        from yishi.core import jsonl
        from yishi.core.config import get_settings
        from yishi.knowledge import service

        settings = get_settings()
        filters = {key: v for key, v in {"document": document, "city": city}.items() if v}
        try:
            service.ensure_ready(settings)
            if batch is not None:
                skipped: list[int] = []
                for row in jsonl.read_objects(batch, skipped=skipped):
                    hits = service.search(
                        str(row.get("question", "")), k=k, filters=filters or None,
                        settings=settings,
                    )
                    out = {"id": row.get("id"), "hits": [_hit_json(h) for h in hits]}
                    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
                for n in skipped:
                    typer.echo(f"第 {n} 行不是有效的 JSON 对象，已跳过", err=True)
                return
            if query is None:
                typer.echo("请提供问题，或用 --batch FILE.jsonl", err=True)
                raise typer.Exit(2)
            hits = service.search(query, k=k, filters=filters or None, settings=settings)
        except YishiError as exc:
            _fail(exc)
            return
        if as_json:
            typer.echo(
                json.dumps(
                    {"query": query, "hits": [_hit_json(h) for h in hits]}, ensure_ascii=False
                )
            )
            return
        if not hits:
            typer.echo("没有找到相关条文。")
        for n, hit in enumerate(hits, 1):
            typer.secho(f"{n}. {hit.citation}  ({hit.score:.3f})  {hit.chapter}", bold=True)
            typer.echo(f"   {hit.text[:160].replace(chr(10), ' ')}")

    @app.command("documents")
    def documents_cmd(
        delete: Annotated[
            str | None, typer.Option("--delete", help="删除这个文档（文件名）")
        ] = None,
    ) -> None:
        """List the documents in the knowledge base, or delete one."""
        from yishi.core.config import get_settings
        from yishi.core.db import session_scope
        from yishi.knowledge import service

        settings = get_settings()
        try:
            service.ensure_ready(settings)
            with session_scope(settings) as session:
                if delete:
                    service.delete_document(session=session, source=delete, settings=settings)
                    typer.echo(f"已删除：{delete}")
                    return
                for doc in service.get_all_documents(session=session):
                    typer.echo(
                        f"{doc.source}\t{doc.title}\t{doc.city or '-'}\t{doc.kind}\t"
                        f"{doc.chunk_count} 段"
                    )
        except YishiError as exc:
            _fail(exc)

    @eval_app.command("retrieval")
    def eval_retrieval_cmd(
        data: Annotated[Path, typer.Option(help="评测集 JSONL")] = _shared_default(
            "eval", "retrieval_dev.jsonl"
        ),
        corpus: Annotated[Path, typer.Option(help="政策语料文件夹")] = _shared_default(
            "corpus", "policy"
        ),
        mode: Annotated[str, typer.Option(help="hybrid、bm25、vector 或 all")] = "hybrid",
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
    ) -> None:
        """Recall@1/5/10 and MRR on an eval set (any-gold and all-gold), with the misses."""
        from yishi.core.config import get_settings
        from yishi.knowledge import evaluation, service

        base = get_settings()
        # A separate index (and database) of its own: the corpus must not leak into the
        # community's knowledge base, and its embedding cache makes re-runs fast.
        settings = base.model_copy(
            update={
                "data_dir": base.data_dir / "eval-retrieval",
                "database_url": None,
                "load_sample_knowledge": False,
                "knowledge_dir": None,
            }
        )
        if not data.is_file() or not corpus.is_dir():
            typer.echo(f"找不到评测集或语料：{data}，{corpus}", err=True)
            raise typer.Exit(2)
        try:
            service.ensure_ready(settings)
            report = service.ingest_paths(paths=[corpus], settings=settings, show_progress=True)
        except YishiError as exc:
            _fail(exc)
            return
        for f in report.errors:
            typer.echo(f"失败 {f.path}：{f.error}", err=True)
        items = evaluation.read_items(data)
        modes = ["bm25", "vector", "hybrid"] if mode == "all" else [mode]
        for m in modes:
            scores = evaluation.evaluate(items, mode=m, settings=settings)
            if as_json:
                typer.echo(
                    json.dumps(
                        {**scores.as_dict(), "miss_items": scores.misses}, ensure_ascii=False
                    )
                )
                continue
            r, ra = scores.recall_at, scores.recall_all_at
            typer.secho(f"[{m}] n={scores.n}", bold=True)
            typer.echo(
                f"  any-gold: recall@1={r[1]:.3f} recall@5={r[5]:.3f} "
                f"recall@10={r[10]:.3f}  MRR={scores.mrr:.3f}"
            )
            typer.echo(
                f"  all-gold: recall@1={ra[1]:.3f} recall@5={ra[5]:.3f} recall@10={ra[10]:.3f}"
            )
            typer.echo(f"  misses (not in top 5): {len(scores.misses)}")
            for miss in scores.misses:
                gold = "、".join(f"{s} {a}" for s, a in miss["gold"])
                top = "、".join(f"{s} {a}" for s, a in miss["top"])
                typer.echo(
                    f"   - {miss['id']} rank={miss['rank']} {miss['question']}\n"
                    f"       gold: {gold}\n       top: {top}"
                )
