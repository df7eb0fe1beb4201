"""Chunking: sections are never crossed, code fences stay valid, overlap stays
inside a section, line numbers point at the source, and no text is lost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.engine.knowledge.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS, Chunk, chunk_document
from workbench.engine.knowledge.loaders import LoadedDocument, load_file


def sentence(i: int) -> str:
    return f"Sentence number {i} talks about topic {i % 7} in some detail."


def paragraph(first: int, count: int) -> str:
    return " ".join(sentence(i) for i in range(first, first + count))


MARKDOWN = "\n".join(
    [
        "Preamble before any heading.",
        "",
        "# Install",
        "",
        paragraph(0, 4),
        "",
        paragraph(4, 4),
        "",
        "## Linux",
        "",
        "```bash",
        "# a comment, not a heading",
        "sudo apt install workbench",
        "```",
        "",
        paragraph(8, 3),
        "",
        "### Debian",
        "",
        "Debian notes.",
        "",
        "## Windows",
        "",
        paragraph(11, 5),
        "",
        "# Usage",
        "",
        "- item one",
        "- item two",
    ]
)

CODE = (
    '''"""A module."""

import os

CONSTANT = 1


@dataclass(frozen=True)
class Point:
    x: int
    y: int

    def norm(self) -> float:
        return (self.x**2 + self.y**2) ** 0.5


@cache
def decorated(x):
    """Doc of decorated."""
    total = x * 2 + CONSTANT
    return total + sum(range(x)) + len(os.sep)


def big(n):
'''
    + "".join(f"    step_{i} = n * {i} + len(str(n)) - {i}\n" for i in range(14))
    + """    return n


if __name__ == "__main__":
    print(big(3))
"""
)


def own_texts(chunks: list[Chunk], doc: LoadedDocument) -> list[str]:
    """Each chunk's own text, read back from the document by its line numbers."""
    lines = doc.text.split("\n")
    return [re.sub(r"\n{3,}", "\n\n", "\n".join(lines[c.start_line - 1 : c.end_line])).strip("\n") for c in chunks]


def assert_well_formed(doc: LoadedDocument, chunks: list[Chunk], max_chars: int, overlap_chars: int) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip()
        assert len(chunk.text) <= max_chars + overlap_chars
        assert 1 <= chunk.start_line <= chunk.end_line <= doc.text.count("\n") + 1
        assert chunk.text.count("```") % 2 == 0
    for line in doc.text.split("\n"):
        # A line longer than a chunk can only be found sentence by sentence.
        for unit in [line] if len(line) <= max_chars else re.split(r"(?<=\.) ", line):
            if unit.strip():
                assert any(unit.strip() in chunk.text for chunk in chunks), unit
    assert chunk_document(doc, max_chars, overlap_chars) == chunks


class TestParameters:
    @pytest.mark.parametrize(("max_chars", "overlap_chars"), [(99, 0), (0, 0), (200, -1), (200, 100), (200, 150)])
    def test_bad_parameters_raise(self, max_chars: int, overlap_chars: int):
        with pytest.raises(ValueError):
            chunk_document(LoadedDocument("text", "text"), max_chars, overlap_chars)

    def test_edges_are_accepted(self):
        assert chunk_document(LoadedDocument("text", "text"), 100, 49)[0].text == "text"
        assert (DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS) == (1000, 150)

    def test_blank_document_has_no_chunks(self):
        assert chunk_document(LoadedDocument("\n  \n\t\n", "markdown")) == []


