"""Split a loaded document into heading-aware, overlapping chunks for retrieval.

Every chunk's own text is a stretch of the document (whitespace between its
pieces shortened to at most one blank line), so its line numbers point at the
source. Only an oversized fenced code block is rewritten: each piece re-opens
and closes the fence.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass

from workbench.engine.knowledge.loaders import LoadedDocument

DEFAULT_MAX_CHARS = 1000
DEFAULT_OVERLAP_CHARS = 150

_LINE_KINDS = frozenset({"code", "json", "csv"})
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SENTENCE_GAP = re.compile(r"(?<=[.!?])[ \t]+")
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"(?:[ \t]*\n)+")
_DEFINITION = re.compile(
    r"(?:export|public|(?:(?:private|protected|internal|static|abstract|final|async|pub(?:\([\w:]+\))?|unsafe"
    r"|open|sealed|data|inline|override)\s+)*(?:def|class|function|fn|func|fun|interface|struct|enum|trait|impl"
    r"|module|namespace|type|record|object|sub|local\s+function|create(?:\s+or\s+replace)?\s+\w+))\b",
    re.IGNORECASE,
)
_MAX_CODE_HEADING = 80


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a document; lines are 1-based, of its own (non-overlap) text."""

    ordinal: int
    text: str
    heading: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class _Piece:
    """A span `[start, end)` of the document packed whole; `text` is the span's text unless re-fenced."""

    start: int
    end: int
    text: str
    heading: str
    fenced: bool = False
    fresh: bool = False  # starts a new chunk


def chunk_document(
    doc: LoadedDocument, max_chars: int = DEFAULT_MAX_CHARS, overlap_chars: int = DEFAULT_OVERLAP_CHARS
) -> list[Chunk]:
    """Split `doc` into chunks of at most `max_chars` own characters plus up to `overlap_chars` carried over.

    Markdown and HTML split at headings, code at top-level definitions, PDFs at
    pages; a chunk never crosses one of those sections.
    """
    if max_chars < 100:
        raise ValueError(f"max_chars must be at least 100, not {max_chars}")
    if not 0 <= overlap_chars < max_chars // 2:
        raise ValueError(f"overlap_chars must be from 0 to below half of max_chars ({max_chars}), not {overlap_chars}")
    splitter = _Splitter(doc.text, max_chars, overlap_chars, by_line=doc.kind in _LINE_KINDS)
    if doc.kind in ("markdown", "html"):
        sections = splitter.markdown_sections()
    elif doc.kind == "code":
        sections = [splitter.code_pieces()]
    elif doc.kind == "pdf":
        sections = splitter.page_sections()
    else:
        sections = [splitter.region_pieces(0, len(doc.text), "")]
    return splitter.chunks(sections)


