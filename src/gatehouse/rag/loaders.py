"""Loaders: files to plain text (txt, md, html, pdf, docx) and BEIR-style JSONL to documents.

Each loader returns text whose structure survives as markdown-like headings
and blank lines, so the structure-aware chunker can use it. Bad input (an
unsupported type, an empty or binary file, an unreadable PDF) raises
:class:`~gatehouse.core.errors.ValidationFailedError` naming the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import orjson

from gatehouse.core.errors import UnsupportedMediaTypeError, ValidationFailedError
from gatehouse.core.extras import needs_extra

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".jsonl"}


@dataclass
class LoadedDocument:
    text: str
    title: str | None = None
    source: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def load_path(path: Path) -> Iterator[LoadedDocument]:
    """The documents in one file (one, or one per line for JSONL)."""
    _check_type(path)
    yield from load_bytes(path.read_bytes(), path)


def load_bytes(data: bytes, path: PurePath) -> Iterator[LoadedDocument]:
    """The documents in a file's contents; ``path`` (perhaps a bare upload name)
    gives the type, the title's fallback and the source."""
    suffix = _check_type(path)
    if not data.strip():
        raise ValidationFailedError(f"{path}: the file is empty")
    if suffix == ".jsonl":
        yield from load_jsonl(data, source=str(path))
        return
    if suffix == ".pdf":
        text = _pdf(data, path)
    elif suffix == ".docx":
        text = _docx(data, path)
    else:
        decoded = _decode(data, path)
        text = html_to_text(decoded) if suffix in (".html", ".htm") else decoded
    if not text.strip():
        raise ValidationFailedError(f"{path}: no text could be extracted")
    yield LoadedDocument(text=text, title=_title(text, path), source=str(path))


def _check_type(path: PurePath) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UnsupportedMediaTypeError(
            f"{path}: unsupported file type '{suffix or '(none)'}'; "
            f"supported: {', '.join(sorted(SUPPORTED))}"
        )
    return suffix


def iter_files(root: Path) -> Iterator[Path]:
    """Supported files under ``root`` (or ``root`` itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUPPORTED and not path.name.startswith("."):
            yield path


def load_jsonl(data: bytes, *, source: str) -> Iterator[LoadedDocument]:
    """BEIR-style lines: ``_id`` (or ``id``), optional ``title``, ``text``, ``metadata``."""
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ValidationFailedError(f"{source}:{number}: not a JSON object") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValidationFailedError(f"{source}:{number}: each line needs a string 'text'")
        doc_id = row.get("_id", row.get("id"))
        metadata = row.get("metadata") or {}
        yield LoadedDocument(
            text=row["text"],
            title=row.get("title") or None,
            source=source,
            id=str(doc_id) if doc_id is not None else None,
            metadata=metadata if isinstance(metadata, dict) else {},
        )


def html_to_text(html: str) -> str:
    """Visible text of an HTML page; headings become ``#`` lines, blocks become paragraphs."""
    with needs_extra("rag", "Reading HTML"):
        from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head", "nav", "footer"]):
        tag.decompose()
    for level in range(1, 7):
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n\n{'#' * level} {tag.get_text(' ', strip=True)}\n\n")
    for tag in soup.find_all(["p", "div", "section", "article", "li", "tr", "br", "pre"]):
        tag.insert_before("\n\n")
    lines = [" ".join(line.split()) for line in soup.get_text().splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _decode(data: bytes, path: PurePath) -> str:
    if b"\x00" in data[:8192]:
        raise ValidationFailedError(f"{path}: looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailedError(f"{path}: not valid UTF-8 text") from None


def _pdf(data: bytes, path: PurePath) -> str:
    with needs_extra("rag", "Reading .pdf files"):
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise ValidationFailedError(f"{path}: not a readable PDF ({exc})") from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


def _docx(data: bytes, path: PurePath) -> str:
    import zipfile

    with needs_extra("rag", "Reading .docx files"):
        import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ValidationFailedError(f"{path}: not a readable .docx file ({exc})") from None
    parts = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        if not text:
            continue
        if style.startswith("Heading") and style[-1:].isdigit():
            parts.append(f"{'#' * int(style[-1])} {text}")
        else:
            parts.append(text)
    return "\n\n".join(parts)


def _title(text: str, path: PurePath) -> str:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:200]
    return path.stem