class TestMarkdown:
    DOC = LoadedDocument(MARKDOWN, "markdown")

    def test_heading_paths_follow_nesting_and_ignore_fenced_hashes(self):
        chunks = chunk_document(self.DOC, 400, 0)
        assert [c.heading for c in chunks] == [
            "",
            "Install",
            "Install",
            "Install > Linux",
            "Install > Linux > Debian",
            "Install > Windows",
            "Usage",
        ]
        assert chunks[3].text.startswith("## Linux\n\n```bash\n# a comment, not a heading\n")

    def test_a_chunk_never_spans_two_sections(self):
        for chunk in chunk_document(self.DOC, 2000, 0):
            headings = [line for line in chunk.text.split("\n") if re.match(r"#{1,6} ", line)]
            assert len(headings) <= 1 + chunk.text.count("# a comment")
        # Even with room to spare, the Debian subsection is its own chunk.
        texts = [c.text for c in chunk_document(self.DOC, 2000, 0)]
        assert "### Debian\n\nDebian notes." in texts

    def test_line_numbers_point_at_the_chunk_text(self):
        chunks = chunk_document(self.DOC, 400, 0)
        assert [c.text for c in chunks] == own_texts(chunks, self.DOC)
        assert (chunks[0].start_line, chunks[0].end_line) == (1, 1)
        assert (chunks[1].start_line, chunks[1].end_line) == (3, 5)

    def test_overlap_within_a_section_only(self):
        no_overlap = chunk_document(self.DOC, 400, 0)
        chunks = chunk_document(self.DOC, 400, 80)
        assert [(c.heading, c.start_line, c.end_line) for c in chunks] == [
            (c.heading, c.start_line, c.end_line) for c in no_overlap
        ]
        for before, plain, chunk in zip(no_overlap, no_overlap[1:], chunks[1:]):
            assert chunk.text.endswith(plain.text)
            carried = chunk.text[: -len(plain.text)]
            if before.heading == chunk.heading:
                assert carried.strip() and before.text.endswith(carried.rstrip())
                assert len(carried) <= 80
                # Cut at a word boundary: the carried text starts a word of the previous chunk.
                start = len(before.text) - len(carried.rstrip())
                assert start == 0 or before.text[start - 1].isspace()
            else:
                assert carried == ""

    def test_long_paragraph_splits_at_sentence_ends(self):
        doc = LoadedDocument(paragraph(0, 30), "markdown")
        chunks = chunk_document(doc, 300, 0)
        assert len(chunks) > 3
        assert all(c.text.startswith("Sentence number") and c.text.endswith("detail.") for c in chunks)
        assert " ".join(c.text for c in chunks) == doc.text
        assert_well_formed(doc, chunks, 300, 0)

    def test_unbreakable_text_is_cut_hard(self):
        doc = LoadedDocument("x" * 450, "text")
        chunks = chunk_document(doc, 200, 0)
        assert [len(c.text) for c in chunks] == [200, 200, 50]
        assert "".join(c.text for c in chunks) == doc.text


class TestFences:
    FENCE = "```python\n" + "\n".join(f"value_{i} = compute({i})" for i in range(40)) + "\n```"
    DOC = LoadedDocument(f"# Code\n\nBefore the code.\n\n{FENCE}\n\nAfter the code.", "markdown")

    def test_a_fence_that_fits_is_never_split(self):
        chunks = chunk_document(self.DOC, 1000, 100)
        fenced = [c for c in chunks if "```python" in c.text]
        assert len(fenced) == 1 and self.FENCE in fenced[0].text

    def test_an_oversized_fence_is_split_at_lines_and_refenced(self):
        chunks = chunk_document(self.DOC, 200, 60)
        fenced = [c for c in chunks if "value_" in c.text]
        assert len(fenced) > 2
        body_lines = []
        for chunk in fenced:
            fence_start = chunk.text.index("```python\n")
            block = chunk.text[fence_start:]
            block = block[: block.index("\n```", len("```python")) + 4]
            assert block.startswith("```python\n") and block.endswith("\n```")
            body_lines += block.split("\n")[1:-1]
        assert body_lines == [f"value_{i} = compute({i})" for i in range(40)]
        assert_well_formed(self.DOC, chunks, 200, 60)

    def test_no_overlap_into_or_out_of_a_fence(self):
        chunks = chunk_document(self.DOC, 200, 60)
        for chunk in chunks:
            if "value_" in chunk.text:
                assert chunk.text.startswith("```python") or chunk.text.startswith("Before the code.")
        after = next(c for c in chunks if "After the code." in c.text)
        assert after.text == "After the code."  # nothing carried out of the fence before it

    def test_unclosed_fence_runs_to_the_end(self):
        doc = LoadedDocument("# A\n\n~~~\ncode\n# not a heading\n", "markdown")
        chunks = chunk_document(doc, 100, 0)
        assert [(c.heading, c.text) for c in chunks] == [("A", "# A\n\n~~~\ncode\n# not a heading")]


class TestCode:
    DOC = LoadedDocument(CODE, "code", language="python")

    def test_split_at_top_level_definitions_with_decorators_kept(self):
        chunks = chunk_document(self.DOC, 200, 0)
        decorated = next(c for c in chunks if "@cache" in c.text)
        assert decorated.text.startswith("@cache\ndef decorated(x):")
        assert decorated.heading == "def decorated(x):"
        point = next(c for c in chunks if "class Point" in c.text)
        assert "@dataclass(frozen=True)\nclass Point:" in point.text
        assert point.heading == "class Point:"
        starts = [c.text.split("\n")[0] for c in chunks]
        # Only the pieces of the oversized `big` start inside a definition.
        assert [line for line in starts if line[:1].isspace()] == [line for line in starts if "step_" in line]
        assert [line for line in starts if not line[:1].isspace()] == [
            '"""A module."""',
            "@cache",
            "def big(n):",
            'if __name__ == "__main__":',
        ]

    def test_oversized_definition_starts_its_own_chunks_at_line_boundaries(self):
        chunks = [c for c in chunk_document(self.DOC, 200, 0) if c.heading == "def big(n):"]
        assert len(chunks) >= 3
        assert chunks[0].text.startswith("def big(n):\n    step_0")
        lines = [line for c in chunks for line in c.text.split("\n")]
        steps = [line for line in lines if "step_" in line]
        assert steps == [f"    step_{i} = n * {i} + len(str(n)) - {i}" for i in range(14)]

    def test_code_overlap_is_whole_lines(self):
        no_overlap = chunk_document(self.DOC, 200, 0)
        chunks = chunk_document(self.DOC, 200, 60)
        for plain, chunk in zip(no_overlap[1:], chunks[1:]):
            carried = chunk.text[: -len(plain.text)]
            assert carried, chunk.text
            previous_lines = "\n".join(c.text for c in no_overlap).split("\n")
            assert all(line in previous_lines for line in carried.rstrip("\n").split("\n"))

    def test_code_line_numbers(self):
        chunks = chunk_document(self.DOC, 200, 0)
        lines = CODE.split("\n")
        for chunk in chunks:
            assert chunk.text.split("\n")[0] == lines[chunk.start_line - 1]
            assert chunk.text.split("\n")[-1] == lines[chunk.end_line - 1]

    def test_heading_of_a_chunk_without_definitions_is_empty(self):
        chunks = chunk_document(LoadedDocument("x = 1\n\ny = 2\n", "code", language="python"))
        assert [(c.heading, c.text) for c in chunks] == [("", "x = 1\n\ny = 2")]