class _Splitter:
    def __init__(self, text: str, max_chars: int, overlap_chars: int, by_line: bool) -> None:
        self.text = text
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self.by_line = by_line
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]

    # Sections -------------------------------------------------------------

    def markdown_sections(self) -> list[list[_Piece]]:
        """Pieces per heading section; headings inside fenced code do not count."""
        sections: list[list[_Piece]] = []
        current: list[_Piece] = []
        path: list[tuple[int, str]] = []
        heading = ""
        paragraph: list[tuple[int, int]] = []
        lines = self.lines(0, len(self.text))
        i = 0
        while i < len(lines):
            start, end = lines[i]
            line = self.text[start:end]
            fence = _fence_opening(line)
            heading_match = None if fence else _ATX_HEADING.match(line)
            if fence or heading_match or not line.strip():
                current += self.run_pieces(paragraph, heading)
                paragraph = []
            if fence:
                close = i + 1
                while close < len(lines) and not _closes_fence(self.text[slice(*lines[close])], fence):
                    close += 1
                current += self.fence_pieces(lines[i : close + 1], fence, heading, closed=close < len(lines))
                i = close + 1
                continue
            if heading_match:
                sections.append(current)
                current = []
                level = len(heading_match.group(1))
                while path and path[-1][0] >= level:
                    path.pop()
                path.append((level, (heading_match.group(2) or "").strip()))
                heading = " > ".join(name for _, name in path if name)
                current += self.fit(start, end, heading)
            elif line.strip():
                paragraph.append((start, end))
            i += 1
        current += self.run_pieces(paragraph, heading)
        sections.append(current)
        return [section for section in sections if section]

    def code_pieces(self) -> list[_Piece]:
        """Pieces of top-level blocks: a column-0 line after a blank line starts one."""
        blocks: list[list[tuple[int, int]]] = []
        previous_blank = True
        for start, end in self.lines(0, len(self.text)):
            line = self.text[start:end]
            blank = not line.strip()
            if not blocks or (not blank and previous_blank and line[0] not in " \t)]}"):
                blocks.append([])
            blocks[-1].append((start, end))
            previous_blank = blank
        pieces: list[_Piece] = []
        for block in blocks:
            definitions = (self.text[s:e] for s, e in block if _DEFINITION.match(self.text, s, e))
            heading = next(definitions, "").strip()[:_MAX_CODE_HEADING]
            block_pieces = self.fit(block[0][0], block[-1][1], heading)
            if len(block_pieces) > 1:  # a split definition starts its own chunk, signature with body
                block_pieces[0] = dataclasses.replace(block_pieces[0], fresh=True)
            pieces += block_pieces
        return pieces

    def page_sections(self) -> list[list[_Piece]]:
        """Pieces per PDF page (pages are separated by form feeds)."""
        sections = []
        start = 0
        for number, page in enumerate(self.text.split("\f"), start=1):
            sections.append(self.region_pieces(start, start + len(page), f"page {number}"))
            start += len(page) + 1
        return sections

    def region_pieces(self, low: int, high: int, heading: str) -> list[_Piece]:
        """Pieces of lines (line kinds) or blank-line separated paragraphs in `text[low:high]`."""
        lines = [span for span in self.lines(low, high) if self.text[slice(*span)].strip()]
        if self.by_line:
            return [piece for start, end in lines for piece in self.fit(start, end, heading)]
        runs: list[tuple[int, int]] = []
        for start, end in lines:
            if runs and self.text[runs[-1][1] : start].count("\n") == 1:
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
        return [piece for start, end in runs for piece in self.fit(start, end, heading)]

    # Pieces ---------------------------------------------------------------

    def lines(self, low: int, high: int) -> list[tuple[int, int]]:
        """`(start, end)` of each line of `text[low:high]`, without its newline."""
        spans = []
        start = low
        while True:
            newline = self.text.find("\n", start, high)
            if newline < 0:
                spans.append((start, high))
                return spans
            spans.append((start, newline))
            start = newline + 1

    def run_pieces(self, run: list[tuple[int, int]], heading: str) -> list[_Piece]:
        return self.fit(run[0][0], run[-1][1], heading) if run else []

    def fit(self, start: int, end: int, heading: str) -> list[_Piece]:
        """The span as one piece, or split at lines, then sentences, then hard, to fit `max_chars`."""
        while end > start and self.text[end - 1].isspace():
            end -= 1
        if leading_blank_lines := _BLANK_LINES.match(self.text, start, end):
            start = leading_blank_lines.end()
        if end - start <= self.max_chars:
            return [_Piece(start, end, self.text[start:end], heading)] if self.text[start:end].strip() else []
        if "\n" in self.text[start:end]:
            return [piece for s, e in self.lines(start, end) for piece in self.fit(s, e, heading)]
        pieces: list[_Piece] = []
        for sentence_start, sentence_end in _sentences(self.text, start, end):
            if sentence_end - sentence_start <= self.max_chars:
                pieces += self.fit(sentence_start, sentence_end, heading)
            else:
                pieces += self.hard_split(sentence_start, sentence_end, heading)
        return pieces

    def hard_split(self, start: int, end: int, heading: str) -> list[_Piece]:
        """Cut at the last space in each window of `max_chars`, or mid-word if there is none."""
        pieces = []
        while end - start > self.max_chars:
            space = self.text.rfind(" ", start + self.max_chars // 2, start + self.max_chars)
            cut = space if space >= 0 else start + self.max_chars
            pieces += self.fit(start, cut, heading)
            start = cut + 1 if space >= 0 else cut
        return pieces + self.fit(start, end, heading)

    def fence_pieces(self, lines: list[tuple[int, int]], fence: str, heading: str, closed: bool) -> list[_Piece]:
        """A fenced code block whole, or, when too long, in pieces that each re-open and close the fence."""
        while not closed and len(lines) > 1 and not self.text[slice(*lines[-1])].strip():
            lines = lines[:-1]  # an unclosed fence runs to the end of the document, not of its blank lines
        start, end = lines[0][0], lines[-1][1]
        if end - start <= self.max_chars:
            return [_Piece(start, end, self.text[start:end], heading, fenced=True)]
        opener = self.text[slice(*lines[0])].rstrip()
        closer = self.text[slice(*lines[-1])].rstrip() if closed else opener[: opener.index(fence)] + fence
        width = self.max_chars - len(opener) - len(closer) - 2
        if width < self.max_chars // 4:  # an absurd info string leaves no room for code: cut as text
            return [dataclasses.replace(piece, fenced=True) for piece in self.fit(start, end, heading)]
        parts = []
        for s, e in lines[1:-1] if closed else lines[1:]:
            parts += [(cut, min(cut + width, e)) for cut in range(s, max(e, s + 1), width)]
        groups: list[list[tuple[int, int]]] = []
        size = width + 1
        for s, e in parts:
            if size + 1 + e - s > width:
                groups.append([])
                size = -1
            groups[-1].append((s, e))
            size += 1 + e - s
        pieces = []
        for number, group in enumerate(groups):
            body = "\n".join(self.text[s:e] for s, e in group)
            piece_start = start if number == 0 else group[0][0]
            piece_end = end if number == len(groups) - 1 else group[-1][1]
            pieces.append(_Piece(piece_start, piece_end, f"{opener}\n{body}\n{closer}", heading, fenced=True))
        return pieces

    # Chunks ---------------------------------------------------------------

    def chunks(self, sections: list[list[_Piece]]) -> list[Chunk]:
        """Pack each section's pieces greedily; add overlap between chunks of one section."""
        chunks: list[Chunk] = []
        for pieces in sections:
            previous: list[_Piece] = []
            for group in self.pack(pieces):
                text = self.join(group)
                if previous:
                    text = self.overlap(previous, group[0]) + text
                heading = next((piece.heading for piece in group if piece.heading), "")
                start_line, end_line = self.line_of(group[0].start), self.line_of(group[-1].end - 1)
                chunks.append(Chunk(len(chunks), text, heading, start_line, end_line))
                previous = group
        return chunks

    def pack(self, pieces: list[_Piece]) -> list[list[_Piece]]:
        groups: list[list[_Piece]] = []
        size = 0
        for piece in pieces:
            added = len(piece.text) + (len(self.gap(groups[-1][-1], piece)) if groups else 0)
            if groups and not piece.fresh and size + added <= self.max_chars:
                groups[-1].append(piece)
                size += added
            else:
                groups.append([piece])
                size = len(piece.text)
        return groups

    def overlap(self, previous: list[_Piece], first: _Piece) -> str:
        """The end of the previous chunk's own text and the gap after it, or "" next to fenced code."""
        if not self.overlap_chars or previous[-1].fenced or first.fenced:
            return ""
        after_fence = max((i + 1 for i, piece in enumerate(previous) if piece.fenced), default=0)
        gap = self.gap(previous[-1], first)
        tail = _tail(self.join(previous[after_fence:]), self.overlap_chars - len(gap), self.by_line)
        return tail + gap if tail else ""

    def join(self, pieces: list[_Piece]) -> str:
        text = pieces[0].text
        for before, piece in zip(pieces, pieces[1:]):
            text += self.gap(before, piece) + piece.text
        return text

    def gap(self, before: _Piece, after: _Piece) -> str:
        """The whitespace between two pieces, at most one blank line."""
        between = self.text[before.end : after.start]
        newlines = between.count("\n")
        return "\n\n" if newlines > 1 else "\n" if newlines else " " if between else ""

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)


def _fence_opening(line: str) -> str | None:
    """The fence marker (e.g. "```") if `line` opens a fenced code block."""
    match = _FENCE_OPEN.match(line)
    if not match or (match.group(1)[0] == "`" and "`" in match.group(2)):
        return None
    return match.group(1)


def _closes_fence(line: str, fence: str) -> bool:
    stripped = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    return indent <= 3 and len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the sentences in one line `text[start:end]`."""
    spans = []
    for gap in _SENTENCE_GAP.finditer(text, start, end):
        spans.append((start, gap.start()))
        start = gap.end()
    return [*spans, (start, end)]


def _tail(text: str, limit: int, by_line: bool) -> str:
    """At most `limit` characters from the end of `text`, starting at a line (or word) boundary."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        tail = text
    elif by_line:
        newline = text.find("\n", len(text) - limit - 1)
        tail = text[newline + 1 :] if newline >= 0 else ""
    else:
        space = _WHITESPACE.search(text, len(text) - limit - 1)
        tail = text[space.end() :] if space else ""
    return tail.lstrip("\n") if tail.strip() else ""
