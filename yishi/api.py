"""The FastAPI application: routers of every domain, error handlers, and the lifespan that
builds storage, the job worker and the knowledge index."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from yishi import __version__
from yishi.core import jobs
from yishi.core.config import Settings, get_settings
from yishi.core.db import init_db
from yishi.core.errors import YishiError
from yishi.core.llm import build_chat_model
from yishi.privacy import logs as privacy_logs

log = logging.getLogger(__name__)

# The module of every router; each must import (an import error stops the app at start).
ROUTERS = (
    "yishi.bot.channels.routes",
    "yishi.bot.channels.aibot_routes",
    "yishi.bot.routes",
    "yishi.knowledge.routes",
    "yishi.moderation.routes",
    "yishi.deliberation.routes",
    "yishi.core.routes",
    "yishi.privacy.routes",
    "yishi.web.routes",
)


def _warm_knowledge(settings: Settings) -> None:
    try:
        from yishi.knowledge import service as knowledge_service

        knowledge_service.ensure_ready(settings)
    except Exception:
        log.exception("knowledge index not ready; answers fall back to staff hand-off")


def _held(settings: Settings) -> dict[str, Any] | None:
    """Small retention figures for /healthz: the period and the oldest stored message's age."""
    try:
        from yishi.core.db import session_scope
        from yishi.privacy import service as privacy_service

        with session_scope(settings) as session:
            held = privacy_service.figures(session=session, settings=settings)
        return {"retention_days": held["retention_days"],
                "messages": held["messages"]["count"],
                "oldest_message_days": held["messages"]["oldest_days"]}
    except Exception:
        log.warning("privacy figures unavailable", exc_info=True)
        return None


def prepare_process(settings: Settings) -> None:
    """Per-process set-up shared by the API and the worker: moderation models and hooks."""
    from yishi.bot import pipeline
    from yishi.core import adapters as core_adapters
    from yishi.moderation import adapters as moderation_adapters
    from yishi.moderation import service as moderation_service

    core_adapters.check_dependencies(settings)
    moderation_service.warm_up()
    moderation_service.set_judge(moderation_adapters.build_judge(settings))
    pipeline.register_release_handlers()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    init_db(settings)
    prepare_process(settings)
    app.state.chat_model = build_chat_model(settings) if settings.llm_enabled else None
    huey = jobs.configure(settings)
    if not jobs.broker_status(settings)["ok"]:  # named at start, and /healthz answers 503
        log.error("job broker at %s unreachable", jobs.redact_url(settings.redis_url or "SQLite"))
    consumer = None
    if app.state.run_worker and not huey.immediate:
        consumer = jobs.start_consumer(huey, workers=settings.worker_threads)
    if app.state.warm_knowledge:
        # The sample knowledge loads in the background so the webhook answers from the first second.
        threading.Thread(target=_warm_knowledge, args=(settings,), daemon=True).start()
    try:
        yield
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)


def create_app(
    settings: Settings | None = None, *, run_worker: bool = True, warm_knowledge: bool = True
) -> FastAPI:
    """Build the application (settings default to the environment's)."""
    settings = settings or get_settings()
    privacy_logs.install()  # no identities or webhook secrets in any log record
    app = FastAPI(
        title="Yishi 议事",
        version=__version__,
        description="社区议事助手：政策问答（附条文出处）、问题上报与分派、议题共识、内容审核。",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by yishi.web.api_docs (works offline)
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs_enabled else None,
    )
    app.state.settings = settings
    app.state.run_worker = run_worker
    app.state.warm_knowledge = warm_knowledge

    @app.exception_handler(YishiError)
    async def _domain_error(_request: Request, exc: YishiError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
        return JSONResponse(status_code=exc.status_code, content=body)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "error": "请求内容不符合要求",
                "hint": "请检查字段后重试",
                "detail": exc.errors(),
            },
        )

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """Dependencies: database, Redis, job queue depth, age of the oldest unanswered message;
        503 when one is down."""
        from yishi.bot import pipeline
        from yishi.core import db

        db_error = db.ping(settings)
        broker = jobs.broker_status(settings)
        body: dict[str, Any] = {
            "database": "ok" if db_error is None else f"unavailable: {db_error}",
            "redis": (
                "not configured"
                if not settings.redis_url
                else "ok" if broker["ok"] else f"unavailable: {broker['error']}"
            ),
            "jobs": "ok" if broker["ok"] else f"unavailable: {broker['error']}",
            "queue_depth": broker["queue_depth"],
            "engine": "llm" if settings.llm_enabled else "offline",
            "version": __version__,
            "personal_data": _held(settings) if db_error is None else None,
        }
        if db_error is None:
            body.update(pipeline.backlog_ages(settings=settings))
        healthy = db_error is None and broker["ok"]
        body["status"] = "ok" if healthy else "unavailable"
        return JSONResponse(body, status_code=200 if healthy else 503)

    for module_name in ROUTERS:
        # A router that fails to import is a broken feature: fail at start, never skip it.
        app.include_router(importlib.import_module(module_name).router)
    return app
