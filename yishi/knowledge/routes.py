"""HTTP routes for the knowledge base: search for everyone signed in, documents for staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from yishi.core.deps import ResidentActor, SessionDep, SettingsDep, StaffActor
from yishi.core.errors import Invalid
from yishi.knowledge import service as knowledge_service
from yishi.knowledge.loaders import MAX_FILE_BYTES
from yishi.knowledge.models import DocumentRead
from yishi.knowledge.schemas import FileResult, SearchRequest, SearchResponse

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"])


@router.post("/search", response_model=SearchResponse)
async def search(
    body: SearchRequest, actor: ResidentActor, settings: SettingsDep
) -> SearchResponse:
    """Search policy and community documents; each hit carries its source, title and article."""
    hits = await run_in_threadpool(
        knowledge_service.search, body.query, k=body.k, filters=body.filters, settings=settings
    )
    return SearchResponse(query=body.query, hits=hits)


@router.get("/search", response_model=SearchResponse)
async def search_get(
    actor: ResidentActor,
    settings: SettingsDep,
    q: Annotated[str, Query(max_length=20_000)] = "",
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    document: str | None = None,
    city: str | None = None,
) -> SearchResponse:
    """Search by query string (`q`), optionally within one document or city."""
    filters = {key: v for key, v in {"document": document, "city": city}.items() if v}
    hits = await run_in_threadpool(
        knowledge_service.search, q, k=k, filters=filters or None, settings=settings
    )
    return SearchResponse(query=q, hits=hits)


@router.get("/documents", response_model=list[DocumentRead])
def list_documents(session: SessionDep, actor: StaffActor) -> list[DocumentRead]:
    """Every document in the knowledge base (staff and admins)."""
    return [
        DocumentRead.model_validate(d) for d in knowledge_service.get_all_documents(session=session)
    ]


@router.post("/documents", response_model=FileResult, status_code=201)
async def upload_document(
    file: Annotated[UploadFile, File(description="md、txt、html、pdf 或 docx 文件")],
    actor: StaffActor,
    settings: SettingsDep,
) -> FileResult:
    """Upload a document (staff and admins); re-uploading an unchanged file does nothing."""
    data = await file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise Invalid(
            "文件太大", hint=f"请拆分成不超过 {MAX_FILE_BYTES // (1024 * 1024)} MB 的文件"
        )
    return await run_in_threadpool(
        knowledge_service.ingest_upload,
        data=data,
        filename=file.filename or "upload.txt",
        settings=settings,
    )


@router.delete("/documents/{source}", status_code=204)
def delete_document(
    source: str, session: SessionDep, actor: StaffActor, settings: SettingsDep
) -> None:
    """Delete a document and its passages (staff and admins)."""
    knowledge_service.delete_document(session=session, source=source, settings=settings)
