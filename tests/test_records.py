"""The records store: append-only, hash-chained, private, crash-safe, reproducible.

Records are written through the library (`record_evaluation`) and through the real CLI
(`evaluate --record`), tampered with through raw sqlite3 as an attacker would, and read
back through `pain-sdm records ...`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli

from engine.errors import PainSdmError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.interview.session import SureResult
from engine.records.store import (
    GENESIS,
    NewRecord,
    RecordStore,
    canonical,
    default_path,
    parse_time,
    parse_window,
    record_evaluation,
    record_hash,
    replay,
)

SCIATICA = ROOT / "examples/sciatica.yaml"
RED_FLAGS = ROOT / "examples/red-flags.yaml"


def evaluated(aid: DecisionAid, path: Path, profile: str | None = None) -> tuple[Any, Any]:
    answers = aid.read_answers(path)
    return answers, aid.evaluate(answers, profile)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "records.sqlite3"


@pytest.fixture
def filled(aid: DecisionAid, db: Path) -> Path:
    """A database with one record per example patient."""
    for example in EXAMPLES:
        record_evaluation(aid, *evaluated(aid, example), db=db)
    return db


def raw(db: Path) -> sqlite3.Connection:
    """The file opened as an attacker would: plain sqlite3, guards dropped."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS records_no_update")
    conn.execute("DROP TRIGGER IF EXISTS records_no_delete")
    return conn


# --- What a record holds -------------------------------------------------------------------------


def test_a_record_holds_the_answers_result_sure_decision_and_notes(aid: DecisionAid, db: Path) -> None:
    answers, result = evaluated(aid, SCIATICA, "uk-nice")
    sure = SureResult(sure=True, understand=True, values=False, support=True)
    stored = record_evaluation(
        aid, answers, result, db=db, patient_label="AB-12", sure=sure, decision="try the injection", notes="line 1\nl2"
    )
    with RecordStore.open(db, create=False) as store:
        back = store.get(stored.id)
    assert back == stored
    assert back.id == 1 and back.prev_hash == GENESIS
    assert back.time.endswith("Z")
    assert back.patient_label == "AB-12"
    assert back.profile == "uk-nice" == result.profile
    assert back.rulebook_version == aid.rulebook.version
    assert back.result == result.to_json()
    assert back.result["trace"] == result.to_json()["trace"]
    assert back.result_model() == result
    assert aid.parse_answers(back.answers) == answers
    assert back.sure == {"sure": True, "understand": True, "values": False, "support": True}
    assert (back.decision, back.notes) == ("try the injection", "line 1\nl2")


def test_the_label_defaults_to_the_answers_own_label_and_nothing_else_is_required(aid: DecisionAid, db: Path) -> None:
    answers, result = evaluated(aid, SCIATICA)
    stored = record_evaluation(aid, answers, result, db=db)
    assert stored.patient_label == answers.patient_label
    bare = aid.parse_answers({})
    unnamed = record_evaluation(aid, bare, aid.evaluate(bare), db=db)
    assert (unnamed.patient_label, unnamed.sure, unnamed.decision, unnamed.notes) == (None, None, None, None)


def test_a_result_from_another_rulebook_is_refused(aid: DecisionAid, db: Path) -> None:
    answers, result = evaluated(aid, SCIATICA)
    other = result.model_copy(update={"rulebook_version": "0" * 16})
    with pytest.raises(UsageError, match="another rulebook"):
        record_evaluation(aid, answers, other, db=db)


@pytest.mark.parametrize(
    ("field", "value"),
    [("patient_label", "x" * 201), ("notes", "bell\x07"), ("patient_label", 12)],
    ids=["label_too_long", "control_character", "label_not_text"],
)
def test_bad_label_or_notes_are_refused_and_nothing_is_stored(
    aid: DecisionAid, filled: Path, field: str, value: Any
) -> None:
    answers, result = evaluated(aid, SCIATICA)
    with pytest.raises(UsageError):
        record_evaluation(aid, answers, result, db=filled, **{field: value})
    with RecordStore.open(filled, create=False) as store:
        assert store.count() == len(EXAMPLES) and store.verify() == []


# --- Where the file lives, and who can read it ---------------------------------------------------


def test_the_default_database_is_in_the_user_data_directory_or_names_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from platformdirs import user_data_dir

    monkeypatch.delenv("PAIN_SDM_DB", raising=False)
    assert default_path() == Path(user_data_dir("pain-sdm")) / "records.sqlite3"
    monkeypatch.setenv("PAIN_SDM_DB", str(tmp_path / "elsewhere.db"))
    assert default_path() == tmp_path / "elsewhere.db"


