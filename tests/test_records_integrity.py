"""Issue 13 §4 and §5: the records store fails with a message, never a traceback, writes nothing on a
failure, and its integrity checks check what they claim (definitions, the whole chain, RFC 8785).

Each test reproduces one defect; it failed before the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from conftest import EXAMPLES, ROOT, run_cli
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.errors import UsageError
from engine.evaluation.aid import DecisionAid
from engine.records import store as records
from engine.records.store import GENESIS, RecordStore, record_evaluation, record_hash

SCIATICA = ROOT / "examples" / "sciatica.yaml"


@pytest.fixture
def stored(aid: DecisionAid, tmp_path: Path) -> Path:
    """A records database with one record for each of the first three example patients."""
    db = tmp_path / "records.sqlite3"
    for example in EXAMPLES[:3]:
        answers = aid.read_answers(example)
        record_evaluation(aid, answers, aid.evaluate(answers), db=db)
    return db


def attacker(db: Path, *statements: str) -> None:
    """Change the file as someone with write access would, guards dropped and put back."""
    conn = sqlite3.connect(db)
    guards = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("DROP TRIGGER records_no_delete")
    for statement in statements:
        conn.execute(statement)
    for (sql,) in guards:
        conn.execute(sql)
    conn.commit()
    conn.close()


def no_traceback(done: subprocess.CompletedProcess[str], code: int) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("pain-sdm: "), done.stderr


# --- 4. exit 2 with a message, never a traceback ---------------------------------------------------


def test_a_corrupted_page_is_a_message_for_every_records_command(stored: Path, tmp_path: Path) -> None:
    size = stored.stat().st_size
    with stored.open("r+b") as handle:
        handle.seek(4096)  # page 2 on: the records table
        handle.write(os.urandom(size - 4096))
    for command in (["list"], ["stats"], ["show", "1"], ["export", "-o", str(tmp_path / "out.jsonl")]):
        done = run_cli("records", *command, "--db", str(stored))
        assert done.returncode in (1, 2), (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
    done = run_cli("records", "verify", "--db", str(stored))
    no_traceback(done, 2)
    assert "is damaged" in done.stderr


def test_a_damaged_json_column_is_a_message_for_list_and_stats(stored: Path) -> None:
    attacker(stored, "UPDATE records SET result = '{\"options\": [' WHERE id = 2")
    for command in (["list"], ["stats"]):
        no_traceback(run_cli("records", *command, "--db", str(stored)), 2)
    done = run_cli("records", "verify", "--db", str(stored))
    no_traceback(done, 1)
    assert "record 2: its content does not match its hash" in done.stderr


def test_export_of_a_damaged_database_writes_every_record_with_the_warning(stored: Path, tmp_path: Path) -> None:
    attacker(stored, "UPDATE records SET result = '{\"options\": [' WHERE id = 2")
    out = tmp_path / "records.jsonl"
    done = run_cli("records", "export", "-o", str(out), "--db", str(stored))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "WARNING: record 2" in done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3]
    assert lines[1]["damaged"] == ["result"] and lines[1]["result"] == '{"options": ['


@pytest.mark.parametrize(
    "args",
    [
        ["show", "9223372036854775808"],
        ["replay", str(2**70)],
        ["list", "--limit", str(2**70)],
        ["list", "--since", "0001-01-01T00:00+01:00"],
        ["list", "--until", "9999-12-31T23:00-05:00"],
    ],
)
def test_numbers_and_dates_past_the_limits_are_a_usage_error(stored: Path, args: list[str]) -> None:
    done = run_cli("records", *args, "--db", str(stored))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


def run_bytes(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """The CLI with raw bytes on its command line, as a terminal in another encoding sends them."""
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, timeout=120, cwd=ROOT)


def test_a_label_or_name_that_is_not_utf8_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    out, db = tmp_path / "out.json", tmp_path / "records.sqlite3"
    done = run_bytes("evaluate", str(SCIATICA), "-o", str(out), "--record", "--db", str(db), "--patient-label", b"\xff")
    assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
    assert b"not UTF-8" in done.stderr
    summary = tmp_path / "summary.md"
    done = run_bytes("summary", str(SCIATICA), "-o", str(summary), "-f", "md", "--clinician", b"Dr \xe9")
    assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_control_character_in_the_answers_label_writes_no_output(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    text = SCIATICA.read_text()
    label = next(line for line in text.splitlines() if line.startswith("patient_label:"))
    answers.write_text(text.replace(label, 'patient_label: "AB\\u0007"'))
    out, db = tmp_path / "out.json", tmp_path / "records.sqlite3"
    done = run_cli("evaluate", str(answers), "-o", str(out), "--record", "--db", str(db))
    no_traceback(done, 2)
    assert "control characters" in done.stderr
    assert not out.exists() and not db.exists()


def test_a_dangling_db_symlink_writes_no_output(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite3"
    db.symlink_to(tmp_path / "gone" / "records.sqlite3")
    out = tmp_path / "out.json"
    done = run_cli("evaluate", str(SCIATICA), "-o", str(out), "--record", "--db", str(db))
    no_traceback(done, 2)
    assert "symbolic link" in done.stderr
    assert not out.exists()


def test_an_interrupted_first_write_leaves_no_empty_database(
    aid: DecisionAid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flaky Ctrl-C test once found a `.db` with no records table: the database is now created whole."""
    db = tmp_path / "records.sqlite3"

    def interrupted(conn: sqlite3.Connection) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(records, "_write_schema", interrupted)
    answers = aid.read_answers(SCIATICA)
    with pytest.raises(KeyboardInterrupt):
        record_evaluation(aid, answers, aid.evaluate(answers), db=db)
    assert list(tmp_path.iterdir()) == []


