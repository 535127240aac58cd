"""Shapes the knowledge domain hands to other domains and to the API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Hit(BaseModel):
    """One retrieved passage with where it comes from."""

    source: str
    title: str
    article: str = ""
    chapter: str = ""
    text: str
    score: float
    relevance: float | None = None  # calibrated probability that it answers (learned ranker)

    @property
    def citation(self) -> str:
        from yishi.knowledge.chunking import cite

        return cite(self.title, self.article)


class Citation(BaseModel):
    source: str
    title: str
    article: str = ""

    @property
    def label(self) -> str:
        from yishi.knowledge.chunking import cite

        return cite(self.title, self.article)


class KnowledgeAnswer(BaseModel):
    """The offline, extractive answer: quoted passages with citations, or an honest 'not found'."""

    text: str
    citations: list[Citation] = Field(default_factory=list)
    confident: bool = False  # kept for callers: the same as `answered`
    relevance: float = 0.0  # calibrated probability that the best passage answers the question
    answered: bool = False  # relevance passed the threshold: the cited passages answer it


class SearchRequest(BaseModel):
    query: str = Field(max_length=20_000)
    k: int = Field(default=5, ge=1, le=50)
    filters: dict[str, Any] | None = None


class SearchResponse(BaseModel):
    query: str
    hits: list[Hit]


class FileResult(BaseModel):
    """What happened to one file in an ingest."""

    path: str
    source: str = ""
    status: str  # added | replaced | unchanged | error
    chunks: int = 0
    error: str = ""


class IngestReport(BaseModel):
    files: list[FileResult] = Field(default_factory=list)

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "error"]

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)
