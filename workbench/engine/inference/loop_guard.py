"""A loop guard: notice when a generation has started repeating itself.

Small models fall into loops ("la Femme, la Femme, ...", one sentence of a
story over and over, "1000000000..." inside a JSON string) and then run until
max_tokens. Sampling settings make loops rarer; this guard ends the ones that
still happen. It watches the streamed text, not token ids, so it works for any
backend, and it is cheap: a handful of comparisons per word.

Three signals, each one that ordinary prose does not give:

* **a periodic tail**: the last words are one span repeated back to back
  (`copies` >= 3 covering at least `MIN_PERIODIC_WORDS` words, or a long span
  of `LONG_SPAN_WORDS`+ words twice);
* **a recurring n-gram**: the same `NGRAM` consecutive words seen
  `NGRAM_REPEATS` times anywhere in the answer (loops that drift a little);
* **a periodic run without spaces**: one "word" of `MAX_RUN_CHARS`+ characters
  whose tail repeats a short period ("000000...", "ababab...").
"""

from __future__ import annotations

import re

#: the longest span (in words) whose back-to-back repetition is checked
MAX_PERIOD = 64
#: words a repeated short span must cover before it counts as a loop ("ha ha ha" does not)
MIN_PERIODIC_WORDS = 16
#: a span this long repeated once verbatim, back to back, is already a loop
LONG_SPAN_WORDS = 24
NGRAM = 10
#: an n-gram counts only with this many different words (runs like "?, ?, ?" are left to the period check)
NGRAM_DISTINCT = 4
NGRAM_REPEATS = 4
#: a run of non-space characters this long with a short period is a loop
MAX_RUN_CHARS = 80
MAX_RUN_PERIOD = 16

_WORD = re.compile(r"\S+")


class RepetitionGuard:
    """Feed it the text of a generation as it streams; `feed` returns True once it loops.

    Pure and backend-neutral: the llama.cpp adapter feeds it every delta and
    ends the generation (finish_reason "repetition") when it trips. The text
    already streamed is kept as it is: the copies are on the user's screen,
    and the guard stops by the third one.
    """

    def __init__(self) -> None:
        self._words: list[str] = []
        #: {p: how many trailing words equal the word p places before them}, for p with a run
        self._run: dict[int, int] = {}
        #: {word: its positions among the last MAX_PERIOD words}: the only periods worth checking
        self._recent: dict[str, list[int]] = {}
        self._ngrams: dict[tuple[str, ...], int] = {}
        self._partial = ""  # the word being written (no whitespace after it yet)
        self.tripped = False
        #: what was seen, for logs and tests
        self.reason = ""

    def feed(self, text: str) -> bool:
        """Take the next piece of streamed text; True if the generation is now looping."""
        if self.tripped or not text:
            return self.tripped
        buffer = self._partial + text
        complete = len(buffer)
        while complete and not buffer[complete - 1].isspace():
            complete -= 1
        for word in _WORD.findall(buffer, 0, complete):
            if self._add_word(word):
                return True
        self._partial = buffer[complete:]
        if len(self._partial) >= MAX_RUN_CHARS:
            tail = self._partial[-MAX_RUN_CHARS:]
            for period in range(1, MAX_RUN_PERIOD + 1):
                if tail[period:] == tail[:-period]:
                    return self._trip(f"a run of characters repeating {tail[-period:]!r}")
        return False

    def _add_word(self, word: str) -> bool:
        words = self._words
        position = len(words)
        words.append(word)
        n = position + 1
        # A period p continues its run only if this word equals the one p back:
        # those p are exactly the recent positions of this word (a few, not 64).
        positions = [i for i in self._recent.get(word, ()) if position - i <= MAX_PERIOD]
        run: dict[int, int] = {}
        for i in positions:
            period = position - i
            length = self._run.get(period, 0) + 1
            run[period] = length
            covered = length + period  # words in the periodic tail
            if (covered >= 3 * period and covered >= MIN_PERIODIC_WORDS) or (
                period >= LONG_SPAN_WORDS and length >= period
            ):
                return self._trip(f"a span of {period} words repeated back to back")
        self._run = run
        positions.append(position)
        self._recent[word] = positions
        if n >= NGRAM:
            key = tuple(words[-NGRAM:])
            if len(set(key)) < NGRAM_DISTINCT:
                return False
            seen = self._ngrams.get(key, 0) + 1
            self._ngrams[key] = seen
            if seen >= NGRAM_REPEATS:
                return self._trip(f"the same {NGRAM} words {seen} times")
        return False

    def _trip(self, reason: str) -> bool:
        self.tripped = True
        self.reason = reason
        return True
