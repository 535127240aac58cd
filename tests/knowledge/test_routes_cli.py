"""The HTTP routes (real auth tokens, real SQLite) and the `yishi` knowledge commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from tests.knowledge.conftest import SMALL_POLICY_FILES, policy_file
from yishi.core import auth
from yishi.core.config import Settings, get_settings
from yishi.core.db import create_all, get_engine, get_session
from yishi.core.errors import YishiError
from yishi.core.models import Role
from yishi.knowledge import cli as knowledge_cli
from yishi.knowledge.routes import router


@pytest.fixture()
def client(fresh_settings: Settings) -> TestClient:
    engine = get_engine(fresh_settings)
    create_all(engine)
    app = FastAPI()
    app.include_router(router)

    @app.exception_handler(YishiError)
    async def _error(_r: Request, exc: YishiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=exc.status_code)

    def session_dep():  # type: ignore[no-untyped-def]
        with Session(engine, expire_on_commit=False) as session:
            yield session

    app.dependency_overrides[get_session] = session_dep
    app.dependency_overrides[get_settings] = lambda: fresh_settings
    with Session(engine) as session:
        tokens = {}
        for role in (Role.resident, Role.staff):
            user = auth.create(session=session, name=role.value, role=role)
            assert user.id is not None
            tokens[role.value] = auth.issue_token(session=session, user_id=user.id)
    test_client = TestClient(app)
    test_client.tokens = tokens  # type: ignore[attr-defined]
    return test_client


def _auth(client: TestClient, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[role]}"}  # type: ignore[attr-defined]


def test_staff_upload_list_search_delete(client: TestClient) -> None:
    staff, resident = _auth(client, "staff"), _auth(client, "resident")
    content = "# 电梯须知\n\n第一条 电梯困人时请按警铃并等待维保人员。\n".encode()
    files = {"file": ("电梯须知.md", content, "text/markdown")}
    assert client.post("/api/knowledge/documents", files=files, headers=resident).status_code == 403
    r = client.post("/api/knowledge/documents", files=files, headers=staff)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "added" and r.json()["chunks"] == 1
    again = client.post("/api/knowledge/documents", files=files, headers=staff)
    assert again.json()["status"] == "unchanged"

    listed = client.get("/api/knowledge/documents", headers=staff).json()
    assert [d["source"] for d in listed] == ["电梯须知.md"]
    assert client.get("/api/knowledge/documents", headers=resident).status_code == 403

    r = client.post(
        "/api/knowledge/search", json={"query": "电梯把人关里面了", "k": 3}, headers=resident
    )
    assert r.status_code == 200
    hit = r.json()["hits"][0]
    assert (hit["source"], hit["article"], hit["title"]) == ("电梯须知.md", "第一条", "电梯须知")
    assert client.get("/api/knowledge/search", params={"q": "电梯"}).status_code == 401

    assert client.delete("/api/knowledge/documents/电梯须知.md", headers=staff).status_code == 204
    assert client.delete("/api/knowledge/documents/电梯须知.md", headers=staff).status_code == 404
    r = client.get("/api/knowledge/search", params={"q": "电梯"}, headers=resident)
    assert r.json()["hits"] == []


def test_upload_of_unreadable_file_is_a_clear_422(client: TestClient) -> None:
    files = {"file": ("空.md", b"", "text/markdown")}
    r = client.post("/api/knowledge/documents", files=files, headers=_auth(client, "staff"))
    assert r.status_code == 422
    assert "空" in r.json()["detail"]


@pytest.fixture()
def cli_app(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[typer.Typer]:
    monkeypatch.setenv("YISHI_DATA_DIR", str(fresh_settings.data_dir))
    monkeypatch.setenv("YISHI_LOAD_SAMPLE_KNOWLEDGE", "false")
    get_settings.cache_clear()
    app, eval_app = typer.Typer(), typer.Typer()
    app.add_typer(eval_app, name="eval")
    knowledge_cli.register(app, eval_app)
    yield app
    get_settings.cache_clear()


def test_cli_ingest_search_and_batch(cli_app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    paths = [str(policy_file(SMALL_POLICY_FILES[1])), str(tmp_path / "missing.md")]
    r = runner.invoke(cli_app, ["ingest", "-q", *paths])
    assert r.exit_code == 0, r.output
    assert "新增" in r.output and "失败" in r.output

    r = runner.invoke(cli_app, ["search", "物业费能退吗", "--k", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["hits"]) == 2
    assert set(out["hits"][0]) == {"source", "title", "article", "chapter", "text", "score"}

    batch = tmp_path / "q.jsonl"
    batch.write_text(
        json.dumps({"id": "a", "question": "物业乱收费业主能不交吗"}, ensure_ascii=False)
        + "\n"
        + "not json\n"
        + json.dumps({"id": "b", "question": ""})
        + "\n",
        encoding="utf-8",
    )
    r = runner.invoke(cli_app, ["search", "--batch", str(batch), "--k", "3", "--json"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["id"] for x in lines] == ["a", "b"]
    assert lines[0]["hits"][0]["article"] == "第二条" and lines[1]["hits"] == []


def test_cli_eval_retrieval_prints_figures(cli_app: typer.Typer, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    src = policy_file(SMALL_POLICY_FILES[1])
    (corpus / src.name).write_bytes(src.read_bytes())
    data = tmp_path / "eval.jsonl"
    items = [
        {
            "id": "x1",
            "question": "物业服务合同终止后，预收的物业费能退吗",
            "gold": [{"file": src.name, "article": "第三条"}],
        },
        {
            "id": "x2",
            "question": "租客违反管理规约，按什么处理",
            "gold": [
                {"file": src.name, "article": "第四条"},
                {"file": src.name, "article": "第一条"},
            ],
        },
    ]
    data.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items), encoding="utf-8")
    r = CliRunner().invoke(
        cli_app, ["eval", "retrieval", "--data", str(data), "--corpus", str(corpus), "--json"]
    )
    assert r.exit_code == 0, r.output
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert figures["n"] == 2
    assert figures["recall@10"] == 1.0
    assert 0 < figures["mrr"] <= 1
    assert figures["recall_all@10"] <= figures["recall@10"]
