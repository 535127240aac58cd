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
        mode: Annotated[
            str, typer.Option(help="ranked、hybrid、bm25、vector 或 all")
        ] = "ranked",
        split: Annotated[
            str | None, typer.Option(help="只评测这一部分（train、dev、test）")
        ] = None,
        show_misses: Annotated[
            bool, typer.Option("--show-misses", help="列出前 5 名里没有命中的问题")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
    ) -> None:
        """Recall@1/5/10 and MRR on an eval set (any-gold and all-gold); misses on request."""
        from yishi.core.config import get_settings
        from yishi.knowledge import evaluation, training

        settings = evaluation.corpus_settings(get_settings())
        if not data.is_file() or not corpus.is_dir():
            typer.echo(f"找不到评测集或语料：{data}，{corpus}", err=True)
            raise typer.Exit(2)
        try:
            for error in evaluation.prepare_corpus(settings=settings, corpus=corpus):
                typer.echo(f"失败 {error}", err=True)
        except YishiError as exc:
            _fail(exc)
            return
        items = training.read_items(data, split=split)
        modes = ["bm25", "vector", "hybrid", "ranked"] if mode == "all" else [mode]
        for m in modes:
            try:
                scores = evaluation.evaluate(items, mode=m, settings=settings)
            except YishiError as exc:
                _fail(exc)
                return
            if as_json:
                out = scores.as_dict()
                if show_misses:
                    out["miss_items"] = scores.misses
                typer.echo(json.dumps(out, ensure_ascii=False))
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
            for miss in scores.misses if show_misses else []:
                gold = "、".join(f"{s} {a}" for s, a in miss["gold"])
                top = "、".join(f"{s} {a}" for s, a in miss["top"])
                typer.echo(
                    f"   - {miss['id']} rank={miss['rank']} {miss['question']}\n"
                    f"       gold: {gold}\n       top: {top}"
                )

    @eval_app.command("relevance")
    def eval_relevance_cmd(
        data: Annotated[
            Path | None, typer.Option(help="问题与条文对 JSONL（默认：自带的 pairs.jsonl）")
        ] = None,
        out_of_scope: Annotated[
            Path | None, typer.Option(help="不在语料范围内的问题 JSONL（默认：自带的）")
        ] = None,
        split: Annotated[str | None, typer.Option(help="只评测这一部分")] = "test",
        corpus: Annotated[Path, typer.Option(help="政策语料文件夹")] = _shared_default(
            "corpus", "policy"
        ),
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
    ) -> None:
        """Answered precision / recall of the calibrated relevance gate (in and out of scope)."""
        from yishi.core.config import get_settings
        from yishi.knowledge import evaluation, ranker, training

        model = ranker.get_model()
        if model is None:
            typer.echo("没有训练好的排序模型，请先运行 yishi train-ranker", err=True)
            raise typer.Exit(2)
        settings = evaluation.corpus_settings(get_settings())
        try:
            for error in evaluation.prepare_corpus(settings=settings, corpus=corpus):
                typer.echo(f"失败 {error}", err=True)
            pairs = training.read_items(data or training.PAIRS_PATH, split=split)
            oos = training.read_items(
                out_of_scope or training.OUT_OF_SCOPE_PATH, split=split
            )
            fig = training.relevance_figures(
                training.collect(pairs, settings=settings),
                training.collect(oos, settings=settings),
                model,
            )
        except YishiError as exc:
            _fail(exc)
            return
        if as_json:
            typer.echo(json.dumps(fig, ensure_ascii=False))
            return
        typer.echo(
            f"in scope {fig['in_scope']}, out of scope {fig['out_of_scope']}, "
            f"threshold {model.threshold:.2f}\n"
            f"  answered precision={fig['answered_precision']:.3f} "
            f"recall={fig['answered_recall']:.3f}  "
            f"answered in scope={fig['answered_rate_in_scope']:.3f}  "
            f"out of scope answered={fig['out_of_scope_answered']:.3f}"
        )

    @app.command("train-ranker")
    def train_ranker_cmd(
        corpus: Annotated[Path, typer.Option(help="政策语料文件夹")] = _shared_default(
            "corpus", "policy"
        ),
        pairs: Annotated[
            Path | None, typer.Option(help="问题与条文对 JSONL（默认：自带的 pairs.jsonl）")
        ] = None,
        out_of_scope: Annotated[
            Path | None, typer.Option(help="不在语料范围内的问题 JSONL（默认：自带的）")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="只打印结果，不写入模型文件")
        ] = False,
    ) -> None:
        """Retrain the learned ranker and its relevance calibration from the shipped pairs."""
        from yishi.core.config import get_settings
        from yishi.knowledge import evaluation, training

        if not corpus.is_dir():
            typer.echo(f"找不到语料：{corpus}", err=True)
            raise typer.Exit(2)
        settings = evaluation.corpus_settings(get_settings())
        try:
            for error in evaluation.prepare_corpus(settings=settings, corpus=corpus):
                typer.echo(f"失败 {error}", err=True)
            model, report = training.train_ranker(
                settings=settings,
                pairs_path=pairs or training.PAIRS_PATH,
                out_of_scope_path=out_of_scope or training.OUT_OF_SCOPE_PATH,
            )
        except YishiError as exc:
            _fail(exc)
            return
        if not dry_run:
            training.save(
                model, report, corpus=corpus,
                pairs_path=pairs or training.PAIRS_PATH,
                out_of_scope_path=out_of_scope or training.OUT_OF_SCOPE_PATH,
            )
        typer.echo(json.dumps(report, ensure_ascii=False, indent=1))
