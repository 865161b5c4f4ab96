"""The caches of start-up (parsed data files, the compiled joint ruleset): never trusted beyond what they vouch for."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from conftest import CHANGED_TITLE, ROOT, change_a_rule_title, copy_data, run_cli

from engine.evaluation import compiler
from engine.evaluation.aid import DecisionAid
from engine.model import parse_cache, snapshot

EXAMPLE = ROOT / "examples" / "sciatica.yaml"


@pytest.fixture(autouse=True)
def no_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loads here parse their files (or read them from this cache), not a snapshot (tests/test_snapshot.py)."""
    monkeypatch.setattr(snapshot, "read_snapshot", lambda *_: None)


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("parsed-*.json"))


def test_a_second_load_reads_the_cache_and_gives_the_same_rulebook(parse_cache_folder: Path) -> None:
    first = DecisionAid.load()
    (stored,) = cache_files(parse_cache_folder)
    assert stored.name == f"parsed-{first.rulebook.version}.json"
    second = DecisionAid.load()
    assert second.rulebook == first.rulebook
    assert second.knowledge == first.knowledge
    assert second.questionnaire.questions == first.questionnaire.questions


def test_a_changed_rule_file_is_parsed_again_not_taken_from_the_cache(tmp_path: Path, parse_cache_folder: Path) -> None:
    rules, knowledge = copy_data(tmp_path)
    before = DecisionAid.load(rules, knowledge)
    change_a_rule_title(rules)
    after = DecisionAid.load(rules, knowledge)
    assert after.rulebook.version != before.rulebook.version
    assert CHANGED_TITLE in {r.title for r in after.rulebook.rules}
    assert [p.name for p in cache_files(parse_cache_folder)] == [f"parsed-{after.rulebook.version}.json"]


def test_a_damaged_or_foreign_cache_file_is_ignored_and_rebuilt(parse_cache_folder: Path) -> None:
    aid = DecisionAid.load()
    (stored,) = cache_files(parse_cache_folder)
    header, _, body = stored.read_bytes().partition(b"\n")
    forged = body.replace(b"conservative", b"c0nservative", 1)
    stored.write_bytes(header + b"\n" + forged)
    assert DecisionAid.load().rulebook == aid.rulebook
    assert stored.read_bytes().partition(b"\n")[2] == body  # rebuilt from the files
    other = json.loads(header)
    other["version"] = "0" * 16
    stored.write_bytes(json.dumps(other).encode() + b"\n" + body)
    assert parse_cache.ParseCache(aid.rulebook.version, parse_cache_folder).entries == {}


def test_dates_and_numbers_come_back_as_yaml_gave_them(tmp_path: Path) -> None:
    cache = parse_cache.ParseCache("v1", tmp_path)
    data = {"last_reviewed": dt.date(2026, 1, 2), "n": [1, 1.0, True, None, "x"]}
    cache.put(b"file", data)
    cache.save()
    assert parse_cache.ParseCache("v1", tmp_path).get(b"file") == data
    assert parse_cache.ParseCache("v1", tmp_path).get(b"other file") is parse_cache.MISSING


def test_the_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAIN_SDM_CACHE", "off")
    assert parse_cache.cache_folder() is None
    DecisionAid.load()
    assert not list(tmp_path.iterdir())


def test_evaluate_gives_the_same_output_from_a_cold_and_a_warm_cache(parse_cache_folder: Path) -> None:
    cold = run_cli("evaluate", str(EXAMPLE), "--format", "json")
    assert cache_files(parse_cache_folder)
    warm = run_cli("evaluate", str(EXAMPLE), "--format", "json")
    assert cold.returncode == warm.returncode == 0
    assert warm.stdout == cold.stdout


def joint_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("joint-*.json"))


def compiled_only_from_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, compiling the joint ruleset (not reading it from the cache) fails the test."""

    def refuse(*_: object) -> None:
        raise AssertionError("compiled again, not read from the cache")

    monkeypatch.setattr(compiler, "joint_ruleset", refuse)


def test_the_joint_ruleset_read_from_the_cache_is_the_one_compiled(
    aid: DecisionAid, parse_cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = compiler.compile_joint(aid.rulebook, aid.questionnaire)
    assert [p.name for p in joint_files(parse_cache_folder)] == [f"joint-{aid.rulebook.version}.json"]
    assert compiled == compiler.joint_ruleset(aid.rulebook, aid.questionnaire)
    compiled_only_from_cache(monkeypatch)
    cached = compiler.compile_joint(aid.rulebook, aid.questionnaire)
    assert cached == compiled
    assert list(cached.definition) == list(compiled.definition)  # durable registers rules in this order


def test_a_rulebook_of_another_version_gets_its_own_joint_ruleset_not_the_cached_one(
    aid: DecisionAid, parse_cache_folder: Path
) -> None:
    """A changed file is another rulebook version (see the parsed-data tests above): here, a changed threshold."""
    old = compiler.compile_joint(aid.rulebook, aid.questionnaire)
    weeks = aid.rulebook.parameters["esi_min_pain_weeks"]
    changed = aid.rulebook.model_copy(
        update={
            "version": "0" * 16,
            "parameters": {**aid.rulebook.parameters, weeks.id: weeks.model_copy(update={"default": 5})},
        }
    )
    new = compiler.compile_joint(changed, aid.questionnaire)
    assert new.parameters["esi_min_pain_weeks"] == 5 and new.definition != old.definition
    assert [p.name for p in joint_files(parse_cache_folder)] == [f"joint-{'0' * 16}.json"]


def test_a_damaged_joint_ruleset_or_one_made_by_other_code_is_compiled_again(
    aid: DecisionAid, parse_cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = compiler.compile_joint(aid.rulebook, aid.questionnaire)
    (stored,) = joint_files(parse_cache_folder)
    header, _, body = stored.read_bytes().partition(b"\n")
    stored.write_bytes(header + b"\n" + body.replace(b'"pri":', b'"pri":1', 1))  # a priority changed, digest kept
    assert compiler.compile_joint(aid.rulebook, aid.questionnaire) == compiled
    assert stored.read_bytes().partition(b"\n")[2] == body  # compiled again and rewritten
    monkeypatch.setattr(compiler, "code_version", lambda: "another-compiler")
    assert compiler.compile_joint(aid.rulebook, aid.questionnaire) == compiled
    assert json.loads(stored.read_bytes().partition(b"\n")[0])["code"] == "another-compiler"


def test_the_code_version_changes_with_the_compiler_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    here = Path(compiler.__file__).resolve()
    fake = tmp_path / "evaluation" / "compiler.py"
    shutil.copytree(here.parent, fake.parent)
    shutil.copytree(here.parent.parent / "model", tmp_path / "model")
    compiler.code_version.cache_clear()
    monkeypatch.setattr(compiler, "__file__", str(fake))
    try:
        same = compiler.code_version()
        compiler.code_version.cache_clear()
        (tmp_path / "model" / "conditions.py").write_text("# changed\n", encoding="utf-8")
        changed = compiler.code_version()
    finally:
        compiler.code_version.cache_clear()
    assert same is not None and changed is not None and same != changed
