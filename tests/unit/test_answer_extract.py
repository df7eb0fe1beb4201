"""The extractive fallback of cited answers picks the passages' best sentence (pure: no model)."""

from __future__ import annotations

from types import SimpleNamespace

from workbench.engine.knowledge.answer import Passage, candidate_sentences, extractive, write_answer

PASSAGES = [
    Passage(
        "docs/api.md § Limits",
        "# Limits\n\nThe API is served on localhost. Requests are logged for a day.\n\n"
        "```\ncurl -H 'Authorization: Bearer KEY' http://127.0.0.1:8765/health\n```\n\n"
        "- The default rate limit is 60 requests per minute per key.\n",
    ),
    Passage("docs/install.md", "Install with pip. The default rate of sampling is set by the model."),
]


def test_extract_is_the_sentence_matching_the_question_not_the_first_one():
    text, cited = extractive("What is the default rate limit?", PASSAGES)
    assert text == "The default rate limit is 60 requests per minute per key. [1]"
    assert cited == [1]


def test_extract_cites_the_passage_it_quotes():
    text, cited = extractive("How do I install it with pip?", PASSAGES)
    assert text == "Install with pip. [2]"
    assert cited == [2]


def test_similarity_in_meaning_can_decide():
    # A question sharing no word with any sentence: the similarity given decides.
    def similarity(question: str, sentences: list[str]) -> list[float]:
        return [1.0 if "logged" in s else 0.0 for s in sentences]

    text, cited = extractive("How long do you keep records?", PASSAGES, similarity)
    assert text == "Requests are logged for a day. [1]" and cited == [1]


def test_headings_and_code_are_not_candidates():
    sentences = [s for _, s in candidate_sentences(PASSAGES)]
    assert not any(s.startswith("#") or "curl" in s for s in sentences)
    assert "The default rate limit is 60 requests per minute per key." in sentences


def test_an_unusable_model_answer_is_reported_as_extractive():
    looping = SimpleNamespace(parsed=None, text='{"sentences": [{"text": "The default rate limit is 1' + "0" * 80)
    text, cited, mode = write_answer(lambda messages, fmt: looping, "What is the default rate limit?", PASSAGES)
    assert mode == "extractive" and cited == [1] and text.startswith("The default rate limit is 60")
    usable = SimpleNamespace(parsed={"sentences": [{"text": "It is 60 per minute", "cites": [1]}]}, text="")
    assert write_answer(lambda m, f: usable, "What is the default rate limit?", PASSAGES) == (
        "It is 60 per minute. [1]",
        [1],
        "generated",
    )