def test_the_cli_stores_where_the_environment_variable_says(tmp_path: Path) -> None:
    env_db = tmp_path / "env.sqlite3"
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "evaluate", str(SCIATICA), "--record"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PAIN_SDM_DB": str(env_db)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"recorded as record 1 in {env_db}" in done.stderr
    with RecordStore.open(env_db, create=False) as store:
        assert store.count() == 1


def test_a_folder_that_cannot_be_made_for_the_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "evaluate", str(SCIATICA), "--record"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PAIN_SDM_DB": str(blocker / "sub" / "records.sqlite3")},
        timeout=120,
    )
    assert done.returncode == 2
    assert f"cannot create the folder {blocker / 'sub'} for the records database" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_new_database_is_created_readable_by_its_owner_only(aid: DecisionAid, db: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        record_evaluation(aid, *evaluated(aid, SCIATICA), db=db)
    finally:
        os.umask(old)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_database_with_a_looser_mode_is_tightened_on_open(aid: DecisionAid, filled: Path) -> None:
    filled.chmod(0o644)
    with RecordStore.open(filled, create=False):
        pass
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600


def test_a_read_only_copy_can_be_listed_and_verified(filled: Path) -> None:
    filled.chmod(0o400)
    for command in (["list"], ["verify"]):
        done = run_cli("records", *command, "--db", str(filled))
        assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(filled.stat().st_mode) == 0o400


# --- Append-only and tamper-evident --------------------------------------------------------------


def test_sqlite_itself_refuses_to_change_or_delete_a_record(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE records SET notes = 'changed' WHERE id = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM records WHERE id = 2")
    conn.close()
    assert run_cli("records", "verify", "--db", str(filled)).returncode == 0


def test_verify_passes_an_intact_database_and_prints_its_head(filled: Path) -> None:
    done = run_cli("records", "verify", "--db", str(filled))
    assert done.returncode == 0, done.stderr
    with RecordStore.open(filled, create=False) as store:
        head = store.head()
    assert head[0] == len(EXAMPLES)
    assert f"{len(EXAMPLES)} records, chain intact; head hash {head[1]}" in done.stdout


def tamper_edit(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE records SET result = replace(result, '\"candidate\"', '\"deferred\"') WHERE id = 3")


def tamper_edit_and_rehash(conn: sqlite3.Connection) -> None:
    """An attacker who also recomputes the edited record's own hash."""
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM records WHERE id = 3").fetchone())
    row["decision"] = "a decision nobody took"
    row["hash"] = record_hash(3, row, row["prev_hash"])
    conn.execute("UPDATE records SET decision = :decision, hash = :hash WHERE id = 3", row)


def tamper_delete(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM records WHERE id = 3")


def tamper_delete_last(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM records WHERE id = (SELECT max(id) FROM records)")


def tamper_reorder(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE records SET id = -3 WHERE id = 3")
    conn.execute("UPDATE records SET id = 3 WHERE id = 4")
    conn.execute("UPDATE records SET id = 4 WHERE id = -3")


TAMPERING = {
    "edited": (tamper_edit, "record 3: its content does not match its hash"),
    "edited_and_rehashed": (tamper_edit_and_rehash, "record 4: its link to the record before it is broken"),
    "deleted": (tamper_delete, "record 3 missing before record 4: deleted"),
    "last_deleted": (tamper_delete_last, "deleted from the end"),
    "reordered": (tamper_reorder, "record 3: its content does not match its hash"),
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_verify_names_the_record_that_was_tampered_with(filled: Path, how: str) -> None:
    tamper, message = TAMPERING[how]
    conn = raw(filled)
    tamper(conn)
    conn.commit()
    conn.close()
    done = run_cli("records", "verify", "--db", str(filled))
    assert done.returncode == 1
    assert "FAILS its integrity check" in done.stderr
    assert message in done.stderr
    assert "append-only guards were removed" in done.stderr


@pytest.mark.parametrize(
    ("how", "record"), [("edited", 3), ("edited_and_rehashed", 4), ("deleted", 4), ("reordered", 3)]
)
def test_a_single_record_check_catches_what_touched_that_record(filled: Path, how: str, record: int) -> None:
    """`show` and `replay` check the record they read: its own hash and its link to the one before."""
    with RecordStore.open(filled, create=False) as store:
        assert all(store.check_record(n) == [] for n in range(1, len(EXAMPLES) + 1))
    conn = raw(filled)
    TAMPERING[how][0](conn)
    conn.commit()
    conn.close()
    with RecordStore.open(filled, create=False) as store:
        problems = store.check_record(record)
        assert problems and all(p.startswith(f"record {record}: ") for p in problems)
        assert store.check_record(1) == []


def test_show_replay_and_export_of_a_tampered_database_warn_and_exit_1(filled: Path, tmp_path: Path) -> None:
    """What is shown is still shown (it is evidence), but never as if it were intact."""
    conn = raw(filled)
    tamper_edit(conn)
    conn.commit()
    conn.close()
    for command in ("show", "replay"):
        done = run_cli("records", command, "3", "--db", str(filled))
        assert done.returncode == 1, done.stderr
        assert done.stdout.startswith("record 3")
        assert "WARNING: record 3: its content does not match its hash (edited)" in done.stderr
        assert f"pain-sdm records verify --db {filled}" in done.stderr
    assert run_cli("records", "show", "2", "--db", str(filled)).returncode == 0
    out = tmp_path / "all.jsonl"
    done = run_cli("records", "export", "-o", str(out), "--db", str(filled))
    assert done.returncode == 1
    assert len(out.read_text().splitlines()) == len(EXAMPLES)
    assert "WARNING: record 3: its content does not match its hash (edited)" in done.stderr


def test_verify_reports_removed_guards_even_when_no_record_changed(filled: Path) -> None:
    raw(filled).close()
    done = run_cli("records", "verify", "--db", str(filled))
    assert done.returncode == 1
    assert "records_no_update, records_no_delete" in done.stderr


def test_nothing_is_appended_after_the_last_records_were_removed(aid: DecisionAid, filled: Path) -> None:
    """Appending would chain onto the shortened log and hide the deletion."""
    conn = raw(filled)
    tamper_delete_last(conn)
    conn.commit()
    conn.close()
    with pytest.raises(PainSdmError, match="fails its integrity check"):
        record_evaluation(aid, *evaluated(aid, SCIATICA), db=filled)
    out = filled.parent / "result.txt"
    done = run_cli("evaluate", str(SCIATICA), "--record", "--db", str(filled), "-o", str(out))
    assert done.returncode == 1 and "fails its integrity check" in done.stderr
    assert not out.exists()
    with RecordStore.open(filled, create=False) as store:
        assert store.count() == len(EXAMPLES) - 1


def test_an_exported_line_can_be_checked_against_its_hash_without_the_database(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    done = run_cli("records", "export", "-o", str(out), "--db", str(filled))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == list(range(1, len(EXAMPLES) + 1))
    prev = GENESIS
    for rec in lines:
        content = {k: canonical(rec[k]) if k in ("answers", "result", "sure") else rec[k] for k in rec}
        content["sure"] = None if rec["sure"] is None else content["sure"]
        assert rec["prev_hash"] == prev
        assert record_hash(rec["id"], content, prev) == rec["hash"]
        prev = rec["hash"]


# --- Crash safety -------------------------------------------------------------------------------


def test_writers_at_the_same_time_each_get_their_own_place_in_the_chain(aid: DecisionAid, db: Path) -> None:
    answers, result = evaluated(aid, SCIATICA)
    new = NewRecord(answers=answers.model_dump(mode="json"), result=result.to_json())
    RecordStore.open(db).close()

    def write(n: int) -> list[int]:
        with RecordStore.open(db) as store:
            return [store.append(new).id for _ in range(n)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = [i for chunk in pool.map(write, [15] * 4) for i in chunk]
    assert sorted(ids) == list(range(1, 61))
    with RecordStore.open(db, create=False) as store:
        assert store.verify() == []


def test_writers_that_check_the_chain_first_are_never_refused_by_each_other(aid: DecisionAid, db: Path) -> None:
    """`store_record` verifies the whole chain before it appends: the check and the append are one
    transaction, so a record another writer stores meanwhile never makes the chain look damaged (as
    the web app's evaluation threads store at once). A verify beside them never sees damage either."""
    from engine.records.store import store_record

    answers, result = evaluated(aid, SCIATICA)
    new = NewRecord(answers=answers.model_dump(mode="json"), result=result.to_json())
    store_record(new, db)

    def write(n: int) -> list[int]:
        return [store_record(new, db).id for _ in range(n)]

    def check(n: int) -> list[str]:
        with RecordStore.open(db, create=False) as store:
            return [problem for _ in range(n) for problem in store.verify()]

    with ThreadPoolExecutor(max_workers=6) as pool:
        writes = [pool.submit(write, 10) for _ in range(4)]
        checks = [pool.submit(check, 10) for _ in range(2)]
        ids = sorted(i for w in writes for i in w.result())
        seen = [problem for c in checks for problem in c.result()]
    assert ids == list(range(2, 42)) and seen == []
    with RecordStore.open(db, create=False) as store:
        assert store.verify() == []


WRITER = """
import json, sys
sys.path.insert(0, {root!r})
from engine.records.store import NewRecord, RecordStore
with open({record!r}, encoding="utf-8") as f:
    data = json.load(f)
with RecordStore.open({db!r}) as store:
    n = store.head()[0]
    while True:
        n += 1
        stored = store.append(NewRecord(answers=data["answers"], result=data["result"], notes="note " * n))
        print(stored.id, flush=True)
"""


@pytest.mark.parametrize("after", [2, 30])
def test_a_writer_killed_mid_write_loses_nothing_it_committed(aid: DecisionAid, db: Path, after: int) -> None:
    answers, result = evaluated(aid, SCIATICA)
    record = db.with_suffix(".json")
    record.write_text(json.dumps({"answers": answers.model_dump(mode="json"), "result": result.to_json()}))
    script = WRITER.format(root=str(ROOT), record=str(record), db=str(db))
    committed: list[int] = []
    for _round in range(2):  # a second writer carries on after the first one's crash
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert proc.stdout is not None
        start = len(committed)
        for line in proc.stdout:
            committed.append(int(line))
            if len(committed) - start >= after:
                break
        proc.send_signal(signal.SIGKILL)  # at once: the writer is busy with its next record
        proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
    with RecordStore.open(db, create=False) as store:
        stored = {r.id: r for r in store.iter()}
    assert set(committed) <= set(stored)
    assert all(stored[i].notes == ("note " * i).strip() for i in stored)
    done = run_cli("records", "verify", "--db", str(db))
    assert done.returncode == 0, done.stderr


# --- The evaluate command -------------------------------------------------------------------------


def test_evaluate_record_stores_what_it_showed_and_names_the_record(db: Path) -> None:
    done = run_cli("evaluate", str(SCIATICA), "-f", "json", "--record", "--db", str(db), "--patient-label", "JS")
    assert done.returncode == 0, done.stderr
    assert f"recorded as record 1 in {db}" in done.stderr
    again = run_cli("evaluate", str(RED_FLAGS), "--record", "--db", str(db))
    assert "recorded as record 2" in again.stderr
    shown = run_cli("records", "show", "1", "-f", "json", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["result"] == json.loads(done.stdout)
    assert record["patient_label"] == "JS"


@pytest.mark.parametrize(
    "args",
    [["--db", "x.sqlite3"], ["--patient-label", "JS"]],
    ids=["db_without_record", "label_without_record"],
)
def test_record_options_without_record_are_a_usage_error(args: list[str], tmp_path: Path) -> None:
    done = run_cli("evaluate", str(SCIATICA), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert "add --record" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_evaluate_record_into_a_missing_folder_fails_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = run_cli("evaluate", str(SCIATICA), "-o", str(out), "--record", "--db", str(tmp_path / "no" / "r.db"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert not out.exists()


# --- Reviewers' commands --------------------------------------------------------------------------


def test_list_shows_one_row_per_record(filled: Path) -> None:
    done = run_cli("records", "list", "--db", str(filled))
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[2:]
    assert [int(r.split()[0]) for r in rows] == list(range(1, len(EXAMPLES) + 1))
    last = run_cli("records", "list", "--limit", "2", "--db", str(filled))
    assert [int(r.split()[0]) for r in last.stdout.splitlines()[2:]] == [len(EXAMPLES) - 1, len(EXAMPLES)]


def test_show_gives_answers_statuses_and_rulebook_version(aid: DecisionAid, db: Path) -> None:
    answers, result = evaluated(aid, RED_FLAGS)
    record_evaluation(aid, answers, result, db=db, decision="urgent referral")
    done = run_cli("records", "show", "1", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert f"rulebook version: {aid.rulebook.version}" in done.stdout
    for option in result.options:
        assert f"  {option.procedure}: {option.status} (set by {', '.join(r.rule_id for r in option.reasons)})" in (
            done.stdout
        )
    for qid, value in answers.model_dump(mode="json", exclude_unset=True).items():
        if value != "unknown":
            assert f"  {qid}: {json.dumps(value, ensure_ascii=False)}" in done.stdout
    assert "urgent assessment: YES" in done.stdout
    assert "decision: urgent referral" in done.stdout


def test_stats_count_rule_firings_and_statuses_from_the_stored_traces(aid: DecisionAid, db: Path) -> None:
    results = []
    times = ["2024-01-05T10:00:00Z", "2024-02-01T00:00:00Z", "2024-03-10T12:00:00Z"]
    for i, example in enumerate(EXAMPLES):
        time = times[i % len(times)]
        answers, result = evaluated(aid, example)
        results.append((time, result))
        with RecordStore.open(db) as store:
            store.append(NewRecord(answers=answers.model_dump(mode="json"), result=result.to_json(), time=time))
    done = run_cli("records", "stats", "-f", "json", "--since", "2024-02-01", "--until", "2024-03-10", "--db", str(db))
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    chosen = [r for t, r in results if "2024-02-01" <= t[:10] <= "2024-03-10"]
    assert 0 < stats["records"] == len(chosen) < len(results)
    firings = Counter((f.rule_id, f.holds) for r in chosen for f in r.trace)
    assert {(r["rule_id"], r["holds"]): r["firings"] for r in stats["rules"]} == dict(firings)
    statuses: dict[str, Counter[str]] = {}
    for r in chosen:
        for o in r.options:
            statuses.setdefault(o.procedure, Counter())[o.status] += 1
    assert stats["statuses"] == {p: dict(c) for p, c in statuses.items()}
    assert stats["urgent_assessment"] == sum(r.urgent_assessment for r in chosen)
    text = run_cli("records", "stats", "--db", str(db))
    assert f"{len(results)} records from 2024-01-05T10:00:00Z" in text.stdout
    assert "epidural_steroid_injection" in text.stdout


@pytest.mark.parametrize("when", ["yesterday", "2024-13-01", "01/02/2024"])
def test_a_bad_date_is_a_usage_error(filled: Path, when: str) -> None:
    done = run_cli("records", "stats", "--since", when, "--db", str(filled))
    assert done.returncode == 2
    assert "expected a date such as 2024-05-01" in done.stderr


def test_a_period_that_ends_before_it_starts_is_a_usage_error(filled: Path) -> None:
    """Reversed dates are a typo, not an empty period."""
    for command in ("list", "stats"):
        done = run_cli("records", command, "--since", "2025-02-01", "--until", "2025-01-31", "--db", str(filled))
        assert done.returncode == 2
        assert "--since 2025-02-01 is after --until 2025-01-31" in done.stderr
    assert parse_window("2025-01-31", "2025-01-31") == ("2025-01-31T00:00:00Z", "2025-01-31T23:59:59Z")


def test_times_without_an_offset_are_utc_and_a_date_alone_ends_at_the_end_of_the_day() -> None:
    assert parse_time("2024-05-01") == "2024-05-01T00:00:00Z"
    assert parse_time("2024-05-01", end=True) == "2024-05-01T23:59:59Z"
    assert parse_time("2024-05-01T14:30") == "2024-05-01T14:30:00Z"
    assert parse_time("2024-05-01T14:30+02:00") == "2024-05-01T12:30:00Z"


def test_export_is_json_lines_and_never_overwrites_without_force(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    out.write_text("keep me\n")
    refused = run_cli("records", "export", "-o", str(out), "--db", str(filled))
    assert refused.returncode != 0
    assert "--force" in refused.stderr
    assert out.read_text() == "keep me\n"
    done = run_cli("records", "export", "-o", str(out), "--force", "--db", str(filled))
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(EXAMPLES)} records" in done.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(EXAMPLES)
    assert all(json.loads(line)["format"] == "pain-sdm/record/1" for line in lines)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "command",
    [["list"], ["show", "1"], ["stats"], ["verify"], ["replay", "1"], ["export", "-o", "out.jsonl"]],
    ids=lambda c: c[0],
)
def test_reading_a_missing_database_is_a_clear_error_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "none.sqlite3"
    done = run_cli("records", *command, "--db", str(missing), cwd=tmp_path)
    assert done.returncode == 2
    assert f"no records database at {missing}" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["text", "other_sqlite", "directory"])
def test_a_file_that_is_not_a_records_database_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing.db"
    if kind == "text":
        path.write_text("hello, this is not SQLite\n" * 100)
    elif kind == "other_sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE patients (name TEXT)")
        conn.commit()
        conn.close()
    else:
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None
    out = tmp_path / "result.txt"
    for args in (
        ["records", "list", "--db", str(path)],
        ["evaluate", str(SCIATICA), "--record", "--db", str(path), "-o", str(out)],
    ):
        done = run_cli(*args)
        assert done.returncode == 2, done.stderr
        assert str(path) in done.stderr
    assert not out.exists()  # checked before the result is written
    if before is not None:
        assert path.read_bytes() == before


def test_show_or_replay_of_a_record_that_does_not_exist(filled: Path) -> None:
    for command in ("show", "replay"):
        done = run_cli("records", command, "999", "--db", str(filled))
        assert done.returncode == 2
        assert f"no record 999 in {filled}" in done.stderr


# --- Reproducibility -----------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_re_evaluating_a_record_with_the_same_rulebook_gives_an_identical_result(
    aid: DecisionAid, db: Path, example: Path
) -> None:
    answers, result = evaluated(aid, example)
    record_evaluation(aid, answers, result, db=db)
    with RecordStore.open(db, create=False) as store:
        record = store.get(1)
    again = aid.evaluate(aid.parse_answers(record.answers), record.profile)
    assert again.to_json() == record.result
    assert replay(aid, record).identical


def test_replay_with_the_same_rulebook_says_the_result_is_identical(db: Path) -> None:
    assert run_cli("evaluate", str(SCIATICA), "--record", "--db", str(db)).returncode == 0
    done = run_cli("records", "replay", "1", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "(the same as when stored)" in done.stdout
    assert "the result is identical to the stored one" in done.stdout
    assert "CHANGED" not in done.stdout


def test_replay_with_another_rulebook_shows_each_status_that_changes(
    aid: DecisionAid, db: Path, tmp_path: Path
) -> None:
    answers, result = evaluated(aid, SCIATICA)
    record_evaluation(aid, answers, result, db=db)
    opened = next(o for o in result.options if o.procedure != "conservative_care" and o.status == "candidate")
    rule_id = opened.reasons[0].rule_id
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    for path in rules.glob("*.yaml"):  # retire the rule that opened the option
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for rule in data.get("rules", []) if isinstance(data, dict) else []:
            if rule["id"] == rule_id:
                rule["status"] = "retired"
                path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    done = run_cli("records", "replay", "1", "--db", str(db), "--rules", str(rules))
    assert done.returncode == 0, done.stderr
    assert "now (differs)" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith(opened.procedure + " "))
    assert line.split()[1] == "candidate"
    assert line.split()[2] != "candidate"
    assert line.split()[3] == "CHANGED"
    gone = next(x for x in done.stdout.splitlines() if x.startswith("rules that fired only when stored: "))
    assert rule_id in gone.split(": ", 1)[1].split(", ")
    assert f"\n{opened.procedure}: candidate (set by {rule_id}) -> {line.split()[2]} (" in done.stdout


def test_replay_names_the_thresholds_that_differ(aid: DecisionAid, db: Path, tmp_path: Path) -> None:
    answers, result = evaluated(aid, SCIATICA)
    record_evaluation(aid, answers, result, db=db)
    pid, value = next((k, v) for f in result.trace for k, v in f.parameters.items())
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    data = yaml.safe_load((rules / "parameters.yaml").read_text(encoding="utf-8"))
    param = next(p for p in data["parameters"] if p["id"] == pid)
    param["default"] = value + 1
    param["profiles"] = {}
    (rules / "parameters.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    done = run_cli("records", "replay", "1", "--db", str(db), "--rules", str(rules))
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^thresholds that differ: .*\b{pid} {value:g} -> {value + 1:g}\b", done.stdout, re.M)


def test_replay_under_a_profile_the_rulebook_lacks_is_a_clear_error(aid: DecisionAid, db: Path) -> None:
    record_evaluation(aid, *evaluated(aid, SCIATICA), db=db)
    with RecordStore.open(db, create=False) as store:
        record = dataclasses.replace(store.get(1), profile="mars")
    with pytest.raises(UsageError, match="record 1 was evaluated under profile `mars`, which this rulebook does not"):
        replay(aid, record)
