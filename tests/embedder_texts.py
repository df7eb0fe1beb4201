"""A deterministic, varied sample of texts for comparing two embedders.

Used by tests/integration/test_lean_embedder.py (120 texts) and
benchmarks/embedder.py (1,000). Six kinds in turn: a sentence and a paragraph
of the shipped corpora, a window of over 256 tokens (which both embedders must
truncate alike), a slice of Workbench's own source code, non-English text
(accents, Cyrillic, Greek, Arabic, Hebrew, CJK, Devanagari, Thai, emoji), and
empty-ish or punctuation-only strings.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NON_ENGLISH = [
    "Le café est fermé le dimanche ; où peut-on déjeuner près de la gare ?",
    "Die Straßenbahn fährt über die Brücke, während es regnet.",
    "¿Dónde está la biblioteca? Necesito devolver un libro mañana.",
    "O pão de queijo é uma especialidade mineira muito apreciada.",
    "La riunione è stata rinviata a giovedì pomeriggio.",
    "Het weer in Amsterdam is vandaag erg wisselvallig.",
    "Zażółć gęślą jaźń — to zdanie zawiera wszystkie polskie znaki.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Árvíztűrő tükörfúrógép.",
    "Москва — столица России, а Санкт-Петербург — её культурная столица.",
    "Київ розташований на берегах Дніпра.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "القاهرة هي عاصمة مصر وأكبر مدنها.",
    "ירושלים היא עיר עתיקה מאוד.",
    "東京は日本の首都です。人口は約千四百万人です。",
    "北京是中华人民共和国的首都，也是政治和文化中心。",
    "서울은 대한민국의 수도이며 가장 큰 도시이다.",
    "नई दिल्ली भारत की राजधानी है।",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "Hà Nội là thủ đô của Việt Nam.",
    "İstanbul, Türkiye'nin en kalabalık şehridir.",
    "Reykjavík er höfuðborg Íslands.",
    "Helsinki on Suomen pääkaupunki ja suurin kaupunki.",
    "Ang Maynila ay ang kabisera ng Pilipinas.",
    "Nairobi ni mji mkuu wa Kenya.",
    "Ночь, улица, фонарь, аптека 🌙💡",
    "naïve café résumé coöperate façade jalapeño",
    "Ünïcödé ẗëẍẗ wïẗḧ ṁäṅÿ ḋïäċṙïẗïċṡ",
    "🙂🚀🔥 emoji only 👍🏽👩‍💻🇫🇷",
    "数学：∑_{i=1}^{n} i = n(n+1)/2，证明见附录。",
]

ODD = [
    "",
    " ",
    "\n\n\t",
    ".",
    "...",
    "?!?!",
    "!!!",
    "— – -",
    "###",
    "()[]{}<>",
    "@#$%^&*",
    "''\"\"``",
    "1234567890",
    "3.14159",
    "a",
    "I",
    "ok",
    "[CLS] [SEP] [PAD] [MASK]",
    "http://example.com/path?a=1&b=two#frag",
    "user@example.org",
    "x" * 300,
    "ab" * 120,
    "🙂",
    "\u200b\u200b",
    "====  ----  ____",
    "/// TODO: ???",
    "«»„“”‚‘’",
    "§ ¶ † ‡ • …",
]


def _corpus_texts() -> list[str]:
    files = sorted((ROOT / "data" / "corpus").glob("*/*.*"))
    return [p.read_text(encoding="utf-8") for p in files if p.suffix in (".md", ".txt")]


def _code_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((ROOT / "workbench" / "engine").rglob("*.py"))]


def varied_texts(n: int, seed: int = 16) -> list[str]:
    """`n` texts, the same ones for the same (n, seed), cycling through six kinds."""
    rng = random.Random(seed)
    docs = _corpus_texts()
    paragraphs = [p.strip() for d in docs for p in re.split(r"\n\s*\n", d) if len(p.strip()) > 40]
    sentences = [s.strip() for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s.strip()) > 10]
    code = _code_texts()
    texts: list[str] = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            text = rng.choice(sentences)
        elif kind == 1:
            text = rng.choice(paragraphs)
        elif kind == 2:  # over 256 tokens: 2,000-6,000 characters of a corpus file or two
            joined = "\n\n".join(rng.sample(docs, 2))
            start = rng.randrange(0, max(1, len(joined) - 6000))
            text = joined[start : start + rng.randint(2000, 6000)]
        elif kind == 3:
            source = rng.choice(code)
            start = rng.randrange(0, max(1, len(source) - 200))
            text = source[start : start + rng.choice([80, 200, 600, 1500, 4000])]
        elif kind == 4:
            text = " ".join(rng.sample(NON_ENGLISH, rng.randint(1, 3)))
        else:
            text = rng.choice(ODD) if rng.random() < 0.6 else " ".join(rng.sample(ODD, rng.randint(2, 4)))
        texts.append(text)
    return texts
