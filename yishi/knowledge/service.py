"""Knowledge service: ingest documents, hybrid search with citations, and the offline answer."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import inspect
from sqlmodel import Session, select

from yishi.core.clock import utcnow
from yishi.core.config import Settings, get_settings
from yishi.core.db import get_engine, session_scope
from yishi.core.errors import Invalid, NotFound
from yishi.knowledge.chunking import chunk_document, cite
from yishi.knowledge.index import VECTOR_WEIGHT, Candidate, KnowledgeIndex, tokenize
from yishi.knowledge.loaders import (
    LoadedDocument,
    LoaderError,
    iter_files,
    load_bytes,
    load_file,
)
from yishi.knowledge.models import Document
from yishi.knowledge.ranker import cities_in, get_model
from yishi.knowledge.ranker import features as ranking_features
from yishi.knowledge.schemas import Citation, FileResult, Hit, IngestReport, KnowledgeAnswer

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
MAX_QUERY_CHARS = 300
# An answer is offered only when the best passage is this close to the question (e5 cosine)
# and shares a keyword with it, or is very close on meaning alone; otherwise Yishi says it does
# not know rather than quote something loosely related. (e5 scores crowd into 0.80-0.92: an
# off-topic question against a small community corpus still reaches ~0.86 on vectors alone.)
CONFIDENT_SIMILARITY = 0.89
CONFIDENT_WITH_KEYWORDS = 0.85
ANSWER_MAX_CHARS = 420

# Standard abbreviations residents use for the formal terms in regulations, taken from the
# train split of the team's own question → article pairs (yishi/knowledge/data/ltr). Appended to
# the keyword query, never replacing what the resident wrote; the learned ranker does the rest.
ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("业委会", "业主委员会"),
    ("维修基金", "专项维修资金"),
    ("大修基金", "专项维修资金"),
    ("公维金", "专项维修资金"),
    ("物业公司", "物业服务企业"),
    ("物业费", "物业服务费用"),
    ("居委会", "居民委员会"),
    ("物管会", "物业管理委员会"),
    ("装电梯", "增设电梯"),
)
CANDIDATE_POOL = 40  # hybrid candidates the learned ranker reorders

_index_cache: dict[tuple[str, str], KnowledgeIndex] = {}
_index_lock = threading.Lock()


# ---- index lifecycle -----------------------------------------------------------------------


def get_index(settings: Settings | None = None) -> KnowledgeIndex:
    """The process-wide index for these settings' data dir (built once; the model loads lazily)."""
    settings = settings or get_settings()
    key = (str(settings.data_dir.resolve()), settings.chroma_url or "")
    index = _index_cache.get(key)
    if index is None:
        with _index_lock:
            index = _index_cache.get(key)
            if index is None:
                root = settings.data_dir / "knowledge"
                index = KnowledgeIndex(
                    root, chroma_path=settings.data_dir / "chroma", chroma_url=settings.chroma_url
                )
                _index_cache[key] = index
    return index


def reset_index_cache() -> None:
    """Forget cached indexes (tests)."""
    with _index_lock:
        _index_cache.clear()


def ensure_schema(settings: Settings) -> None:
    """Make sure the knowledge_document table exists (migrations when packaged, else create it)."""
    engine = get_engine(settings)
    if inspect(engine).has_table(Document.__tablename__):
        return
    migrations = Path(__file__).resolve().parent.parent / "migrations"
    if migrations.exists():
        from yishi.core.db import init_db

        init_db(settings)
    else:
        Document.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]


def ensure_ready(settings: Settings | None = None) -> KnowledgeIndex:
    """Build or load the index; on first run load the sample documents and `knowledge_dir`."""
    settings = settings or get_settings()
    settings.ensure_data_dir()
    ensure_schema(settings)
    index = get_index(settings)
    marker = index.root / "samples.loaded"
    if settings.load_sample_knowledge and not marker.exists():
        report = ingest_paths(paths=[SAMPLES_DIR], settings=settings, kind="community")
        if not report.errors:
            marker.write_text(utcnow().isoformat(), "utf-8")
    if settings.knowledge_dir:
        ingest_paths(paths=[settings.knowledge_dir], settings=settings, kind="community")
    return index


# ---- ingest --------------------------------------------------------------------------------


