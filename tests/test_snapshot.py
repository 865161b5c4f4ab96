"""The snapshot of loaded data (engine/model/snapshot.py): read only when it is what loading would make.

A snapshot is read without validation, so every way it could be wrong is a way it is not read:
another rulebook version, other folders, other code, a damaged file, a file or folder others can write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import CHANGED_TITLE, ROOT, change_a_rule_title, copy_data, run_cli

from engine.evaluation.aid import DecisionAid
from engine.model import knowledge, parse_cache, snapshot

EXAMPLE = ROOT / "examples" / "sciatica.yaml"


def snapshots(cache: Path) -> list[Path]:
    return sorted((cache / parse_cache.PRIVATE).glob("loaded-*.pickle"))


def loads_from_files_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, loading from the data files (not from a snapshot) fails the test."""

    def refuse(*_: object) -> None:
        raise AssertionError("loaded from the files, not from the snapshot")

    monkeypatch.setattr("engine.evaluation.aid.load_knowledge", refuse)


def same_data(a: DecisionAid, b: DecisionAid) -> bool:
    return (a.knowledge, a.questionnaire, a.rulebook, a.values) == (b.knowledge, b.questionnaire, b.rulebook, b.values)


def test_a_second_load_reads_the_snapshot_and_gives_what_loading_gave(
    parse_cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = DecisionAid.load()
    (kept,) = snapshots(parse_cache_folder)
    assert kept.name == f"loaded-{first.rulebook.version}.pickle"
    assert kept.stat().st_mode & 0o077 == 0 and kept.parent.stat().st_mode & 0o077 == 0, "the user's alone"
    loads_from_files_fail(monkeypatch)
    second = DecisionAid.load()
    assert same_data(first, second)
    answers = first.read_answers(EXAMPLE)
    assert second.evaluate(second.read_answers(EXAMPLE)).to_json_text() == first.evaluate(answers).to_json_text()


def test_a_changed_file_or_other_folders_are_loaded_from_the_files(tmp_path: Path, parse_cache_folder: Path) -> None:
    rules, knowledge_dir = copy_data(tmp_path)
    shipped = DecisionAid.load()
    (kept,) = snapshots(parse_cache_folder)
    key = kept.read_bytes().partition(b"\n")[0]
    copied = DecisionAid.load(rules, knowledge_dir)
    assert copied.rulebook.version == shipped.rulebook.version, "the same content in other folders"
    assert same_data(copied, shipped)
    (kept,) = snapshots(parse_cache_folder)
    assert kept.read_bytes().partition(b"\n")[0] != key, "the snapshot of other folders has a key of its own"
    change_a_rule_title(rules)
    changed = DecisionAid.load(rules, knowledge_dir)
    assert changed.rulebook.version != shipped.rulebook.version
    assert CHANGED_TITLE in {r.title for r in changed.rulebook.rules}
    assert [p.name for p in snapshots(parse_cache_folder)] == [f"loaded-{changed.rulebook.version}.pickle"]


def test_a_snapshot_made_by_other_code_is_not_read(parse_cache_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = DecisionAid.load()
    monkeypatch.setattr(snapshot, "model_code", lambda: "other-code")
    calls: list[Path] = []
    real = knowledge.load_knowledge

    def counted(root: Path) -> knowledge.Knowledge:
        calls.append(root)
        return real(root)

    monkeypatch.setattr("engine.evaluation.aid.load_knowledge", counted)
    assert same_data(DecisionAid.load(), first) and len(calls) == 1, "loaded from the files"
    assert same_data(DecisionAid.load(), first) and len(calls) == 1, "then from the new snapshot"


def test_a_damaged_snapshot_is_not_read_and_is_made_again(
    parse_cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = DecisionAid.load()
    (kept,) = snapshots(parse_cache_folder)
    header, _, body = kept.read_bytes().partition(b"\n")
    for damaged in (header + b"\n" + body[:-100], header + b"\n" + body.replace(b"conservative", b"c0nservative", 1)):
        kept.write_bytes(damaged)
        assert snapshot.read_snapshot(first.rulebook.version, json.loads(header)["key"]) is None
        assert same_data(DecisionAid.load(), first)
        again = snapshot.read_snapshot(first.rulebook.version, json.loads(header)["key"])
        assert again == (first.knowledge, first.questionnaire, first.rulebook, first.values), "made again"


def test_a_snapshot_others_could_have_written_is_never_read(
    parse_cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = DecisionAid.load()
    (kept,) = snapshots(parse_cache_folder)
    key = json.loads(kept.read_bytes().partition(b"\n")[0])["key"]
    version = first.rulebook.version
    assert snapshot.read_snapshot(version, key) is not None
    for item, mode in ((kept, 0o620), (kept, 0o602), (kept.parent, 0o770), (kept.parent, 0o707)):
        before = item.stat().st_mode & 0o777
        item.chmod(mode)
        try:
            assert snapshot.read_snapshot(version, key) is None, f"{item.name} with mode {mode:o}"
        finally:
            item.chmod(before)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(kept).st_uid + 1)
    assert snapshot.read_snapshot(version, key) is None, "a file of another user"


def test_no_snapshot_when_the_cache_is_turned_off(monkeypatch: pytest.MonkeyPatch, parse_cache_folder: Path) -> None:
    monkeypatch.setenv("PAIN_SDM_CACHE", "off")
    DecisionAid.load()
    assert not snapshots(parse_cache_folder)


def test_evaluate_gives_the_same_output_from_the_files_and_from_the_snapshot(parse_cache_folder: Path) -> None:
    cold = run_cli("evaluate", str(EXAMPLE), "--format", "json")
    assert snapshots(parse_cache_folder)
    warm = run_cli("evaluate", str(EXAMPLE), "--format", "json")
    text = run_cli("evaluate", str(EXAMPLE))
    assert cold.returncode == warm.returncode == text.returncode == 0
    assert warm.stdout == cold.stdout and "OPTIONS TO DISCUSS" in text.stdout
