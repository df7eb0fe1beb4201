"""The loop guard on crafted text streams (pure: no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.engine.inference.loop_guard import RepetitionGuard

ROOT = Path(__file__).resolve().parents[2]


def feed(text: str, step: int = 3) -> tuple[int | None, RepetitionGuard]:
    """Stream `text` in `step`-character deltas; the offset where the guard tripped (None: never)."""
    guard = RepetitionGuard()
    for offset in range(0, len(text), step):
        if guard.feed(text[offset : offset + step]):
            return offset + step, guard
    return None, guard


@pytest.mark.parametrize("step", [1, 3, 17])
def test_a_short_phrase_repeated_back_to_back_trips_early(step: int):
    text = "La femme de France, le grand-fanté, " + "la Femme, " * 200
    tripped, guard = feed(text, step)
    assert tripped is not None and tripped < 36 + 10 * 10, (tripped, guard.reason)
    assert "repeated back to back" in guard.reason


def test_a_repeated_sentence_trips_by_its_third_copy():
    sentence = "Once upon a time there was a little dragon who lived alone in a cave. "
    tripped, _ = feed("A story. " + sentence * 20)
    assert tripped is not None and tripped <= len("A story. ") + 3 * len(sentence) + 3


def test_a_run_of_digits_inside_a_json_string_trips():
    tripped, guard = feed('{"sentences": [{"text": "The default rate limit is 1' + "0" * 1000)
    assert tripped is not None and tripped < 60 + 100, guard.reason
    assert "run of characters" in guard.reason


def test_a_loop_that_drifts_between_copies_trips_on_its_recurring_words():
    parts = [f"Step {i}: the cat sat on the warm mat near the old door and slept. " for i in range(30)]
    tripped, guard = feed("".join(parts))
    assert tripped is not None, guard.reason
    assert "the same 10 words" in guard.reason


@pytest.mark.parametrize(
    "text",
    [
        "Ha ha ha ha, that was funny! Very very good.",
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20",
        "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n" + "-" * 60,
        "https://example.com/" + "a1b2c3d4e5" * 5,
    ],
)
def test_ordinary_text_does_not_trip(text: str):
    tripped, guard = feed(text)
    assert tripped is None, guard.reason


def test_the_readme_streamed_whole_does_not_trip():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert feed(text, 40)[0] is None


def test_once_tripped_it_stays_tripped_and_ignores_more_text():
    guard = RepetitionGuard()
    assert guard.feed("0" * 200)
    assert guard.feed("fresh words") and guard.tripped