def test_a_creation_file_left_by_kill_9_is_removed_by_the_next_open(aid: DecisionAid, tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite3"
    left = tmp_path / ".records.sqlite3.999999999.abc123.creating"
    left.write_bytes(b"")
    answers = aid.read_answers(SCIATICA)
    record_evaluation(aid, answers, aid.evaluate(answers), db=db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.sqlite3"]


def test_batch_temporary_file_left_by_kill_9_is_removed_by_the_next_run(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    line = json.dumps({"pain_intensity": 5, "age_years": 50}) + "\n"
    source.write_text(line * 20000)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "evaluate", "--batch", str(source), "-o", str(out)], cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].name.startswith(f".out.jsonl.{proc.pid}.")
    source.write_text(line * 3)
    done = run_cli("evaluate", "--batch", str(source), "-o", str(out), "--force")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_a_writer_still_running_keeps_its_temporary_file(tmp_path: Path) -> None:
    from engine.output import remove_stale_temporaries

    mine = tmp_path / f".out.jsonl.{os.getpid()}.abc.tmp"
    mine.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path / "out.jsonl") == []
    assert mine.exists()


def deny_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file as a reviewer who is not its owner sees it: opening it to write and changing its mode are refused."""
    real_open = os.open

    def open_(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith(".sqlite3") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    def fchmod(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fchmod", fchmod)


def test_someone_elses_0644_database_can_be_read(stored: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored.chmod(0o644)
    deny_writing(monkeypatch)
    with RecordStore.open(stored, create=False) as store:
        assert store.verify() == []
        assert [r.id for r in store.list()] == [1, 2, 3]
        assert store.stats().records == 3


def test_a_hot_journal_beside_a_read_only_copy_is_explained(
    stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy" / "records.sqlite3"
    copy.parent.mkdir()
    writer = sqlite3.connect(stored, isolation_level=None)
    writer.execute("PRAGMA cache_size = 1")  # spill to the file mid-transaction, as a big write does
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DROP TRIGGER records_no_update")
    writer.execute("UPDATE records SET notes = zeroblob(200000)")
    copy.write_bytes(stored.read_bytes())  # a copy taken while the writer was stopped mid-transaction
    journal = stored.with_name(stored.name + "-journal")
    copy.with_name(copy.name + "-journal").write_bytes(journal.read_bytes())
    writer.execute("ROLLBACK")
    writer.close()
    deny_writing(monkeypatch)
    with pytest.raises(UsageError, match="hot rollback journal"):
        RecordStore.open(copy, create=False)


# --- 5. the integrity checks check what they claim ----------------------------------------------


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (
            "CREATE TRIGGER records_no_update BEFORE UPDATE ON records WHEN 0 BEGIN SELECT 1; END",
            "records_no_update was rewritten",
        ),
        (
            "CREATE VIEW option_statuses AS SELECT 1 AS record_id, 'x' AS time, 'y' AS procedure, 'no' AS status",
            "option_statuses was rewritten",
        ),
        ("CREATE TRIGGER extra AFTER INSERT ON records BEGIN SELECT 1; END", "unexpected trigger extra"),
    ],
)
def test_verify_compares_trigger_and_view_definitions(stored: Path, statement: str, named: str) -> None:
    conn = sqlite3.connect(stored)
    kind = "VIEW" if " VIEW " in statement else "TRIGGER"
    name = statement.split()[2]
    if name != "extra":
        conn.execute(f"DROP {kind} {name}")
    conn.execute(statement)
    conn.commit()
    conn.close()
    done = run_cli("records", "verify", "--db", str(stored))
    no_traceback(done, 1)
    assert named in done.stderr


def test_evaluate_record_refuses_a_chain_that_does_not_verify(stored: Path, tmp_path: Path) -> None:
    attacker(stored, "UPDATE records SET decision = 'a decision nobody took' WHERE id = 2")
    out = tmp_path / "out.json"
    done = run_cli("evaluate", str(SCIATICA), "-o", str(out), "--record", "--db", str(stored))
    no_traceback(done, 1)
    assert "fails its integrity check" in done.stderr and "--append-to-damaged-chain" in done.stderr
    assert not out.exists()
    with RecordStore.open(stored, create=False) as store:
        assert store.count() == 3


def test_appending_to_a_damaged_chain_on_purpose_is_recorded(stored: Path) -> None:
    attacker(stored, "UPDATE records SET decision = 'a decision nobody took' WHERE id = 2")
    done = run_cli("evaluate", str(SCIATICA), "--record", "--db", str(stored), "--append-to-damaged-chain")
    assert done.returncode == 0, done.stderr
    assert "recorded as record 4" in done.stderr
    done = run_cli("records", "verify", "--db", str(stored))
    no_traceback(done, 1)
    assert "record 4 was stored at" in done.stderr and "--append-to-damaged-chain" in done.stderr
    assert "record 2: its content does not match its hash" in done.stderr


def test_verify_says_how_to_catch_a_whole_rewrite_and_expect_head_compares(stored: Path) -> None:
    done = run_cli("records", "verify", "--db", str(stored))
    assert done.returncode == 0, done.stderr
    assert "--expect-head" in done.stdout and "rewrite the whole chain" in done.stdout
    with RecordStore.open(stored, create=False) as store:
        head = store.head()[1]
    done = run_cli("records", "verify", "--db", str(stored), "--expect-head", head)
    assert done.returncode == 0 and "matches" in done.stdout, done.stderr
    done = run_cli("records", "verify", "--db", str(stored), "--expect-head", "0" * 64)
    no_traceback(done, 1)
    assert f"the head hash is {head}" in done.stderr


def test_record_hashes_are_sha256_of_rfc8785_canonical_json(stored: Path) -> None:
    conn = sqlite3.connect(stored)
    conn.row_factory = sqlite3.Row
    prev = GENESIS
    for row in conn.execute("SELECT * FROM records ORDER BY id"):
        body = {k: row[k] for k in row.keys() if k != "hash"}
        assert hashlib.sha256(rfc8785.dumps(body)).hexdigest() == row["hash"]
        assert row["prev_hash"] == prev
        prev = row["hash"]
    conn.close()


def test_records_hashed_before_rfc8785_still_verify_and_new_ones_use_it(aid: DecisionAid, tmp_path: Path) -> None:
    """A database written before the hash scheme changed (scheme 1: the module's own canonical JSON)."""
    db = tmp_path / "old.sqlite3"
    answers = aid.read_answers(SCIATICA)
    new = records.prepare_record(aid, answers, aid.evaluate(answers), patient_label="Ü-1 «é» 😀")
    with RecordStore.open(db) as store:
        prev = GENESIS
        for rid in (1, 2):
            content = new.columns()
            digest = record_hash(rid, content, prev, scheme=1)
            store.conn.execute(records._INSERT, {"id": rid, **content, "prev_hash": prev, "hash": digest})
            prev = digest
        store.conn.execute("UPDATE meta SET value = ? WHERE key = 'head'", (records.canonical([2, prev]),))
        assert store.verify() == []
        third = store.append(new)
        assert third.hash == record_hash(3, new.columns() | {"time": third.time}, prev, scheme=2)
        assert store.verify() == []
    assert run_cli("records", "verify", "--db", str(db)).returncode == 0
    lines = tmp_path / "old.jsonl"
    run_cli("records", "export", "-o", str(lines), "--db", str(db))
    assert all(json.loads(line)["hash_scheme"] in (1, 2) for line in lines.read_text().splitlines())


@settings(max_examples=200, deadline=None)
@given(text=st.text(), rid=st.integers(min_value=1, max_value=2**53 - 1))
def test_any_record_hashed_by_either_scheme_verifies(text: str, rid: int) -> None:
    """RFC 8785 writes numbers as JavaScript does: ids are exact up to 2**53, far beyond any store."""
    content: dict[str, str | None] = dict.fromkeys(records._CONTENT, None) | {"notes": text, "answers": "{}"}
    for scheme in (1, 2):
        try:
            digest = record_hash(rid, content, GENESIS, scheme)
        except UnicodeEncodeError:
            assume(False)  # lone surrogates: never stored (checked_text refuses them)
        assert records.hash_scheme({"id": rid, **content, "prev_hash": GENESIS, "hash": digest}) is not None


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), st.text()), min_size=len(records._CONTENT), max_size=len(records._CONTENT)),
    record_id=st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_a_record_s_hash_is_rfc_8785_whichever_writer_writes_it(
    texts: list[str | None], record_id: int, prev: str
) -> None:
    """The record's object is written by the json module's encoder when RFC 8785 would write the same bytes
    (text with any character, quotes, backslashes and control characters; null; safe integers)."""
    body = {"id": record_id, **dict(zip(records._CONTENT, texts, strict=True)), "prev_hash": prev}
    try:
        expected = rfc8785.dumps(body)
    except rfc8785.CanonicalizationError:  # a lone surrogate: neither writer can write it
        with pytest.raises(UnicodeError):
            records._scheme_bytes(body, records.HASH_SCHEME)
        return
    assert records._scheme_bytes(body, records.HASH_SCHEME) == expected
