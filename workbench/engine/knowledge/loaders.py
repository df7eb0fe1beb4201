"""Turn files into normalised text for the knowledge base.

One loader per kind of file; only the standard library and pypdf (imported
lazily, when a PDF is loaded).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024

_CODE_LANGUAGES = {
    ".py": "python", ".js": "javascript", ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript",
    ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp", ".hpp": "cpp", ".cc": "cpp", ".go": "go",
    ".rs": "rust", ".rb": "ruby", ".php": "php", ".sh": "shell", ".bash": "shell", ".sql": "sql",
    ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini", ".kt": "kotlin",
    ".swift": "swift", ".scala": "scala", ".lua": "lua", ".r": "r", ".cs": "csharp", ".css": "css",
    ".scss": "scss", ".xml": "xml",
}  # fmt: skip

SUPPORTED: dict[str, str] = {
    ".md": "markdown", ".markdown": "markdown",
    ".txt": "text", ".rst": "text", ".log": "text",
    ".html": "html", ".htm": "html",
    ".pdf": "pdf",
    ".json": "json",
    ".csv": "csv", ".tsv": "csv",
    **dict.fromkeys(_CODE_LANGUAGES, "code"),
}  # fmt: skip

_BINARY_SNIFF_BYTES = 8 * 1024
_CSV_SNIFF_CHARS = 64 * 1024
# Far above any honest cell; an unbalanced quote fails on `strict` before this.
_CSV_FIELD_LIMIT = 10 * 1024 * 1024


class LoadError(Exception):
    """A file that cannot be ingested; `str()` is the reason, e.g. 'empty file'."""


@dataclass(frozen=True)
class LoadedDocument:
    """The normalised text of one file, with what the loader learnt about it."""

    text: str
    kind: str
    title: str | None = None
    language: str | None = None


def detect_kind(path: Path) -> str | None:
    """The kind of `path` from its extension, or None when it is not supported.

    A file without an extension (README, LICENSE, Makefile, notes) is text
    when its first 8 KB hold no NUL byte and decode as UTF-8.
    """
    suffix = path.suffix.lower()
    if suffix:
        return SUPPORTED.get(suffix)
    return "text" if _sniff_text(path) else None


def _sniff_text(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(_BINARY_SNIFF_BYTES)
    except OSError:
        return True  # let the loader report why it cannot be read
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the 8 KB boundary is still text.
        return len(head) == _BINARY_SNIFF_BYTES and exc.start >= len(head) - 3
    return True


def load_file(path: Path, max_bytes: int = MAX_BYTES) -> LoadedDocument:
    """Read and convert one file; raises `LoadError` saying why it cannot be ingested."""
    kind = detect_kind(path)
    if kind is None:
        suffix = path.suffix.lower()
        raise LoadError(f"unsupported file type {suffix}" if suffix else "no extension and not UTF-8 text")
    data = _read_bytes(path, max_bytes)
    if not data.strip():
        raise LoadError("empty file")
    if kind == "pdf":
        return _load_pdf(data)
    if b"\0" in data[:_BINARY_SNIFF_BYTES]:
        raise LoadError("binary file")
    try:
        text = _normalise(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise LoadError("not valid UTF-8 text") from None
    if not text.strip():
        raise LoadError("empty file")
    return _TEXT_LOADERS[kind](text, path.suffix.lower())


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Each file named by `paths` once, folders walked in sorted order.

    Hidden entries, `node_modules`, `__pycache__`, `venv` and symlinks to
    folders are skipped inside a walk. A path given directly is yielded even if
    it is unsupported or missing, so the caller can report it.
    """
    seen: set[Path] = set()
    for path in paths:
        found = _walk(path.resolve()) if path.is_dir() else iter([path.resolve() if path.exists() else path])
        for file in found:
            if file not in seen:
                seen.add(file)
                yield file


_SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "venv"})


