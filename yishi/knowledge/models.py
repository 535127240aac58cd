"""Knowledge tables: one row per ingested document (its chunks live in the vector store)."""

from __future__ import annotations

from pydantic import NaiveDatetime
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow


class DocumentBase(SQLModel):
    source: str = Field(max_length=300, unique=True, index=True)  # the file name
    title: str = Field(default="", max_length=300)
    city: str = Field(default="", max_length=50)  # "" for national or community documents
    kind: str = Field(default="policy", max_length=30)  # policy | community | upload
    content_sha256: str = Field(max_length=64)
    chunk_count: int = 0
    char_count: int = 0


class Document(DocumentBase, table=True):
    __tablename__ = "knowledge_document"

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class DocumentRead(DocumentBase):
    id: int
    created_at: NaiveDatetime
    updated_at: NaiveDatetime
