"""Loaders turn each supported kind of file into normalised text, and say in a
short reason why a file cannot be ingested."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from workbench.engine.knowledge.loaders import (
    SUPPORTED,
    LoadedDocument,
    LoadError,
    detect_kind,
    iter_files,
    load_file,
)


def minimal_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A valid PDF built by hand: one Helvetica text line per entry of each page."""
    objects: list[bytes] = []
    page_count = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(page_count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {page_count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        operations = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            operations += [f"({line}) Tj", "T*"]
        content = "\n".join([*operations, "ET"]).encode() if lines else b""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    info = ""
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        info = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_offset = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref_offset}\n%%EOF\n".encode()
    return bytes(out)


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def load_error(path: Path, **kwargs) -> str:
    with pytest.raises(LoadError) as info:
        load_file(path, **kwargs)
    return str(info.value)


class TestKinds:
    @pytest.mark.parametrize(
        ("name", "kind"),
        [
            ("notes.md", "markdown"),
            ("README.MARKDOWN", "markdown"),
            ("a.txt", "text"),
            ("doc.rst", "text"),
            ("app.log", "text"),
            ("page.HTM", "html"),
            ("paper.pdf", "pdf"),
            ("data.json", "json"),
            ("table.tsv", "csv"),
            ("main.rs", "code"),
            ("analysis.R", "code"),
            ("archive.exe", None),
        ],
    )
    def test_detect_kind_by_lowercase_suffix(self, name: str, kind: str | None):
        assert detect_kind(Path(name)) == kind

    def test_supported_kinds_are_the_documented_ones(self):
        assert set(SUPPORTED.values()) == {"markdown", "text", "html", "pdf", "json", "csv", "code"}
        assert all(suffix.startswith(".") and suffix == suffix.lower() for suffix in SUPPORTED)

    def test_markdown_title_is_first_h1_outside_fences(self, tmp_path: Path):
        text = "```\n# not a title\n```\n\nIntro\r\n## Sub\n# Real Title #\nbody   \n\n\n"
        doc = load_file(write(tmp_path / "a.md", text))
        assert doc == LoadedDocument(
            text="```\n# not a title\n```\n\nIntro\n## Sub\n# Real Title #\nbody", kind="markdown", title="Real Title"
        )

    def test_text_is_normalised(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.txt", b"\xef\xbb\xbfline one \t\r\nline two\rline three\n\n"))
        assert doc.text == "line one\nline two\nline three"
        assert (doc.kind, doc.title, doc.language) == ("text", None, None)

    @pytest.mark.parametrize(
        ("name", "language"), [("x.py", "python"), ("x.tsx", "typescript"), ("x.go", "go"), ("x.yml", "yaml")]
    )
    def test_code_keeps_indentation_and_names_the_language(self, tmp_path: Path, name: str, language: str):
        doc = load_file(write(tmp_path / name, "def f():\n    return 1\n"))
        assert (doc.text, doc.kind, doc.language) == ("def f():\n    return 1", "code", language)

    def test_json_is_pretty_printed_in_key_order(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.json", '{"b": [1, 2], "a": "caf\\u00e9"}'))
        assert doc.text == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "café"\n}'
        assert json.loads(doc.text) == {"b": [1, 2], "a": "café"}

    def test_invalid_json(self, tmp_path: Path):
        reason = load_error(write(tmp_path / "a.json", '{"a": 1,}'))
        assert reason.startswith("invalid JSON: ") and "line 1" in reason

    def test_csv_rows_are_rendered_with_headers(self, tmp_path: Path):
        text = 'name,age,city\nAnn,30,"Paris, France"\n\n,,\nBob,,Rome,extra\n'
        assert load_file(write(tmp_path / "a.csv", text)).text == (
            "name: Ann | age: 30 | city: Paris, France\nname: Bob | city: Rome | column 4: extra"
        )

    def test_csv_delimiter_is_sniffed(self, tmp_path: Path):
        assert load_file(write(tmp_path / "a.csv", "a;b\n1;2\n3;4\n")).text == "a: 1 | b: 2\na: 3 | b: 4"

    def test_tsv_uses_tabs(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.tsv", "k\tv\nx, y\t2\n"))
        assert (doc.text, doc.kind) == ("k: x, y | v: 2", "csv")

    def test_csv_with_header_only_keeps_the_header(self, tmp_path: Path):
        assert load_file(write(tmp_path / "a.csv", "alpha,beta\n")).text == "alpha | beta"

    @pytest.mark.parametrize("text", ['a,b\n1,"unterminated\n', 'a,b\n1,"2"x\n'])
    def test_malformed_csv(self, tmp_path: Path, text: str):
        assert load_error(write(tmp_path / "a.csv", text)).startswith("invalid CSV: ")


class TestHtml:
    PAGE = """<!doctype html><html><head><title>My &amp; Page</title><meta charset="utf-8">
<style>p { color: red }</style><script>var s = "<p>not text</p>";</script></head>
<body><h1>Main   Title</h1><p>Hello&nbsp;<b>world</b> &lt;tag&gt; caf&eacute;.<br>Second line</p>
<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>
<pre><code class="language-python">def f():
    return 1 &lt; 2
</code></pre>
<p>Run <code>pip install</code> now.</p>
<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>
<noscript><p>enable javascript</p></noscript><template><p>hidden</p></template>
<h3>Deep</h3><div>broken <p>unclosed
"""

    def test_conversion_to_markdown_like_text(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "page.html", self.PAGE))
        assert doc.kind == "html"
        assert doc.title == "My & Page"
        assert doc.text == (
            "# Main Title\n\n"
            "Hello world <tag> café.\nSecond line\n\n"
            "- one\n- two\n  - nested\n\n"
            "```python\ndef f():\n    return 1 < 2\n```\n\n"
            "Run `pip install` now.\n\n"
            "a | b\n1 | 2\n\n"
            "### Deep\n\n"
            "broken\n\nunclosed"
        )

    def test_scripts_styles_and_head_are_dropped(self, tmp_path: Path):
        text = load_file(write(tmp_path / "page.html", self.PAGE)).text
        for dropped in ("not text", "color", "enable javascript", "hidden", "charset"):
            assert dropped not in text

    def test_missing_head_end_tag_does_not_swallow_the_body(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.htm", "<html><head><title>T</title><p>Body text</p>"))
        assert (doc.text, doc.title) == ("Body text", "T")

    def test_pre_containing_backticks_gets_a_longer_fence(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.html", "<pre>```\ncode\n```</pre>"))
        assert doc.text == "````\n```\ncode\n```\n````"

    def test_unknown_marked_section_keeps_the_text_before_it(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.html", "<p>kept</p><![bogus[ x ]]><p>after</p>"))
        assert doc.text.startswith("kept")

    def test_page_without_text(self, tmp_path: Path):
        assert load_error(write(tmp_path / "a.html", "<script>alert(1)</script>")) == "HTML has no text"


class TestPdf:
    def test_text_of_each_page_separated_by_form_feeds(self, tmp_path: Path):
        pdf = minimal_pdf([["Hello PDF world", "Second line"], [], ["Third page"]], title="A Tiny Paper")
        doc = load_file(write(tmp_path / "paper.pdf", pdf))
        assert doc.kind == "pdf"
        assert doc.title == "A Tiny Paper"
        pages = doc.text.split("\f")
        assert len(pages) == 3
        assert "Hello PDF world" in pages[0] and "Second line" in pages[0]
        assert pages[1] == ""
        assert pages[2].strip() == "Third page"

    def test_pdf_without_title_metadata(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.pdf", minimal_pdf([["Only text"]])))
        assert (doc.text, doc.title) == ("Only text", None)

    def test_pdf_without_text(self, tmp_path: Path):
        assert load_error(write(tmp_path / "a.pdf", minimal_pdf([[]]))) == "PDF has no extractable text"

    @pytest.mark.parametrize("data", [b"%PDF-1.4\nthis is not really a pdf\n", b"plain words, not a PDF at all"])
    def test_garbage_pdf(self, tmp_path: Path, data: bytes):
        assert load_error(write(tmp_path / "a.pdf", data)).startswith("not a readable PDF: ")

    def _encrypted(self, user_password: str) -> bytes:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(minimal_pdf([["Secret text"]]))))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    def test_encrypted_pdf_needing_a_password(self, tmp_path: Path):
        assert load_error(write(tmp_path / "a.pdf", self._encrypted("secret"))) == "encrypted PDF"

    def test_encrypted_pdf_with_empty_user_password_opens(self, tmp_path: Path):
        assert load_file(write(tmp_path / "a.pdf", self._encrypted(""))).text == "Secret text"


class TestRefusals:
    def test_unsupported_extension(self, tmp_path: Path):
        assert load_error(write(tmp_path / "tool.EXE", b"MZ")) == "unsupported file type .exe"
        assert load_error(write(tmp_path / "blob", b"\x7fELF\x02\x01\x00\x00")) == "no extension and not UTF-8 text"
        assert load_error(write(tmp_path / "latin", "caf\xe9".encode("latin-1"))) == "no extension and not UTF-8 text"

    def test_extensionless_text_is_sniffed_as_text(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "Makefile", "all:\n\techo ok\n"))
        assert (doc.kind, doc.text) == ("text", "all:\n\techo ok")
        # A multi-byte character cut by the 8 KB sniffing window does not make it binary.
        long_text = write(tmp_path / "NOTES", ("x" * 8191 + "é" + " more").encode())
        assert detect_kind(long_text) == "text" and load_file(long_text).text.endswith("é more")
        assert detect_kind(write(tmp_path / "EMPTY", b"")) == "text" and load_error(tmp_path / "EMPTY") == "empty file"

    @pytest.mark.parametrize("content", [b"", b"  \n\t\r\n"])
    def test_empty_file(self, tmp_path: Path, content: bytes):
        assert load_error(write(tmp_path / "a.txt", content)) == "empty file"

    def test_bom_only_file_is_empty(self, tmp_path: Path):
        assert load_error(write(tmp_path / "a.md", b"\xef\xbb\xbf\n")) == "empty file"

    def test_binary_file(self, tmp_path: Path):
        assert load_error(write(tmp_path / "a.txt", b"text\x00\x01\x02more")) == "binary file"

    def test_nul_after_the_sniffed_prefix_is_dropped_not_refused(self, tmp_path: Path):
        doc = load_file(write(tmp_path / "a.txt", b"a" * 9000 + b"\x00b"))
        assert doc.text == "a" * 9000 + "b"

    def test_invalid_utf8(self, tmp_path: Path):
        assert load_error(write(tmp_path / "a.txt", "café".encode("latin-1"))) == "not valid UTF-8 text"

    def test_missing_file(self, tmp_path: Path):
        assert load_error(tmp_path / "gone.md") == "unreadable: No such file or directory"

    @pytest.mark.skipif(os.geteuid() == 0, reason="root can read files with mode 000")
    def test_unreadable_file(self, tmp_path: Path):
        path = write(tmp_path / "secret.md", "# hidden")
        path.chmod(0)
        try:
            assert load_error(path) == "unreadable: Permission denied"
        finally:
            path.chmod(0o600)

    def test_permission_error_is_reported_with_its_reason(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        path = write(tmp_path / "secret.md", "# hidden")

        def refuse(self: Path, *args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Path, "open", refuse)
        assert load_error(path) == "unreadable: Permission denied"

    def test_folder_and_fifo_are_not_regular_files(self, tmp_path: Path):
        folder = tmp_path / "folder.md"
        folder.mkdir()
        fifo = tmp_path / "pipe.txt"
        os.mkfifo(fifo)
        assert load_error(folder) == "not a regular file"
        assert load_error(fifo) == "not a regular file"

    def test_size_limit(self, tmp_path: Path):
        path = write(tmp_path / "a.txt", "x" * 2048)
        assert load_error(path, max_bytes=1024) == "larger than the 1 KB limit"
        assert load_file(path, max_bytes=2048).text == "x" * 2048


class TestIterFiles:
    def test_walks_folders_in_sorted_order_skipping_hidden_and_vendored(self, tmp_path: Path):
        root = tmp_path / "docs"
        for relative in [
            "b.md", "a.txt", "sub/c.py", "sub/deeper/d.json", ".hidden.md", ".git/config.md", ".venv/x.py",
            "venv/y.py", "node_modules/pkg/z.js", "__pycache__/m.py", "sub/.secret/e.md", "tool.exe",
        ]:  # fmt: skip
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        assert list(iter_files([root])) == [
            (root / relative).resolve() for relative in ["a.txt", "b.md", "sub/c.py", "sub/deeper/d.json", "tool.exe"]
        ]

    def test_symlinked_folders_are_never_followed_but_file_links_resolve(self, tmp_path: Path):
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "o.md").write_text("x")
        root = tmp_path / "root"
        root.mkdir()
        (root / "real.md").write_text("x")
        (root / "linked_dir").symlink_to(outside, target_is_directory=True)
        (root / "loop").symlink_to(root, target_is_directory=True)
        (root / "alias.md").symlink_to(outside / "o.md")
        (root / "broken.md").symlink_to(tmp_path / "nowhere.md")
        assert list(iter_files([root])) == [(outside / "o.md").resolve(), (root / "real.md").resolve()]

    def test_files_are_yielded_once_and_missing_paths_unchanged(self, tmp_path: Path):
        root = tmp_path / "root"
        root.mkdir()
        note = write(root / "note.md", "x")
        unsupported = write(tmp_path / "blob.bin", b"\x00")
        missing = Path("relative/missing.md")
        again = tmp_path / "root" / ".." / "root" / "note.md"
        found = list(iter_files([note, root, again, unsupported, missing, missing]))
        assert found == [note.resolve(), unsupported.resolve(), missing]

    def test_missing_path_is_reported_by_load_file(self, tmp_path: Path):
        [missing] = iter_files([tmp_path / "nope.txt"])
        assert load_error(missing) == "unreadable: No such file or directory"