def _store_document(
    *,
    session: Session,
    index: KnowledgeIndex,
    doc: LoadedDocument,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> FileResult:
    existing = session.exec(select(Document).where(Document.source == doc.source)).first()
    indexed = index.has_source(doc.source)
    if (
        existing is not None
        and not force
        and existing.content_sha256 == doc.content_sha256
        and (indexed or existing.chunk_count == 0)
    ):
        return FileResult(
            path=doc.source, source=doc.source, status="unchanged", chunks=existing.chunk_count
        )
    chunks = chunk_document(doc)
    if not chunks:
        raise LoaderError(f"文件 {doc.source} 里没有可检索的段落", hint="请检查文件内容")
    index.write_chunks(
        chunks,
        source=doc.source,
        city=doc.city,
        kind=doc.kind,
        doc_sha256=doc.content_sha256,
        progress=progress,
    )
    row = existing or Document(source=doc.source, content_sha256=doc.content_sha256)
    row.title, row.city, row.kind = doc.title, doc.city, doc.kind
    row.content_sha256, row.chunk_count, row.char_count = (
        doc.content_sha256,
        len(chunks),
        len(doc.text),
    )
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    return FileResult(
        path=doc.source,
        source=doc.source,
        status="replaced" if existing else "added",
        chunks=len(chunks),
    )


def ingest_documents(
    *,
    docs: list[LoadedDocument],
    settings: Settings | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Index already-loaded documents; unchanged ones are skipped, changed ones replaced."""
    settings = settings or get_settings()
    ensure_schema(settings)
    index = get_index(settings)
    report = IngestReport()
    changed = False
    with index.write_lock(), session_scope(settings) as session:
        index.reload_if_changed()
        try:
            for doc in docs:
                try:
                    result = _store_document(
                        session=session, index=index, doc=doc, progress=progress
                    )
                except LoaderError as exc:
                    session.rollback()
                    result = FileResult(
                        path=doc.source, source=doc.source, status="error", error=exc.message
                    )
                changed = changed or result.status in {"added", "replaced"}
                report.files.append(result)
        finally:
            # Publish what was written even if a later document failed hard.
            if changed or index.chunk_count() == 0:
                index.rebuild_keyword_index()
    return report


def ingest_paths(
    *,
    paths: list[Path],
    settings: Settings | None = None,
    kind: str = "policy",
    show_progress: bool = False,
) -> IngestReport:
    """Load and index files and folders; a bad file gets an error line and the rest go on."""
    report = IngestReport()
    docs: list[LoadedDocument] = []
    for path in iter_files([Path(p) for p in paths]):
        try:
            docs.append(load_file(path, kind=kind))
        except LoaderError as exc:
            msg = exc.message + (f"（{exc.hint}）" if exc.hint else "")
            report.files.append(
                FileResult(path=str(path), source=path.name, status="error", error=msg)
            )
    if not docs:
        return report
    if show_progress:
        from rich.progress import Progress

        total = sum(len(chunk_document(d)) for d in docs)
        with Progress(transient=True) as bar:
            task = bar.add_task("向量化文档段落", total=total)
            sub = ingest_documents(
                docs=docs, settings=settings, progress=lambda n: bar.advance(task, n)
            )
    else:
        sub = ingest_documents(docs=docs, settings=settings)
    by_source = {str(p.name): str(p) for p in iter_files([Path(p) for p in paths])}
    for result in sub.files:
        result.path = by_source.get(result.source, result.path)
    report.files.extend(sub.files)
    return report


def ingest_upload(*, data: bytes, filename: str, settings: Settings | None = None) -> FileResult:
    """Index one uploaded file; raises Invalid with the reason when it cannot be read."""
    doc = load_bytes(data, name=Path(filename).name, kind="upload")
    result = ingest_documents(docs=[doc], settings=settings).files[0]
    if result.status == "error":
        raise Invalid(result.error, hint="请检查文件内容后重新上传")
    return result


def get_all_documents(*, session: Session) -> list[Document]:
    """Every ingested document, by source name."""
    return list(session.exec(select(Document).order_by(Document.source)))  # type: ignore[arg-type]


def delete_document(*, session: Session, source: str, settings: Settings | None = None) -> None:
    """Remove a document and all of its chunks."""
    settings = settings or get_settings()
    row = session.exec(select(Document).where(Document.source == source)).first()
    if row is None:
        raise NotFound(f"没有名为 {source} 的文档", hint="用文档列表查看已收录的文件名")
    index = get_index(settings)
    with index.write_lock():
        index.delete_source(source)
        session.delete(row)
        session.commit()
        index.rebuild_keyword_index()


# ---- search --------------------------------------------------------------------------------


def clean_query(query: str | None) -> str:
    """The query with whitespace collapsed, cut at MAX_QUERY_CHARS (what gets embedded)."""
    return re.sub(r"\s+", " ", query or "").strip()[:MAX_QUERY_CHARS]


def normalise_query(query: str) -> str:
    """The query cleaned up and extended with the formal terms for colloquial words."""
    text = re.sub(r"\s+", " ", query).strip()[:MAX_QUERY_CHARS]
    extra = [formal for word, formal in ABBREVIATIONS if word in text and formal not in text]
    return f"{text} {' '.join(extra)}".strip() if extra else text


def _prior(cities: list[str]) -> Callable[[dict[str, Any]], float]:
    def prior(meta: dict[str, Any]) -> float:
        doc_city = meta.get("city", "")
        if meta.get("kind") in {"community", "upload"} and not doc_city:
            return 1.0
        if cities:
            return 1.0 if doc_city in cities else (0.8 if not doc_city else 0.25)
        return 1.0 if not doc_city else 0.7

    return prior


SEARCH_MODES = ("ranked", "hybrid", "bm25", "vector")


def search_candidates(
    query: str,
    *,
    k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: str = "ranked",
    settings: Settings | None = None,
    vector: np.ndarray | None = None,
) -> list[Candidate]:
    """Ranked candidates with both retrievers' evidence (`vector`: the query's own, when the
    caller already has it, e.g. embedded in a batch).

    mode: `ranked` (hybrid candidates reordered by the learned ranker, each with a calibrated
    relevance), `hybrid` (BM25 + vectors fused), `bm25` or `vector` alone."""
    if mode not in SEARCH_MODES:
        raise Invalid(f"未知的检索方式：{mode}", hint="可用 ranked、hybrid、bm25、vector")
    text = clean_query(query)
    if not text:
        return []
    index = get_index(settings)
    filters = _translate_filters(filters)
    expanded = normalise_query(text)
    tokens = tokenize(expanded)
    # The embedder understands everyday wording itself; the added formal terms help BM25 only.
    if mode == "bm25":
        vector = None
    elif vector is None:
        vector = index.embedder.embed_query(text)
    weight = {"bm25": 0.0, "vector": 1.0}.get(mode, VECTOR_WEIGHT)
    model = get_model() if mode == "ranked" else None
    pool = max(k, CANDIDATE_POOL) if model is not None else k
    found = index.hybrid_search(
        tokens=tokens,
        vector=vector,
        n=pool,
        filters=filters,
        vector_weight=weight,
        prior=_prior(cities_in(text)),
    )
    if model is None or not found:
        return found[:k]
    scores = model.score(ranking_features(expanded, found))
    probs = model.probability(scores)
    for cand, score, prob in zip(found, scores, probs, strict=True):
        cand.rank_score, cand.relevance = float(score), float(prob)
    order = np.argsort(-scores, kind="stable")
    return [found[i] for i in order[:k]]


def _translate_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not filters:
        return None
    allowed = {"document": "source", "source": "source", "city": "city", "kind": "kind"}
    out = {}
    for key, value in filters.items():
        if key not in allowed:
            raise Invalid(f"不支持的筛选条件：{key}", hint="可用 document、city、kind")
        if value not in (None, "", []):
            out[allowed[key]] = value
    return out or None


def _to_hit(cand: Candidate) -> Hit:
    meta = cand.meta
    return Hit(
        source=str(meta.get("source", "")),
        title=str(meta.get("title", "")),
        article=str(meta.get("article", "")),
        chapter=str(meta.get("chapter", "")),
        text=cand.text,
        score=round(cand.rank_score if cand.rank_score is not None else cand.score, 4),
        relevance=None if cand.relevance is None else round(cand.relevance, 4),
    )


def search(
    query: str,
    *,
    k: int = 5,
    filters: dict[str, Any] | None = None,
    settings: Settings | None = None,
    mode: str = "ranked",
) -> list[Hit]:
    """The `k` passages that best answer `query`, each with source, title, article and chapter."""
    return [
        _to_hit(c)
        for c in search_candidates(query, k=k, filters=filters, mode=mode, settings=settings)
    ]


# ---- offline answer ------------------------------------------------------------------------

NOT_FOUND_TEXT = (
    "抱歉，我在现有的政策和社区文件里没有找到能回答这个问题的条文，不想凭猜测回答您。"
    "您可以回复“转人工”请居委会或物业的工作人员解答，也可以换个说法再问我。"
)


def _excerpt(text: str, query_tokens: set[str], limit: int) -> str:
    body = re.sub(r"^第[^\s条]+条(之[^\s]+)?\s*", "", text.strip())
    body = re.sub(r"\s*\n\s*", "", body)
    if len(body) <= limit:
        return body
    sentences = [s for s in re.split(r"(?<=[。；！？])", body) if s]
    scored = sorted(
        range(len(sentences)),
        key=lambda i: -len(query_tokens & set(tokenize(sentences[i]))) + i * 0.01,
    )
    chosen: list[int] = []
    size = 0
    for i in scored:
        if size + len(sentences[i]) > limit and chosen:
            continue
        chosen.append(i)
        size += len(sentences[i])
    chosen.sort()
    parts = []
    for n, i in enumerate(chosen):
        if (n == 0 and i > 0) or (n > 0 and i != chosen[n - 1] + 1):
            parts.append("……")
        parts.append(sentences[i])
    out = "".join(parts)
    if len(out) > limit:
        out = out[:limit]
    if (chosen and chosen[-1] < len(sentences) - 1) or len(out) < len("".join(parts)):
        out += "……"
    return out


def _passes(cand: Candidate) -> bool:
    """Whether a passage answers: the calibrated relevance when the ranker scored it, else the
    older rule on vector similarity (no ranker shipped)."""
    model = get_model()
    if cand.relevance is not None and model is not None:
        return cand.relevance >= model.threshold
    return cand.similarity >= CONFIDENT_SIMILARITY or (
        cand.similarity >= CONFIDENT_WITH_KEYWORDS and cand.bm25_rank is not None
    )


def answer(query: str, *, k: int = 3, settings: Settings | None = None) -> KnowledgeAnswer:
    """An extractive answer quoting the passages that answer, with citations, or an honest
    'not found' that offers staff; `relevance` is the calibrated probability for the best one."""
    if not (query or "").strip():
        return KnowledgeAnswer(text="请告诉我您想了解什么，例如：养狗有什么规定？", confident=False)
    candidates = search_candidates(query, k=max(k, 1), settings=settings)
    if not candidates:
        return KnowledgeAnswer(text=NOT_FOUND_TEXT, confident=False)
    best = candidates[0]
    relevance = best.relevance if best.relevance is not None else float(_passes(best))
    if not _passes(best):
        return KnowledgeAnswer(text=NOT_FOUND_TEXT, relevance=round(relevance, 4))
    query_tokens = set(tokenize(normalise_query(query)))
    # Cite only passages that pass on their own; at most two, to keep the reply short.
    keep = [c for c in candidates[:k] if c is best or _passes(c)][:2]
    parts: list[str] = []
    citations: list[Citation] = []
    budget = ANSWER_MAX_CHARS - 60
    for n, cand in enumerate(keep):
        meta = cand.meta
        label = cite(str(meta.get("title", "")), str(meta.get("article", "")))
        quote = _excerpt(cand.text, query_tokens, limit=budget // len(keep) - len(label))
        lead = "根据" if n == 0 else "另见"
        parts.append(f"{lead}{label}：{quote}")
        citations.append(
            Citation(
                source=str(meta.get("source", "")),
                title=str(meta.get("title", "")),
                article=str(meta.get("article", "")),
            )
        )
    parts.append("以上为条文摘录，具体情况请以原文和居委会、物业的解释为准。")
    return KnowledgeAnswer(
        text="\n\n".join(parts),
        citations=citations,
        confident=True,
        relevance=round(relevance, 4),
        answered=True,
    )


# ---- console helpers ----------------------------------------------------------------------


def get_chunks(*, source: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The indexed chunks of one document, in order: `{"text", "article", "chapter"}`."""
    index = get_index(settings or get_settings())
    index.reload_if_changed()
    return [
        {"text": text, "article": meta.get("article", ""), "chapter": meta.get("chapter", "")}
        for text, meta in zip(index._texts, index._metas, strict=True)
        if meta.get("source") == source
    ]


def reingest(*, session: Session, source: str, settings: Settings | None = None) -> FileResult:
    """Index a document again from its file (sample documents or `knowledge_dir`)."""
    settings = settings or get_settings()
    if session.exec(select(Document).where(Document.source == source)).first() is None:
        raise NotFound(f"没有名为 {source} 的文档", hint="用文档列表查看已收录的文件名")
    folders = [SAMPLES_DIR] + ([Path(settings.knowledge_dir)] if settings.knowledge_dir else [])
    for path in iter_files(folders):
        if path.name == source:
            doc = load_file(path, kind="community")
            index = get_index(settings)
            with index.write_lock(), session_scope(settings) as inner:
                result = _store_document(session=inner, index=index, doc=doc, force=True)
                index.rebuild_keyword_index()
            return result
    raise Invalid(
        f"找不到文档 {source} 的原文件，无法重新收录", hint="请重新上传该文件"
    )
