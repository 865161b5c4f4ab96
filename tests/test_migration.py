"""Answers in an older answers schema keep working: migrated on read, with a note of what was mapped.

Schema 1 (before issue 12) had one antiplatelet choice and pain duration only in months; the
fixture answers-schema-1.yaml is such a file (a copy of an example as it was then).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from engine.errors import AnswersError
from engine.evaluation.aid import DecisionAid
from engine.model.migration import ANSWERS_VERSION, migrate
from engine.records.store import NewRecord, RecordStore

ROOT = Path(__file__).resolve().parent.parent
OLD = ROOT / "tests" / "fixtures" / "answers-schema-1.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_an_answers_file_in_schema_1_still_evaluates_with_a_migration_note() -> None:
    done = run_cli("evaluate", str(OLD), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "older answers schema" in done.stderr
    assert "antiplatelet: 'aspirin' read as the list ['aspirin']" in done.stderr
    assert "pain_duration_months: 1.5 read as pain_duration_weeks: 6" in done.stderr


def test_the_migrated_answers_mean_what_the_old_ones_said(aid: DecisionAid) -> None:
    notes: list[str] = []
    answers = aid.parse_answers(yaml.safe_load(OLD.read_text()), str(OLD), notes).model_dump()
    assert answers["antiplatelet"] == ["aspirin"]
    assert (answers["pain_duration_unit"], answers["pain_duration_weeks"]) == ("weeks", 6)
    assert answers["pain_duration_months"] == "unknown"
    assert len(notes) == 2
    result = aid.evaluate(aid.parse_answers(answers), compare_profiles=False)
    assert result.option("facet_joint_injection").status == "after_prerequisite"  # 6 weeks is not yet chronic


def test_an_unknown_duration_unit_is_the_same_as_none() -> None:
    """Three-valued truth: "unknown" means not answered, so a CSV's empty cell and `unknown` read alike."""
    for answers in ({"pain_duration_months": 9}, {"pain_duration_months": 9, "pain_duration_unit": "unknown"}):
        assert migrate(answers).answers["pain_duration_unit"] == "months"
    assert migrate({"pain_duration_months": 9, "pain_duration_unit": "weeks"}).notes == []


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_answers_in_todays_schema_are_read_unchanged(example: Path) -> None:
    data = yaml.safe_load(example.read_text())
    assert data["answers_version"] == ANSWERS_VERSION
    migration = migrate(data)
    assert migration.notes == []
    assert migration.answers == {k: v for k, v in data.items() if k != "answers_version"}


def test_a_stored_record_with_todays_answers_needs_no_mapping(aid: DecisionAid) -> None:
    example = yaml.safe_load((ROOT / "examples" / "sciatica.yaml").read_text())
    stored = aid.parse_answers(example).model_dump(mode="json", exclude_unset=True)
    assert migrate(stored).notes == []


@pytest.mark.parametrize(
    ("version", "message"),
    [(ANSWERS_VERSION + 1, "is not known"), ("2", "must be a whole number"), (0, "is not known")],
)
def test_an_unknown_answers_version_is_refused(aid: DecisionAid, version: object, message: str) -> None:
    with pytest.raises(AnswersError, match=message):
        aid.parse_answers({"answers_version": version})


def test_records_replay_of_a_record_stored_in_schema_1_still_runs(aid: DecisionAid, tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite3"
    old_answers = yaml.safe_load(OLD.read_text())
    result = aid.evaluate(aid.parse_answers(dict(old_answers)))
    with RecordStore.open(db) as store:
        stored = store.append(NewRecord(answers=old_answers, result=result.to_json(), patient_label="old"))
    done = run_cli("records", "replay", str(stored.id), "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "answers stored in an older schema: antiplatelet: 'aspirin' read as the list ['aspirin']" in done.stdout
    assert "(the same as when stored)" in done.stdout
