"""Chunking keeps 第X条 articles whole under their chapter headings."""

from __future__ import annotations

from tests.knowledge.conftest import policy_file
from yishi.knowledge.chunking import chunk_document, cite, passage_text
from yishi.knowledge.loaders import LoadedDocument, load_bytes, load_file


def test_real_code_articles_are_whole_with_chapter_path() -> None:
    doc = load_file(policy_file("物权编.md"))
    chunks = chunk_document(doc)
    by_article = {c.article: c for c in chunks}
    art = by_article["第二百七十八条"]
    assert art.text.startswith("第二百七十八条")
    # The whole article, its list items and its closing paragraph, in one chunk.
    assert "（九）" in art.text and "四分之三以上" in art.text
    assert "第二百七十九条" not in art.text
    assert "第六章" in art.chapter and "业主的建筑物区分所有权" in art.chapter
    assert doc.title == "中华人民共和国民法典·物权编"
    assert cite(doc.title, art.article) == "《中华人民共和国民法典》物权编第二百七十八条"
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert len({c.content_hash for c in chunks}) == len(chunks)


def test_every_article_of_a_regulation_becomes_one_chunk() -> None:
    path = policy_file("物业管理条例(2018-03-19).md")
    raw = path.read_text("utf-8")
    expected = sum(1 for line in raw.splitlines() if line.startswith("第") and "条 " in line[:12])
    chunks = chunk_document(load_file(path))
    assert len([c for c in chunks if c.article]) == expected
    assert cite("物业管理条例", "第十条") == "《物业管理条例》第十条"


def test_plain_text_chapters_without_hash_are_headings() -> None:
    text = "第一章 总则\n第一条 甲。\n第二条 乙。\n第二章 罚则\n第三条 丙。"
    chunks = chunk_document(load_bytes(text.encode("gbk"), name="规定.txt"))
    assert [(c.article, c.chapter) for c in chunks] == [
        ("第一条", "第一章 总则"),
        ("第二条", "第一章 总则"),
        ("第三条", "第二章 罚则"),
    ]


def test_article_reference_inside_a_sentence_does_not_split() -> None:
    text = "第一条 违反本规定第三条规定的，责令改正。\n依照第五条处理。"
    chunks = chunk_document(LoadedDocument(source="a.md", title="A", text=text))
    assert len(chunks) == 1 and chunks[0].article == "第一条"


def test_prose_splits_on_sentences_with_overlap() -> None:
    sentences = [f"这是第{i}句话，讲的是小区里的一件事情，内容比较长一些。" for i in range(40)]
    doc = LoadedDocument(source="n.md", title="通知", text="## 通知\n" + "".join(sentences))
    chunks = chunk_document(doc)
    assert len(chunks) > 2
    assert all(len(c.text) <= 450 for c in chunks)
    assert all(c.article == "" and c.chapter == "通知" for c in chunks)
    # Consecutive chunks share one sentence.
    last_sentence = chunks[0].text.split("。")[-2] + "。"
    assert chunks[1].text.startswith(last_sentence)


def test_passage_text_carries_title_and_chapter() -> None:
    doc = LoadedDocument(source="a.md", title="甲·乙编", text="# 第一章 总则\n第一条 内容。")
    chunk = chunk_document(doc)[0]
    assert passage_text(chunk).startswith("甲 乙编 第一章 总则\n第一条")


def test_sample_bylaw_follows_civil_code_278_on_the_maintenance_fund() -> None:
    """Using the maintenance fund needs a simple double majority (item 5); raising it ¾."""
    from pathlib import Path

    import yishi.knowledge

    path = Path(yishi.knowledge.__file__).parent / "samples" / "议事规则.md"
    art = {c.article: c for c in chunk_document(load_file(path))}["第八条"].text
    three_quarters, _, majority = art.partition("四分之三以上的业主同意")
    assert majority, "the ¾ clause is missing"
    last_clause = three_quarters.rsplit("；", 1)[-1]
    assert "筹集建筑物及其附属设施的维修资金" in last_clause
    assert "使用" not in last_clause
    assert "使用建筑物及其附属设施的维修资金" in majority and "过半数" in majority
