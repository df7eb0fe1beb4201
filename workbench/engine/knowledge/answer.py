"""Answers with citations: every sentence cites numbered passages.

The chat model writes JSON constrained by a schema in which each sentence
carries the numbers of the passages supporting it, and the numbers are an
enum of the passages actually given. So a citation can only point to a real
passage, whatever the model; we render the sentences as `Text. [n][m]`. Output cut off by max_tokens is
salvaged sentence by sentence; verbatim repeats are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_SENTENCES = 6
PASSAGE_CHARS = 1200
SYSTEM = (
    "You answer questions using only the numbered passages. Write short factual sentences. "
    "After each sentence list the numbers of the passages that support it. "
    "If the passages do not contain the answer, say so in one sentence citing the closest passage."
)


@dataclass(frozen=True)
class Passage:
    label: str  # where it comes from, e.g. "docs/install.md § Linux"
    text: str


def answer_schema(n_passages: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "sentences": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SENTENCES,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "minLength": 1},
                        "cites": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": {"type": "integer", "minimum": 1, "maximum": n_passages},
                        },
                    },
                    "required": ["text", "cites"],
                },
            }
        },
        "required": ["sentences"],
    }


def build_prompt(question: str, passages: list[Passage]) -> str:
    blocks = [f"[{i}] ({p.label})\n{p.text[:PASSAGE_CHARS]}" for i, p in enumerate(passages, 1)]
    return "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer with cited sentences."


def _clean(text: str) -> str:
    text = re.sub(r"\s*\[\d+\]", "", text)  # the model's own bracket numbers are not trusted
    return " ".join(text.split())


def render(parsed: Any, n_passages: int) -> tuple[str, list[int]]:
    """Sentences with their citations as text, and the cited numbers in order of first use."""
    sentences = parsed.get("sentences", []) if isinstance(parsed, dict) else []
    parts: list[str] = []
    cited: list[int] = []
    seen: set[str] = set()
    for sentence in sentences:
        text = _clean(str(sentence.get("text", "")))
        if text.casefold() in seen:
            continue  # the same sentence again
        seen.add(text.casefold())
        numbers = [n for n in dict.fromkeys(sentence.get("cites", [])) if isinstance(n, int) and 1 <= n <= n_passages]
        if not text or not numbers:
            continue
        if text[-1] not in ".!?":
            text += "."
        parts.append(text + " " + "".join(f"[{n}]" for n in numbers))
        cited.extend(n for n in numbers if n not in cited)
    return " ".join(parts), cited


_SENTENCE_OBJECT = re.compile(r'\{\s*"text"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"cites"\s*:\s*\[([\d,\s]*)\]\s*\}')


def salvage(text: str) -> dict[str, Any]:
    """The complete sentence objects of JSON cut off by max_tokens (small models ramble)."""
    sentences = []
    for match in _SENTENCE_OBJECT.finditer(text):
        try:
            sentence_text = json.loads(match.group(1))
        except ValueError:
            continue
        cites = [int(n) for n in match.group(2).replace(" ", "").split(",") if n]
        if all(sentence_text != s["text"] for s in sentences):  # drop verbatim repeats
            sentences.append({"text": sentence_text, "cites": cites})
    return {"sentences": sentences}


def extractive(passages: list[Passage]) -> tuple[str, list[int]]:
    """Fallback when the model wrote nothing usable: the first sentence of the best passage."""
    lines = [ln for ln in passages[0].text.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "```", "~~~"))]
    body = " ".join(" ".join(lines).split()) or " ".join(passages[0].text.split())
    first = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0][:400]
    return f"{first} [1]", [1]


def write_answer(
    generate: Callable[[list[dict[str, str]], dict[str, Any]], Any],
    question: str,
    passages: list[Passage],
) -> tuple[str, list[int]]:
    """Ask the model (via `generate(messages, response_format)`) for a cited answer."""
    result = generate(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": build_prompt(question, passages)}],
        {"type": "json_object", "schema": answer_schema(len(passages))},
    )
    parsed = result.parsed if isinstance(result.parsed, dict) else salvage(result.text)
    text, cited = render(parsed, len(passages))
    if not text:
        return extractive(passages)
    return text, cited
