"""API docs at /docs (Swagger UI) and /redoc (ReDoc) from assets shipped in the
`fastapi-offline` package, so they work with no internet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from yishi.core.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}


def _asset_dir() -> Path:
    return Path(str(resources.files("fastapi_offline") / "static"))


def _require_docs(request: Request) -> None:
    """The docs pages exist only where the API description is published (not in production)."""
    if request.app.openapi_url is None:
        raise NotFound("接口文档未开放")


@router.get("/docs-assets/{name}")
def asset(name: str) -> FileResponse:
    """One of the documentation pages' scripts or stylesheets."""
    if name not in ASSETS:
        raise NotFound("没有这个文件")
    return FileResponse(_asset_dir() / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/docs", response_class=HTMLResponse)
def swagger(request: Request) -> HTMLResponse:
    """Swagger UI for the API."""
    _require_docs(request)
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} · 接口文档",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/favicon.svg",
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc for the API."""
    _require_docs(request)
    return get_redoc_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} · 接口文档",
        redoc_js_url="/docs-assets/redoc.standalone.js",
        redoc_favicon_url="/favicon.svg",
        with_google_fonts=False,
    )
