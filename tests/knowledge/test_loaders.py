"""Loaders: formats, encodings and clear errors for bad files (no embedding model needed)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.knowledge.conftest import policy_file
from yishi.knowledge import loaders
from yishi.knowledge.loaders import LoaderError, city_of, load_bytes, load_file


def test_markdown_header_block_gives_title_and_is_dropped() -> None:
    doc = load_file(policy_file("物业管理条例(2018-03-19).md"))
    assert doc.title == "物业管理条例"
    assert "INFO END" not in doc.text
    assert doc.text.lstrip().startswith("#")
    assert doc.city == ""
    assert len(doc.content_sha256) == 64


def test_city_comes_from_the_title() -> None:
    doc = load_file(policy_file("北京市物业管理条例(2024-03-29).md"))
    assert doc.city == "北京"
    assert "\u200b" not in doc.text  # zero-width spaces in the source are removed
    assert city_of("城市市容和环境卫生管理条例") == ""


def test_gbk_text_file_is_decoded(tmp_path: Path) -> None:
    text = "第一条 业主应当按时交纳物业费。\n第二条 装修前应当告知物业服务企业。"
    path = tmp_path / "规约.txt"
    path.write_bytes(text.encode("gbk"))
    doc = load_file(path)
    assert "物业费" in doc.text and "装修前" in doc.text
    assert doc.title == "规约"


def test_utf8_with_bom_is_decoded() -> None:
    doc = load_bytes("\ufeff# 标题\n\n第一条 内容。".encode(), name="a.md")
    assert doc.title == "标题"
    assert doc.text.startswith("第一条")


@pytest.mark.parametrize(
    ("data", "name", "needle"),
    [
        (b"", "empty.md", "空"),
        (b"   \n\n ", "blank.txt", "空"),
        (b"\x00\x01\x02binary" * 50, "x.txt", "二进制"),
        (bytes(range(128, 256)) * 40, "garbled.txt", "garbled.txt"),
        (b"hello", "photo.jpg", "不支持"),
        (b"%PDF-1.4 not really a pdf", "broken.pdf", "PDF"),
        (b"PK\x03\x04 not a docx", "broken.docx", "Word"),
    ],
)
def test_bad_files_raise_a_clear_error(data: bytes, name: str, needle: str) -> None:
    with pytest.raises(LoaderError) as err:
        load_bytes(data, name=name)
    assert needle in err.value.message
    assert name in err.value.message or needle == "不支持"


def test_huge_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loaders, "MAX_FILE_BYTES", 1024)
    path = tmp_path / "big.txt"
    path.write_text("第一条 很长。" * 1000, encoding="utf-8")
    with pytest.raises(LoaderError, match="太大"):
        load_file(path)


def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="无法读取"):
        load_file(tmp_path / "nope.md")


def test_html_headings_become_markdown_headings() -> None:
    html = (
        "<html><head><title>停车须知</title><script>var x=1;</script></head><body>"
        "<h2>第一章 总则</h2><p>第一条 车辆应当停在车位内。</p><p>第二条 禁止占用消防通道。</p>"
        "</body></html>"
    ).encode()
    doc = load_bytes(html, name="p.html")
    assert doc.title == "停车须知"
    assert "## 第一章 总则" in doc.text
    assert "var x" not in doc.text


def test_docx_paragraphs_and_headings() -> None:
    import docx

    document = docx.Document()
    document.add_heading("装修须知", level=0)
    document.add_heading("第一章 登记", level=1)
    document.add_paragraph("第一条 装修前应当办理登记。")
    buf = io.BytesIO()
    document.save(buf)
    doc = load_bytes(buf.getvalue(), name="装修.docx")
    assert doc.title == "装修须知"
    assert "## 第一章 登记" in doc.text
    assert "第一条 装修前应当办理登记。" in doc.text
