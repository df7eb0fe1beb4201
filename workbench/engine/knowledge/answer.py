"""Answers with citations: every sentence cites numbered passages.

The chat model writes JSON constrained by a schema in which each sentence
carries the numbers of the passages supporting it, and the numbers are an
enum of the passages actually given. So a citation can only point to a real
passage, whatever the model; we render the sentences as `Text. [n][m]`. Output cut off by max_tokens
(or by the loop guard) is salvaged sentence by sentence; verbatim repeats are dropped. When nothing
usable is left, the answer quotes the passages' best sentence for the question and says so
(mode "extractive").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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
                        # No maxLength: llama.cpp expands it into a grammar nested that
                        # deep (slow); the loop guard ends a rambling string instead.
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


#: words that carry no meaning of their own when matching a question to passages
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
    ]
)
_TERM = re.compile(r"[a-z0-9]+")
#: a sentence shorter than this many words is a fragment (a label, a heading), not an answer
MIN_EXTRACT_WORDS = 3
EXTRACT_CHARS = 400

#: scores each candidate sentence by meaning against the question (e.g. cosine of embeddings)
Similarity = Callable[[str, list[str]], list[float]]


def _terms(text: str) -> set[str]:
    # a crude stem ("limits" ~ "limit") is enough to match a question's words
    return {t[:-1] if len(t) > 3 and t.endswith("s") else t for t in _TERM.findall(text.lower())} - STOPWORDS


def candidate_sentences(passages: list[Passage]) -> list[tuple[int, str]]:
    """(passage number, sentence) for every prose sentence of the passages, headings and code left out."""
    out: list[tuple[int, str]] = []
    for n, passage in enumerate(passages, 1):
        in_code = False
        prose: list[str] = []
        for line in passage.text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("```", "~~~")):
                in_code = not in_code
                continue
            if in_code or not stripped or stripped.startswith(("#", "|")):
                prose.append("\n")  # a break: a sentence does not run across it
                continue
            prose.append(re.sub(r"^([-*+]|\d+[.)])\s+", "", stripped))
        for block in " ".join(prose).split("\n"):
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(block.split())):
                if len(sentence.split()) >= MIN_EXTRACT_WORDS:
                    out.append((n, sentence[:EXTRACT_CHARS]))
    return out


def extractive(question: str, passages: list[Passage], similarity: Similarity | None = None) -> tuple[str, list[int]]:
    """Fallback when the model wrote nothing usable: the passages' sentence that best answers the question.

    Each prose sentence is scored by the share of the question's terms it
    contains plus, when `similarity` is given, its similarity in meaning to the
    question; a slight preference goes to higher-ranked passages. The sentence
    is quoted as it stands and cites its passage.
    """
    candidates = candidate_sentences(passages)
    if not candidates:
        body = " ".join(passages[0].text.split())
        return f"{body[:EXTRACT_CHARS]} [1]", [1]
    wanted = _terms(question)
    meaning = similarity(question, [s for _, s in candidates]) if similarity is not None else [0.0] * len(candidates)

    def score(i: int) -> float:
        n, sentence = candidates[i]
        overlap = len(wanted & _terms(sentence)) / len(wanted) if wanted else 0.0
        return overlap + meaning[i] - 0.02 * (n - 1)

    best = max(range(len(candidates)), key=score)
    n, sentence = candidates[best]
    if sentence[-1] not in ".!?":
        sentence += "."
    return f"{sentence} [{n}]", [n]


AnswerMode = Literal["generated", "extractive"]


def write_answer(
    generate: Callable[[list[dict[str, str]], dict[str, Any]], Any],
    question: str,
    passages: list[Passage],
    similarity: Similarity | None = None,
) -> tuple[str, list[int], AnswerMode]:
    """Ask the model (via `generate(messages, response_format)`) for a cited answer.

    Returns the text, the cited passage numbers, and the mode: "generated" when
    the model's sentences are used, "extractive" when it wrote nothing usable
    and the best-matching sentence of the passages is quoted instead.
    """
    result = generate(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": build_prompt(question, passages)}],
        {"type": "json_object", "schema": answer_schema(len(passages))},
    )
    parsed = result.parsed if isinstance(result.parsed, dict) else salvage(result.text)
    text, cited = render(parsed, len(passages))
    if not text:
        text, cited = extractive(question, passages, similarity)
        return text, cited, "extractive"
    return text, cited, "generated"