def _walk(folder: Path) -> Iterator[Path]:
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _SKIPPED_FOLDERS:
                    yield from _walk(Path(entry.path))
            elif entry.is_file():  # follows a symlink to a file; one to a folder is neither
                yield Path(entry.path).resolve() if entry.is_symlink() else Path(entry.path)
        except OSError:
            continue


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    too_large = LoadError(f"larger than the {_size_label(max_bytes)} limit")
    try:
        info = path.stat()
        # A FIFO or device would block or never end: refuse before opening.
        if not stat.S_ISREG(info.st_mode):
            raise LoadError("not a regular file")
        if info.st_size > max_bytes:
            raise too_large
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise LoadError(f"unreadable: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise too_large
    return data


def _size_label(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


def _normalise(text: str) -> str:
    """Unix newlines, no NULs, no trailing spaces or tabs, no trailing blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")
    return "\n".join(line.rstrip(" \t") for line in text.split("\n")).rstrip("\n")


def _one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


# Text kinds ----------------------------------------------------------------

_MARKDOWN_TITLE = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_MARKDOWN_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _load_markdown(text: str, suffix: str) -> LoadedDocument:
    title = None
    in_fence = False
    for line in text.split("\n"):
        if _MARKDOWN_FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := _MARKDOWN_TITLE.match(line)):
            title = match.group(1).strip()
            break
    return LoadedDocument(text=text, kind="markdown", title=title)


def _load_text(text: str, suffix: str) -> LoadedDocument:
    return LoadedDocument(text=text, kind="text")


def _load_code(text: str, suffix: str) -> LoadedDocument:
    return LoadedDocument(text=text, kind="code", language=_CODE_LANGUAGES[suffix])


def _load_json(text: str, suffix: str) -> LoadedDocument:
    try:
        rendered = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise LoadError("invalid JSON: nested too deeply") from None
    return LoadedDocument(text=_normalise(rendered), kind="json")


def _load_csv(text: str, suffix: str) -> LoadedDocument:
    delimiter = "\t" if suffix == ".tsv" else _sniff_delimiter(text)
    previous_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise LoadError(f"invalid CSV: {_one_line(exc)}") from None
    finally:
        csv.field_size_limit(previous_limit)
    cells = [[" ".join(cell.split()) for cell in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        raise LoadError("empty file")
    header, *records = cells
    lines = [" | ".join(f"{_column(header, i)}: {value}" for i, value in enumerate(row) if value) for row in records]
    # A header alone still says what the table is about.
    return LoadedDocument(text="\n".join(lines) if lines else " | ".join(filter(None, header)), kind="csv")


def _column(header: list[str], index: int) -> str:
    return header[index] if index < len(header) and header[index] else f"column {index + 1}"


def _sniff_delimiter(text: str) -> str:
    sample = text[:_CSV_SNIFF_CHARS]
    if len(text) > _CSV_SNIFF_CHARS:
        sample = sample.rsplit("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _load_html(text: str, suffix: str) -> LoadedDocument:
    parser = _HtmlToMarkdown()
    try:
        parser.feed(text)
        parser.close()
    except AssertionError:
        # html.parser asserts on unknown `<![keyword[` sections; keep what was read.
        pass
    body, title = parser.result()
    if not body.strip():
        raise LoadError("HTML has no text")
    return LoadedDocument(text=_normalise(body), kind="html", title=title)


_TEXT_LOADERS: dict[str, Callable[[str, str], LoadedDocument]] = {
    "markdown": _load_markdown,
    "text": _load_text,
    "code": _load_code,
    "json": _load_json,
    "csv": _load_csv,
    "html": _load_html,
}


# HTML ----------------------------------------------------------------------

_DROPPED_TAGS = frozenset({"script", "style", "noscript", "template"})
_HEAD_TAGS = frozenset({"title", "meta", "link", "base", "style", "script", "noscript", "template"})
_HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
_LIST_TAGS = frozenset({"ul", "ol"})
_BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "blockquote", "table",
    "thead", "tbody", "tfoot", "dl", "figure", "figcaption", "form", "fieldset", "address", "details",
    "summary", "hr", "body",
})  # fmt: skip
_LINE_TAGS = frozenset({"br", "tr", "dt", "dd"})
_CODE_LANGUAGE = re.compile(r"(?:lang|language)-([\w+#-]+)")


class _HtmlToMarkdown(HTMLParser):
    """Markdown-like text from HTML: headings, lists, fenced code, no scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._line: list[str] = []
        self._prefix = ""
        self._list_depth = 0
        self._dropped: list[str] = []
        self._in_head = False
        self._title: list[str] | None = None
        self._title_text: str | None = None
        self._pre: list[str] | None = None
        self._pre_depth = 0
        self._code: list[str] | None = None
        self._language = ""

    def result(self) -> tuple[str, str | None]:
        """The converted text and the page title."""
        self._finish_code()
        self._finish_pre()
        self._flush()
        return "\n".join(self._lines).strip("\n"), self._title_text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self._in_head = True
        elif self._in_head and tag not in _HEAD_TAGS:
            self._in_head = False  # `</head>` is optional: body content ends the head
        if tag == "title":
            self._title = []
        elif tag in _DROPPED_TAGS:
            self._dropped.append(tag)
        elif self._dropped or self._in_head:
            return
        elif self._pre is not None:
            if tag == "br":
                self._pre.append("\n")
            elif tag == "pre":
                self._pre_depth += 1
            elif tag == "code":
                self._language = self._language or _language(attrs)
        elif tag == "pre":
            self._block()
            self._pre, self._pre_depth, self._language = [], 1, _language(attrs)
        elif tag == "code" and self._code is None:
            self._code, self._language = [], _language(attrs)
        elif tag in _HEADING_LEVELS:
            self._block()
            self._prefix = "#" * _HEADING_LEVELS[tag] + " "
        elif tag == "li":
            self._flush()
            self._prefix = "  " * max(self._list_depth - 1, 0) + "- "
        elif tag in _LIST_TAGS:
            self._list_break()
            self._list_depth += 1
        elif tag in _BLOCK_TAGS:
            self._block()
        elif tag in _LINE_TAGS:
            self._flush()
        elif tag in ("td", "th") and "".join(self._line).strip():
            self._line.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
        elif tag == "title":
            if self._title is not None and self._title_text is None:
                self._title_text = " ".join("".join(self._title).split()) or None
            self._title = None
        elif tag in _DROPPED_TAGS:
            while tag in self._dropped and self._dropped.pop() != tag:
                pass
        elif self._dropped or self._in_head:
            return
        elif self._pre is not None:
            if tag == "pre":
                self._pre_depth -= 1
                if self._pre_depth == 0:
                    self._finish_pre()
        elif tag == "code":
            self._finish_code()
        elif tag in _HEADING_LEVELS or tag == "li":
            self._flush()
            self._prefix = ""
            if tag != "li":
                self._blank()
        elif tag in _LIST_TAGS:
            self._list_depth = max(self._list_depth - 1, 0)
            self._list_break()
        elif tag in _BLOCK_TAGS:
            self._block()
        elif tag in _LINE_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        elif self._dropped or self._in_head:
            return
        elif self._pre is not None:
            self._pre.append(data)
        elif self._code is not None:
            self._code.append(data)
        else:
            self._line.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._line).split())
        self._line = []
        if text:
            self._lines.append(self._prefix + text)
            self._prefix = ""

    def _blank(self) -> None:
        if self._lines and self._lines[-1]:
            self._lines.append("")

    def _block(self) -> None:
        self._flush()
        self._blank()

    def _list_break(self) -> None:
        # A nested list continues its parent item's list; a top-level one is a block.
        if self._list_depth:
            self._flush()
        else:
            self._block()

    def _fence(self, raw: str) -> None:
        body = "\n".join(line.rstrip() for line in raw.strip("\n").split("\n"))
        if not body.strip():
            return
        fence = "```"
        while fence in body:
            fence += "`"
        self._block()
        self._lines.extend([fence + self._language, *body.split("\n"), fence, ""])

    def _finish_pre(self) -> None:
        if self._pre is not None:
            raw, self._pre = "".join(self._pre), None
            self._fence(raw)

    def _finish_code(self) -> None:
        if self._code is None:
            return
        raw, self._code = "".join(self._code), None
        if "\n" in raw.strip("\n"):
            self._fence(raw)
        elif raw.strip():
            self._line.append(f"`{' '.join(raw.split())}`")


def _language(attrs: list[tuple[str, str | None]]) -> str:
    classes = " ".join(value or "" for name, value in attrs if name == "class")
    match = _CODE_LANGUAGE.search(classes)
    return match.group(1) if match else ""


# PDF -----------------------------------------------------------------------


def _load_pdf(data: bytes) -> LoadedDocument:
    import pypdf  # costs ~100 ms; only PDFs need it

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF")
        pages = [_normalise(page.extract_text() or "").replace("\f", "").strip("\n") for page in reader.pages]
        metadata = reader.metadata
        title = " ".join(str(metadata.title).split()) if metadata and metadata.title else None
    except LoadError:
        raise
    except pypdf.errors.DependencyError:
        raise LoadError("encrypted PDF") from None
    except Exception as exc:  # pypdf raises many types on damaged files
        raise LoadError(f"not a readable PDF: {_one_line(exc)}") from None
    if not any(page.strip() for page in pages):
        raise LoadError("PDF has no extractable text")
    # Each page ends its last line, so a page starts on a line of its own.
    text = "\f".join(page + "\n" if page else "" for page in pages)
    return LoadedDocument(text=_normalise(text), kind="pdf", title=title or None)