class TestPlainKinds:
    def test_pdf_pages_are_sections_headed_by_page_number(self):
        page_one = "\n".join(sentence(i) for i in range(8))
        doc = LoadedDocument(f"{page_one}\n\fShort page two.\n\f\fPage four.", "pdf")
        chunks = chunk_document(doc, 200, 40)
        assert [c.heading for c in chunks] == ["page 1"] * 3 + ["page 2", "page 4"]
        assert chunks[3].text == "Short page two."  # no overlap from page 1
        assert chunks[4].text == "Page four."
        plain = chunk_document(doc, 200, 0)
        carried = chunks[1].text[: -len(plain[1].text)]
        assert carried.strip() and plain[0].text.endswith(carried.rstrip())  # overlap within page 1
        assert (chunks[3].start_line, chunks[4].start_line) == (9, 10)
        assert all("\f" not in c.text for c in chunks)
        assert_well_formed(doc, chunks, 200, 40)

    def test_text_packs_paragraphs(self):
        doc = LoadedDocument("First para.\n\nSecond para\nwrapped.\n\n\n\nThird.", "text")
        [chunk] = chunk_document(doc)
        assert (chunk.text, chunk.start_line, chunk.end_line) == (
            "First para.\n\nSecond para\nwrapped.\n\nThird.",
            1,
            8,
        )

    def test_csv_packs_whole_lines(self):
        rows = "\n".join(f"name: person {i} | city: town {i}" for i in range(20))
        doc = LoadedDocument(rows, "csv")
        chunks = chunk_document(doc, 150, 40)
        for chunk in chunks:
            assert all(re.fullmatch(r"name: person \d+ \| city: town \d+", line) for line in chunk.text.split("\n"))
        assert chunks[1].text.split("\n")[0] == chunks[0].text.split("\n")[-1]
        assert_well_formed(doc, chunks, 150, 40)


@pytest.mark.parametrize(
    ("doc", "max_chars", "overlap_chars"),
    [
        (LoadedDocument(MARKDOWN, "markdown"), 150, 40),
        (LoadedDocument(MARKDOWN, "markdown"), DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS),
        (LoadedDocument(TestFences.DOC.text, "markdown"), 120, 30),
        (LoadedDocument(CODE, "code", language="python"), 150, 50),
        (LoadedDocument("\n".join(f'  "key_{i}": "value {i}",' for i in range(40)), "json"), 100, 20),
        (LoadedDocument("\n\n".join(paragraph(i * 3, 3) for i in range(6)), "text"), 180, 60),
    ],
    ids=["markdown-small", "markdown-default", "fences", "code", "json", "text"],
)
def test_every_line_is_covered_and_chunks_are_bounded(doc: LoadedDocument, max_chars: int, overlap_chars: int):
    chunks = chunk_document(doc, max_chars, overlap_chars)
    assert len(chunks) > 1 or max_chars == DEFAULT_MAX_CHARS
    assert_well_formed(doc, chunks, max_chars, overlap_chars)


def test_html_is_chunked_like_markdown(tmp_path: Path):
    page = tmp_path / "page.html"
    page.write_text(
        f"<h1>Guide</h1><p>{paragraph(0, 6)}</p><pre>a = 1\nb = 2</pre><ul><li>x</li><li>y</li></ul>"
        f"<h2>Setup</h2><p>{paragraph(6, 5)}</p>"
    )
    doc = load_file(page)
    chunks = chunk_document(doc, 130, 30)
    assert {c.heading for c in chunks} == {"Guide", "Guide > Setup"}
    assert any("\n\n```\na = 1\nb = 2\n```" in c.text for c in chunks)
    assert_well_formed(doc, chunks, 130, 30)
