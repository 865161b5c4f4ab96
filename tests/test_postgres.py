"""The records store on a real PostgreSQL server: the same commands, chain and hashes as SQLite.

A server is started for the test session (aid: DecisionAid, tests/pgserver.py, Debian's PostgreSQL binaries);
each test gets a database of its own. Records are written through the real CLI and the
library, tampered with through a superuser connection that switches the guards off, and read
back through `pain-sdm records ...`.
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from conftest import ROOT, run_cli
from pgserver import running_server

from engine.errors import PainSdmError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.records.postgres import PostgresStore, redact
from engine.records.store import RecordStore, copy_records, record_evaluation

SCIATICA = ROOT / "examples/sciatica.yaml"
RED_FLAGS = ROOT / "examples/red-flags.yaml"


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    with running_server() as url:
        yield url


def _database_url(server: str, name: str, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(server)
    who = user or parts.username or "postgres"
    auth = f"{who}:{password}@" if password else f"{who}@"
    return urlunsplit((parts.scheme, f"{auth}{parts.hostname}:{parts.port}", f"/{name}", "", ""))


@pytest.fixture
def pg(server: str) -> Iterator[str]:
    """A fresh, empty database on the test server; its superuser URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _database_url(server, name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def superuser(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection as an attacker with the server's superuser role: the guards switched off."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET session_replication_role = replica")  # triggers do not fire
    return conn


def _timeless(text: str) -> str:
    """Output with its times and hashes blanked (the records were made seconds apart)."""
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|[0-9a-f]{64}", "#", text)


def record_three(aid: DecisionAid, db: str | Path) -> None:
    """Three records, stored through the library (the CLI's --record path is tested on its own)."""
    for path in (SCIATICA, RED_FLAGS, SCIATICA):
        answers = aid.read_answers(path)
        record_evaluation(aid, answers, aid.evaluate(answers), db=db, patient_label=f"P-{path.stem}")


# --- The same commands ----------------------------------------------------------------------------


def test_every_records_command_works_on_postgres_as_on_sqlite(aid: DecisionAid, pg: str, tmp_path: Path) -> None:
    sqlite = tmp_path / "records.sqlite3"
    record_three(aid, pg)
    record_three(aid, str(sqlite))
    for args in (["list"], ["show", "2"], ["stats"], ["replay", "1"], ["show", "3", "--format", "json"]):
        on_pg, on_file = run_cli("records", *args, "--db", pg), run_cli("records", *args, "--db", str(sqlite))
        assert on_pg.returncode == on_file.returncode == 0, on_pg.stderr
        if args[0] in ("show", "replay") and "json" not in args:
            assert _timeless(on_pg.stdout) == _timeless(on_file.stdout)
        elif args[0] == "list":
            assert [line.split()[2:] for line in on_pg.stdout.splitlines()[2:]] == [
                line.split()[2:] for line in on_file.stdout.splitlines()[2:]
            ]
        elif args[0] == "stats":
            assert on_pg.stdout.splitlines()[1:] == on_file.stdout.splitlines()[1:]
    verified = run_cli("records", "verify", "--db", pg)
    assert verified.returncode == 0, verified.stderr
    assert "3 records, chain intact" in verified.stdout
    out = tmp_path / "out.jsonl"
    exported = run_cli("records", "export", "-o", str(out), "--db", pg)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, 2, 3]


def test_the_environment_variable_may_name_a_server(pg: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "evaluate", str(SCIATICA), "--record"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PAIN_SDM_DB": pg},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"recorded as record 1 in {redact(pg)}" in done.stderr
    with RecordStore.open(pg, create=False) as store:
        assert isinstance(store, PostgresStore) and store.count() == 1


def test_the_interview_stores_its_record_on_postgres(aid: DecisionAid, pg: str) -> None:
    from prompt_toolkit.input import create_pipe_input
    from test_interview import CLOSE, PipeAsker, answered, example, from_answers, sure

    from engine.interview.walkthrough import Interview

    patient = example("facet-back-pain.yaml")
    script = {**CLOSE, **sure("yes", "yes", "no", "yes"), "notes": ["seen at clinic B"]}
    from rich.console import Console

    with create_pipe_input() as pipe_input:
        asker = PipeAsker(pipe_input, aid, script, from_answers(patient))
        session = answered(aid, patient)
        code = Interview(
            aid, asker, Console(file=io.StringIO(), width=200), session, Path("/tmp") / uuid.uuid4().hex, records_db=pg
        ).run()
    assert code == 0
    with RecordStore.open(pg, create=False) as store:
        assert store.count() == 1 and store.get(1).notes == "seen at clinic B"


def test_a_bad_or_unreachable_server_is_exit_2_with_a_message(server: str) -> None:
    for url, says in (
        ("postgresql://", "give the server"),
        (
            "postgresql://u:secret@127.0.0.1:1/x",
            "cannot connect to the records database postgresql://u:***@127.0.0.1:1/x",
        ),
        ("postgresql://u@127.0.0.1:99999/x", "not a valid PostgreSQL URL"),
    ):
        done = run_cli("records", "verify", "--db", url)
        assert done.returncode == 2, (url, done.stderr)
        assert says in done.stderr
        assert "secret" not in done.stderr and "Traceback" not in done.stderr
    missing = run_cli("records", "list", "--db", server)
    assert missing.returncode == 2 and "no pain-sdm records" in missing.stderr


# --- The same chain and hashes --------------------------------------------------------------------


def test_a_store_copied_between_backends_keeps_every_hash(aid: DecisionAid, pg: str, tmp_path: Path) -> None:
    first, back = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    record_three(aid, str(first))
    done = run_cli("records", "copy", "--from", str(first), "--to", pg)
    assert done.returncode == 0, done.stderr
    assert "copied 3 records" in done.stdout and "both chains intact" in done.stdout
    again = run_cli("records", "copy", "--from", pg, "--to", str(back))
    assert again.returncode == 0, again.stderr
    with RecordStore.open(first, create=False) as a, RecordStore.open(pg) as b, RecordStore.open(back) as c:
        rows = [[(r.id, r.hash, r.prev_hash, r.result) for r in s.iter()] for s in (a, b, c)]
        assert rows[0] == rows[1] == rows[2]
        assert a.head() == b.head() == c.head()


def test_a_copy_carries_on_after_an_interruption_and_refuses_a_foreign_chain(
    aid: DecisionAid, pg: str, tmp_path: Path
) -> None:
    source, other = tmp_path / "a.sqlite3", tmp_path / "other.sqlite3"
    record_three(aid, str(source))
    with RecordStore.open(source, create=False) as src, RecordStore.open(pg) as dst:
        dst.copy_in(row for row in src._chain() if row["id"] == 1)  # as if the first copy stopped there
    done = copy_records(source, pg)
    assert (done.already, done.copied) == (1, 2)
    record_evaluation(aid, aid.read_answers(RED_FLAGS), aid.evaluate(aid.read_answers(RED_FLAGS)), db=other)
    with pytest.raises(PainSdmError, match="not the start of"):
        copy_records(other, pg)
    with pytest.raises(UsageError, match="the same database"):
        copy_records(pg, pg)


def test_a_tampered_source_is_not_copied(aid: DecisionAid, pg: str, tmp_path: Path) -> None:
    record_three(aid, pg)
    with superuser(pg) as conn:
        conn.execute("UPDATE records SET notes = 'added later' WHERE id = 2")
    target = tmp_path / "copy.sqlite3"
    done = run_cli("records", "copy", "--from", pg, "--to", str(target))
    assert done.returncode == 1 and "fails its integrity check" in done.stderr
    assert not target.exists() or RecordStore.open(target).count() == 0


# --- Enforced by the database ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET notes = 'x' WHERE id = 1",
        "DELETE FROM records WHERE id = 3",
        "TRUNCATE records",
        "UPDATE record_heads SET hash = 'x'",
        "DELETE FROM record_heads",
        "TRUNCATE record_heads CASCADE",
    ],
)
def test_the_server_refuses_to_change_or_delete_records(aid: DecisionAid, pg: str, statement: str) -> None:
    record_three(aid, pg)
    with (
        psycopg.connect(pg, autocommit=True) as conn,
        pytest.raises(psycopg.errors.RaiseException, match="append-only"),
    ):
        conn.execute(statement)


