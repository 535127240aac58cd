"""The index against a real Chroma server (`chroma run`) selected by `chroma_url`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.knowledge.conftest import make_settings
from yishi.core.config import Settings
from yishi.core.errors import UpstreamUnavailable
from yishi.knowledge import service as knowledge_service
from yishi.knowledge.adapters import ChromaStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists() and shutil.which("chroma") is None:
        pytest.skip("the chroma server command is not installed")
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [str(exe if exe.exists() else "chroma"), "run", "--path", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://localhost:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("chroma server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_ingest_search_delete_through_a_chroma_server(chroma_url: str, tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path / "data").model_copy(
        update={"chroma_url": chroma_url}
    )
    knowledge_service.ensure_schema(settings)
    doc = tmp_path / "绿化.md"
    doc.write_text("# 绿化须知\n\n第一条 草坪每月修剪一次。\n\n第二条 禁止在绿地种菜。\n", "utf-8")
    report = knowledge_service.ingest_paths(paths=[doc], settings=settings)
    assert report.count("added") == 1
    assert not (settings.data_dir / "chroma").exists()  # nothing embedded on disk
    index = knowledge_service.get_index(settings)
    assert isinstance(index.store, ChromaStore) and index.store.count() == 2
    hits = knowledge_service.search("能在楼下空地种菜吗", k=2, settings=settings)
    assert (hits[0].source, hits[0].article) == ("绿化.md", "第二条")
    from sqlmodel import Session

    from yishi.core.db import get_engine

    with Session(get_engine(settings)) as session:
        knowledge_service.delete_document(session=session, source="绿化.md", settings=settings)
    assert index.store.count() == 0


def test_unreachable_server_is_a_clear_upstream_error() -> None:
    with pytest.raises(UpstreamUnavailable) as err:
        ChromaStore(url=f"http://127.0.0.1:{_free_port()}")
    assert "向量库" in err.value.message and err.value.hint
