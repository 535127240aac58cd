"""Read documents (Markdown, text, HTML, PDF, DOCX) into plain text; headings become `#` lines."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from yishi.core.errors import Invalid

SUPPORTED_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf", ".docx"}
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TEXT_CHARS = 2_000_000

# Cities (and municipalities) whose local rules may sit in the corpus; a document whose title
# starts with one of these is that city's regulation, anything else is national or community.
CITIES = (
    "北京",
    "上海",
    "天津",
    "重庆",
    "广州",
    "深圳",
    "杭州",
    "南京",
    "苏州",
    "武汉",
    "成都",
    "西安",
    "济南",
    "青岛",
    "郑州",
    "长沙",
    "沈阳",
    "大连",
    "哈尔滨",
    "长春",
    "石家庄",
    "太原",
    "合肥",
    "福州",
    "厦门",
    "南昌",
    "南宁",
    "昆明",
    "贵阳",
    "兰州",
    "西宁",
    "银川",
    "乌鲁木齐",
    "呼和浩特",
    "拉萨",
    "海口",
    "宁波",
    "无锡",
    "东莞",
    "佛山",
    "珠海",
    "温州",
)

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_DATE_SUFFIX = re.compile(r"[（(]\d{4}-\d{2}-\d{2}[)）]$")


class LoaderError(Invalid):
    """A file that cannot be read as a document; the message says which file and why."""


@dataclass
class LoadedDocument:
    """A document as plain text; headings are lines starting with `#`."""

    source: str
    title: str
    text: str
    city: str = ""
    kind: str = "policy"
    content_sha256: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.content_sha256:
            self.content_sha256 = hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def city_of(title: str) -> str:
    """The city a document belongs to, from its title ('' when national)."""
    for city in CITIES:
        if title.startswith(city + "市") or title.startswith(city):
            return city
    return ""


def decode_bytes(data: bytes, *, name: str = "") -> str:
    """Text from bytes: UTF-8 (BOM or not), GBK/GB18030, else what charset detection finds."""
    if b"\x00" in data[:8192]:
        raise LoaderError(
            f"文件 {name} 不是文本文件（含二进制内容）", hint="请上传 md、txt、html、pdf 或 docx"
        )
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise LoaderError(f"无法识别文件 {name} 的编码", hint="请另存为 UTF-8 编码后重新上传")
        text = str(best)
    _check_readable(text, name)
    return text


def _check_readable(text: str, name: str) -> None:
    sample = text[:20_000]
    if not sample.strip():
        return
    good = sum(
        1
        for ch in sample
        if ch.isspace()
        or (ch.isascii() and ch.isprintable())
        or "\u4e00" <= ch <= "\u9fff"
        or "\u3000" <= ch <= "\u303f"
        or "\uff00" <= ch <= "\uffef"
        or ch in "“”‘’—…·、"
    )
    if good / len(sample) < 0.7:
        raise LoaderError(
            f"文件 {name} 的内容像是乱码或二进制数据",
            hint="请确认文件编码（UTF-8 或 GBK）后重新上传",
        )


def _title_from_name(name: str) -> str:
    return _DATE_SUFFIX.sub("", Path(name).stem).strip()


def _clean(text: str) -> str:
    text = _ZERO_WIDTH.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def parse_markdown(raw: str, *, name: str) -> tuple[str, str]:
    """(title, body) of Markdown; a header block ending in `<!-- INFO END -->` gives the title."""
    raw = _ZERO_WIDTH.sub("", raw)
    header, sep, body = raw.partition("<!-- INFO END -->")
    if not sep:
        header, body = "", raw
    h1 = [m.group(1).strip() for m in re.finditer(r"^#\s+(.+)$", header, flags=re.M)]
    if not h1:
        # No header block: a leading H1 is the title and is not part of the body's headings.
        m = re.match(r"\s*#\s+(.+)\n", body)
        if m:
            h1 = [m.group(1).strip()]
            body = body[m.end() :]
    title = "·".join(h1[:2]) if h1 else _title_from_name(name)
    return title, _clean(body)


def _html_to_text(raw: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "header", "noscript"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n{'#' * level} {h.get_text(' ', strip=True)}\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(["p", "div", "li", "tr"]):
        block.insert_after("\n")
    text = soup.get_text()
    return title, _clean(text)


def _pdf_to_text(data: bytes, name: str) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many kinds of errors on broken files
        raise LoaderError(
            f"无法读取 PDF 文件 {name}：{exc}", hint="请确认文件未损坏、未加密"
        ) from exc
    return _clean("\n".join(pages))


def _docx_to_text(data: bytes, name: str) -> tuple[str, str]:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises zipfile/KeyError/ValueError on broken files
        raise LoaderError(
            f"无法读取 Word 文件 {name}：{exc}", hint="请另存为 .docx 后重新上传"
        ) from exc
    lines: list[str] = []
    title = document.core_properties.title or ""
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        if style == "Title" and not title:
            title = text
        elif style.startswith("Heading"):
            level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
            lines.append(f"{'#' * min(level + 1, 6)} {text}")
        else:
            lines.append(text)
    return title, _clean("\n\n".join(lines))


def load_bytes(data: bytes, *, name: str, kind: str = "policy") -> LoadedDocument:
    """A document from the bytes of a file called `name`; raises LoaderError with a clear reason."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoaderError(f"不支持的文件类型：{name}", hint="支持 md、txt、html、pdf、docx 文件")
    if len(data) > MAX_FILE_BYTES:
        raise LoaderError(
            f"文件 {name} 太大（{len(data) // (1024 * 1024)} MB）",
            hint=f"请拆分成不超过 {MAX_FILE_BYTES // (1024 * 1024)} MB 的文件",
        )
    if not data.strip():
        raise LoaderError(f"文件 {name} 是空的", hint="请检查文件内容后重新上传")
    title = ""
    if suffix in {".md", ".markdown"}:
        title, text = parse_markdown(decode_bytes(data, name=name), name=name)
    elif suffix in {".txt", ".text"}:
        text = _clean(decode_bytes(data, name=name))
    elif suffix in {".html", ".htm"}:
        title, text = _html_to_text(decode_bytes(data, name=name))
    elif suffix == ".pdf":
        text = _pdf_to_text(data, name)
    else:
        title, text = _docx_to_text(data, name)
    if not text.strip():
        raise LoaderError(f"文件 {name} 里没有可读的文字", hint="扫描版 PDF 请先做文字识别")
    if len(text) > MAX_TEXT_CHARS:
        raise LoaderError(
            f"文件 {name} 的文字太多（{len(text)} 字）", hint="请拆分成几个较小的文件"
        )
    title = title or _title_from_name(name)
    return LoadedDocument(
        source=Path(name).name, title=title, text=text, city=city_of(title), kind=kind
    )


def load_file(path: Path, *, kind: str = "policy") -> LoadedDocument:
    """Read one file from disk into a LoadedDocument; raises LoaderError with a clear reason."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LoaderError(
                f"文件 {path.name} 太大（{size // (1024 * 1024)} MB）",
                hint=f"请拆分成不超过 {MAX_FILE_BYTES // (1024 * 1024)} MB 的文件",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"无法读取文件 {path}：{exc.strerror}", hint="请检查路径和权限") from exc
    return load_bytes(data, name=path.name, kind=kind)


def iter_files(paths: list[Path]) -> list[Path]:
    """Files to ingest: each given file, and supported files found under each given folder."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix.lower() in SUPPORTED_SUFFIXES
                    and p.name.upper() not in {"README.MD", "SOURCES.MD"}
                )
            )
        else:
            found.append(path)
    return found
