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
        #: _run[p] = how many trailing words equal the word p places before them
        self._run = [0] * (MAX_PERIOD + 1)
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
        words.append(word)
        n = len(words)
        run = self._run
        for period in range(1, min(MAX_PERIOD, n - 1) + 1):
            if words[-1] == words[-1 - period]:
                run[period] += 1
                covered = run[period] + period  # words in the periodic tail
                if (covered >= 3 * period and covered >= MIN_PERIODIC_WORDS) or (
                    period >= LONG_SPAN_WORDS and run[period] >= period
                ):
                    return self._trip(f"a span of {period} words repeated back to back")
            else:
                run[period] = 0
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