def test_the_application_role_may_only_insert_and_select(aid: DecisionAid, pg: str, server: str) -> None:
    """The README's role set-up, run as written: the app can record and read, never change."""
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("<!-- postgres-roles -->")[1].split("```sql")[1].split("```")[0]
    name = urlsplit(pg).path.lstrip("/")
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pain_sdm_owner")
        conn.execute("DROP ROLE IF EXISTS pain_sdm_app")
        conn.execute("DROP ROLE IF EXISTS pain_sdm_reviewer")
        for statement in setup.split(";"):
            if statement.strip():
                conn.execute(statement.replace("DATABASE_NAME", name))
    owner = _database_url(server, name, "pain_sdm_owner", "owner-secret")
    app = _database_url(server, name, "pain_sdm_app", "app-secret")
    reviewer = _database_url(server, name, "pain_sdm_reviewer", "reviewer-secret")
    try:
        with RecordStore.open(owner):  # the owner creates the tables once
            pass
        record_three(aid, app)
        assert run_cli("records", "verify", "--db", reviewer).returncode == 0
        assert run_cli("records", "stats", "--db", reviewer).returncode == 0
        with psycopg.connect(app, autocommit=True) as conn:
            for statement in ("UPDATE records SET notes = 'x'", "DELETE FROM records", "DROP TABLE records"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        refused = run_cli("evaluate", str(SCIATICA), "--record", "--db", reviewer)
        assert refused.returncode != 0 and "permission denied" in refused.stderr
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            for role in ("pain_sdm_owner", "pain_sdm_app", "pain_sdm_reviewer"):
                conn.execute(f"DROP OWNED BY {role} CASCADE")
            for role in ("pain_sdm_app", "pain_sdm_reviewer", "pain_sdm_owner"):
                conn.execute(f"DROP ROLE {role}")


TAMPERING = {
    "content edited": ["UPDATE records SET notes = 'rewritten' WHERE id = 2"],
    "a record deleted": ["DELETE FROM records WHERE id = 2"],
    "the last record deleted": ["DELETE FROM records WHERE id = 3"],
    "two records reordered": [
        "UPDATE records SET id = -1 WHERE id = 1",
        "UPDATE records SET id = 1 WHERE id = 2",
        "UPDATE records SET id = 2 WHERE id = -1",
    ],
    "a guard disabled": ["ALTER TABLE records DISABLE TRIGGER records_no_change"],
    "a guard dropped": ["DROP TRIGGER records_no_truncate ON records"],
    "the guard function made a no-op": [
        "CREATE OR REPLACE FUNCTION pain_sdm_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RETURN OLD; END$$"
    ],
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_verify_catches_a_superuser_tampering_with_rows(aid: DecisionAid, pg: str, how: str) -> None:
    record_three(aid, pg)
    with superuser(pg) as conn:
        for statement in TAMPERING[how]:
            conn.execute(statement)
    done = run_cli("records", "verify", "--db", pg)
    assert done.returncode == 1, (how, done.stdout)
    assert "FAILS its integrity check" in done.stderr
    if how == "the last record deleted":  # the head no longer matches: the chain is not extended
        appended = run_cli("evaluate", str(SCIATICA), "--record", "--db", pg)
        assert appended.returncode != 0 and "fails its integrity check" in appended.stderr


# --- Concurrency and crashes ----------------------------------------------------------------------

WRITER = """
import json, sys
sys.path.insert(0, {root!r})
from engine.records.store import NewRecord, RecordStore
data = json.loads(open({record!r}, encoding="utf-8").read())
with RecordStore.open({db!r}) as store:
    for i in range({count}):
        stored = store.append(NewRecord(answers=data["answers"], result=data["result"], notes="writer {n} #" + str(i)))
        print(stored.id, flush=True)
"""


def writer(record: Path, db: str, count: int, n: int) -> subprocess.Popen[str]:
    """A writer process appending `count` records to `db`, printing each committed id."""
    script = WRITER.format(root=str(ROOT), record=str(record), db=db, count=count, n=n)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _record_file(aid: DecisionAid, tmp_path: Path) -> Path:
    answers = aid.read_answers(SCIATICA)
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"answers": answers.model_dump(mode="json"), "result": aid.evaluate(answers).to_json()}))
    return path


