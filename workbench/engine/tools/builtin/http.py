"""`http_fetch`: GET a web page through the network guard and return its text.

Private, loopback and link-local targets are refused unless the context allows
them (`allow_private_network`); each redirect is checked again. HTML is turned
into readable text unless `raw` is asked for.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import Tool, ToolContext, object_schema
from workbench.engine.tools.netguard import fetch

DEFAULT_MAX_BYTES = 1_000_000
MAX_BYTES_LIMIT = 10_000_000

_TEXTUAL = ("text/", "json", "xml", "javascript", "yaml", "csv", "markdown")


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    _BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "pre",
        "table",
        "ul",
        "ol",
        "header",
        "footer",
        "title",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self.skip_depth += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self.skip_depth:
            self.skip_depth -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self.skip_depth:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """Readable text and title of an HTML document (scripts and styles dropped)."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - malformed HTML: fall back to the raw text
        return html, ""
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n\n", text)
    return text.strip(), parser.title.strip()


def _http_fetch(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    url = args["url"]
    max_bytes = int(args.get("max_bytes") or DEFAULT_MAX_BYTES)
    if not 1 <= max_bytes <= MAX_BYTES_LIMIT:
        raise ToolError(f"max_bytes must be between 1 and {MAX_BYTES_LIMIT:,}.")
    result = fetch(
        url,
        allow_private=ctx.allow_private_network,
        timeout_s=ctx.timeout_s,
        max_bytes=max_bytes,
    )
    content_type = result.content_type.lower()
    text = result.text
    title = ""
    if content_type and not any(marker in content_type for marker in _TEXTUAL):
        text = f"[{result.content_type} content, not shown as text]"
    elif "html" in content_type and not args.get("raw", False):
        text, title = html_to_text(text)
    cut = len(text) > ctx.max_output_chars
    if cut:
        text = text[: ctx.max_output_chars]
    out: dict[str, Any] = {
        "url": result.url,
        "status": result.status,
        "content_type": result.content_type,
        "truncated": result.truncated or cut,
        "redirects": result.redirects,
        "text": text,
    }
    if title:
        out["title"] = title
    return out


def tools() -> list[Tool]:
    return [
        Tool(
            name="http_fetch",
            description="Download a web page or file from an http(s) URL and return its text (HTML converted to plain text).",
            parameters=object_schema(
                {
                    "url": {"type": "string", "minLength": 1, "description": "The http or https URL."},
                    "max_bytes": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_BYTES_LIMIT,
                        "description": f"Body size limit in bytes (default {DEFAULT_MAX_BYTES:,}).",
                    },
                    "raw": {"type": "boolean", "description": "Return HTML as is instead of plain text."},
                },
                required=["url"],
            ),
            permission="network",
            run=_http_fetch,
            examples=[
                "fetch https://example.com",
                "download the page at https://docs.python.org/3/whatsnew/",
                "what does this URL say: https://news.ycombinator.com",
                "get the JSON from https://api.github.com/repos/python/cpython",
            ],
        )
    ]
