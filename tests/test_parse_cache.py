"""The parsed-data cache: start-up reads JSON instead of YAML, and never trusts what it cannot vouch for."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from engine.evaluation.aid import DecisionAid
from engine.model import parse_cache

EXAMPLE = ROOT / "examples" / "sciatica.yaml"


def copy_data(tmp_path: Path) -> tuple[Path, Path]:
    rules, knowledge = tmp_path / "rules", tmp_path / "knowledge"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(ROOT / "knowledge", knowledge)
    return rules, knowledge


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
    path = next(p for p in sorted(rules.rglob("*.yaml")) if "title:" in p.read_text(encoding="utf-8"))
    text = path.read_text(encoding="utf-8")
    old_title = next(line for line in text.splitlines() if line.strip().startswith("title:"))
    path.write_text(text.replace(old_title, old_title.split("title:")[0] + "title: A changed title", 1), "utf-8")
    after = DecisionAid.load(rules, knowledge)
    assert after.rulebook.version != before.rulebook.version
    assert "A changed title" in {r.title for r in after.rulebook.rules}
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