def test_writers_in_several_processes_each_get_their_own_place(aid: DecisionAid, pg: str, tmp_path: Path) -> None:
    record = _record_file(aid, tmp_path)
    procs = [writer(record, pg, 40, n) for n in range(4)]
    ids = [int(line) for p in procs for line in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(ids) == list(range(1, 161))
    with RecordStore.open(pg, create=False) as store:
        assert store.verify() == [] and store.count() == 160


def test_a_writer_killed_mid_write_loses_nothing_it_committed(aid: DecisionAid, pg: str, tmp_path: Path) -> None:
    record = _record_file(aid, tmp_path)
    committed: list[int] = []
    for n in range(3):
        proc = writer(record, pg, 10_000, n)
        assert proc.stdout is not None
        start = len(committed)
        for line in proc.stdout:
            committed.append(int(line))
            if len(committed) - start >= 5:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
    with RecordStore.open(pg, create=False) as store:
        assert set(committed) <= {r.id for r in store.iter()}
        assert store.verify() == []


def test_two_first_writers_do_not_both_create_the_tables(aid: DecisionAid, pg: str, tmp_path: Path) -> None:
    record = _record_file(aid, tmp_path)
    procs = [writer(record, pg, 3, n) for n in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _o, e in outs]
    with RecordStore.open(pg, create=False) as store:
        assert store.count() == 9 and store.verify() == []


def test_new_record_on_postgres_via_the_library(aid: DecisionAid, pg: str) -> None:
    answers = aid.read_answers(SCIATICA)
    stored = record_evaluation(aid, answers, aid.evaluate(answers), db=pg, notes="line one\nline two")
    with RecordStore.open(pg, create=False) as store:
        again = store.get(stored.id)
    assert again == stored and again.notes == "line one\nline two"
    with RecordStore.open(pg, create=False) as store, pytest.raises(UsageError, match="no record 9"):
        store.get(9)


def test_the_web_app_stores_and_lists_records_on_postgres(aid: DecisionAid, pg: str, tmp_path: Path) -> None:
    from test_web import example
    from web_client import Visitor, new_visit

    from engine.web.app import WebConfig, create_app

    app = create_app(WebConfig(aid, pg, tmp_path / "visits.sqlite3"))
    clinician = Visitor(app, ("127.0.0.1", 50001))
    vid, _, _ = new_visit(clinician)
    clinician.get(f"/visits/{vid}/question")
    clinician.answer_all(aid, example("sciatica"), action=f"/visits/{vid}")
    assert "Chain intact: 1 record" in clinician.get("/records").text
    with RecordStore.open(pg, create=False) as store:
        assert store.count() == 1 and store.verify() == []


def test_cds_hooks_feedback_is_stored_on_postgres_and_cannot_be_changed(aid: DecisionAid, pg: str) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient
    from test_cds_hooks import cards_for, response_of

    from engine.fhir.cds_hooks import PREFETCH_KEY, SERVICE_ID, cds_router, stored_feedback

    client = TestClient(Starlette(routes=[Mount("", routes=cds_router(aid, pg).routes)]))
    card = cards_for(client, {PREFETCH_KEY: response_of(aid, "sciatica")})[0]
    given = {"feedback": [{"card": card.uuid, "outcome": "accepted", "outcomeTimestamp": "2026-12-02T19:00:00Z"}]}
    assert client.post(f"/cds-services/{SERVICE_ID}/feedback", json=given).status_code == 200
    (row,) = stored_feedback(pg)
    assert (row["card"], row["outcome"], row["rulebook_version"]) == (card.uuid, "accepted", aid.rulebook.version)
    with psycopg.connect(pg, autocommit=True) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("DELETE FROM cds_feedback")
    with RecordStore.open(pg, create=False) as store:
        assert store.verify() == []
