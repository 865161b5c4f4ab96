"""Session records: an append-only, hash-chained SQLite store of evaluations.

Every evaluation a clinician chooses to keep (from the interview, or `evaluate --record`)
becomes one record: the time (UTC), an optional patient label, the answers, the profile,
the rulebook version, the whole result (its trace included), the SURE result, and the
clinician's decision and notes where they were entered.

Integrity:

- Records are only ever appended. There is no update or delete API, and SQLite triggers
  refuse UPDATE and DELETE on the records table as an extra guard.
- Each record carries the hash of the record before it and its own hash: SHA-256 over a
  canonical JSON object of every content column (the stored text, byte for byte), its id
  and the previous hash. A `meta` row holds the head (the last id and hash), written in the
  same transaction as the record. `RecordStore.verify` recomputes the chain and names every
  edited, deleted, inserted or reordered record, a removed tail, and missing guards.
- Writes are transactions (BEGIN IMMEDIATE ... COMMIT, synchronous=FULL): a writer killed
  at any moment leaves every committed record intact.
- The database file is created with mode 0600; a looser mode on an existing file is tightened.

Anyone who can write the file can still rewrite the whole chain and its head consistently;
`pain-sdm records verify` prints the head hash so it can be noted somewhere else (a ticket,
a paper log) and compared later.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import hashlib
import json
import os
import sqlite3
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from engine.errors import OutputError, PainSdmError, UsageError
from engine.model.status import Status

if TYPE_CHECKING:
    from engine.evaluation.aid import DecisionAid
    from engine.evaluation.result import Result

FORMAT = "pain-sdm/records/1"
URL_SCHEMES = ("postgresql://", "postgres://")
RECORD_FORMAT = "pain-sdm/record/1"
GENESIS = "0" * 64
ENV_VAR = "PAIN_SDM_DB"
DAMAGE_NOTES = "appended_to_damaged_chain"
"""Meta entry: the records stored on purpose (`--append-to-damaged-chain`) on a chain that failed its check."""
MAX_LABEL = 200
MAX_TEXT = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    patient_label TEXT,
    profile TEXT NOT NULL,
    rulebook_version TEXT NOT NULL,
    answers TEXT NOT NULL,
    result TEXT NOT NULL,
    sure TEXT,
    decision TEXT,
    notes TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS records_time ON records (time);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'pain-sdm records are append-only: a record cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'pain-sdm records are append-only: a record cannot be deleted'); END;
CREATE VIEW IF NOT EXISTS firings AS
    SELECT r.id AS record_id, r.time AS time, json_extract(t.value, '$.rule_id') AS rule_id,
           json_extract(t.value, '$.rule_version') AS rule_version, json_extract(t.value, '$.holds') AS holds
    FROM records AS r, json_each(r.result, '$.trace') AS t;
CREATE VIEW IF NOT EXISTS option_statuses AS
    SELECT r.id AS record_id, r.time AS time, json_extract(o.value, '$.procedure') AS procedure,
           json_extract(o.value, '$.status') AS status
    FROM records AS r, json_each(r.result, '$.options') AS o;
"""
_GUARDS = ("records_no_update", "records_no_delete")
_CONTENT = ("time", "patient_label", "profile", "rulebook_version", "answers", "result", "sure", "decision", "notes")
_COLUMNS = ("id", *_CONTENT, "prev_hash", "hash")
_INSERT = (
    "INSERT INTO records (id, time, patient_label, profile, rulebook_version, answers, result, sure, decision, notes, "
    "prev_hash, hash) VALUES (:id, :time, :patient_label, :profile, :rulebook_version, :answers, :result, :sure, "
    ":decision, :notes, :prev_hash, :hash)"
)
# Queries over a time window: since/until are bound parameters (NULL means open-ended).
_IN_WINDOW = """WITH w AS (
    SELECT * FROM records WHERE (:since IS NULL OR time >= :since) AND (:until IS NULL OR time <= :until)
)"""
_SELECT_ALL = _IN_WINDOW + " SELECT * FROM w ORDER BY id"  # noqa: S608 - constants only
_SELECT_LAST = _IN_WINDOW + " SELECT * FROM w ORDER BY id DESC LIMIT :limit"  # noqa: S608
_SELECT_TOTALS = (
    _IN_WINDOW  # noqa: S608
    + " SELECT count(*), min(time), max(time), sum(json_extract(result, '$.urgent_assessment')) FROM w"
)
_SELECT_FIRINGS = (
    _IN_WINDOW  # noqa: S608
    + """ SELECT json_extract(t.value, '$.rule_id'), json_extract(t.value, '$.holds'),
    count(*), count(DISTINCT w.id) FROM w, json_each(w.result, '$.trace') AS t GROUP BY 1, 2"""
)
_SELECT_STATUSES = (
    _IN_WINDOW  # noqa: S608
    + """ SELECT json_extract(o.value, '$.procedure'), json_extract(o.value, '$.status'),
    count(*) FROM w, json_each(w.result, '$.options') AS o GROUP BY 1, 2"""
)


def canonical(value: Any) -> str:
    """The one JSON text of a value: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


HASH_SCHEME = 2
"""How record hashes are computed: 1, this module's own canonical JSON (records stored before
RFC 8785 was adopted); 2, RFC 8785 (JSON Canonicalization Scheme), which any language can
recompute. New records use scheme 2. A record's scheme is the one whose hash matches it; a chain
never goes back from 2 to 1. (For the object hashed, fixed ASCII keys with text, null or integer
values, both write the same bytes, so every record stored before still verifies unchanged.)"""


SAFE_INTEGER = 2**53 - 1
"""RFC 8785 writes integers as IEEE doubles do: exactly up to this, in either sign."""


def _scheme_bytes(body: dict[str, Any], scheme: int) -> bytes:
    if scheme == 1 or _plain(body):
        return canonical(body).encode("utf-8")
    import rfc8785

    return rfc8785.dumps(body)


def _plain(body: dict[str, Any]) -> bool:
    """Whether RFC 8785 writes `body` byte for byte as `canonical` does: ASCII keys (same order) and text,
    null or safe-integer values (same escapes, same digits). A record's object always is, so its hash is
    written by the json module's C encoder rather than rfc8785's call per escaped character (a stored
    result holds thousands of quotes: about 4 ms a record, which `verify` spends on every record)."""
    return all(key.isascii() for key in body) and all(
        value is None or isinstance(value, str) or (type(value) is int and abs(value) <= SAFE_INTEGER)
        for value in body.values()
    )


def record_hash(record_id: int, content: Mapping[str, str | None], prev_hash: str, scheme: int = HASH_SCHEME) -> str:
    """SHA-256 over the record's id, its stored content columns (exact text) and the previous hash.

    The object hashed is `{"id", every content column as stored, "prev_hash"}`, written as
    canonical JSON by the record's hash `scheme` (see HASH_SCHEME).
    """
    body = {"id": record_id, **{k: content[k] for k in _CONTENT}, "prev_hash": prev_hash}
    return hashlib.sha256(_scheme_bytes(body, scheme)).hexdigest()


def hash_scheme(row: Any) -> int | None:
    """The scheme a stored record was hashed by (the newest that matches), or None if none matches (edited)."""
    content = {k: row[k] for k in _CONTENT}
    if not all(v is None or isinstance(v, str) for v in content.values()):
        return None  # a column rewritten with another type (a number, a blob)
    for scheme in (HASH_SCHEME, 1):
        try:
            if record_hash(row["id"], content, row["prev_hash"], scheme) == row["hash"]:
                return scheme
        except (TypeError, ValueError, UnicodeError, OverflowError):
            continue  # not representable in this scheme (RFC 8785 numbers stop at 2**53)
    return None


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, *, end: bool = False, option: str = "--since") -> str:
    """A date or ISO time as the stored UTC form; a date alone with `end` means the end of that day.

    Times without an offset are taken as UTC, like the stored times.
    """
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            moment = dt.datetime.combine(day, dt.time(23, 59, 59) if end else dt.time(0, 0, 0), tzinfo=dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):  # OverflowError: an offset past the calendar's ends (0001-01-01T00:00+01:00)
        raise UsageError(
            f"{option} {text!r}: expected a date such as 2024-05-01 or a time such as 2024-05-01T14:30, "
            "between the years 1 and 9999 in UTC"
        ) from None


def parse_window(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """`--since` and `--until` as stored UTC times (`until` a date: its whole day); refused if reversed."""
    start = parse_time(since, option="--since") if since else None
    end = parse_time(until, end=True, option="--until") if until else None
    if start is not None and end is not None and start > end:
        raise UsageError(f"--since {since} is after --until {until}: no record can be in that period")
    return start, end


def is_url(location: object) -> bool:
    """Whether a `--db` value names a PostgreSQL server (`postgresql://...`) rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def default_path() -> Path | str:
    """`$PAIN_SDM_DB` if set (a file or a `postgresql://` URL), else records.sqlite3 in the user's data directory."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env if is_url(env) else Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("pain-sdm")) / "records.sqlite3"


def resolve_path(path: Path | str | None) -> Path | str:
    """The database a command uses: a SQLite file path, or a PostgreSQL URL kept as text."""
    if path is None:
        return default_path()
    return path if is_url(path) else Path(path).expanduser()


def display(location: Path | str) -> str:
    """A database as it may be printed: a URL without its password."""
    if not is_url(location):
        return str(location)
    from engine.records.postgres import redact

    return redact(str(location))


def check_path(path: Path | str | None) -> Path | str:
    """Check, without creating anything, that a records database could be opened at this path."""
    where = resolve_path(path)
    if isinstance(where, str):
        from engine.records.postgres import check_url

        return check_url(where)
    if where.is_symlink() and not where.exists():
        raise UsageError(f"records database {where} is a symbolic link to a file that does not exist")
    if where.is_dir():
        raise UsageError(f"records database {where} is a directory; give a file name")
    if where.exists() and not where.is_file():
        raise UsageError(f"records database {where} is not a regular file")
    if path is not None and not where.exists() and not where.parent.is_dir():
        raise UsageError(f"records database {where}: the folder {where.parent} does not exist")
    return where


def check_record_options(
    record: bool, db: Path | str | None, patient_label: str | None, append_to_damaged: bool = False
) -> None:
    """`evaluate`'s record options, checked before anything is shown or written.

    --db and --patient-label only make sense with --record; an existing database must be a
    records database that can be written and whose chain verifies (so a bad --db never leaves
    an -o file behind, and a record is never appended silently to a damaged chain).
    """
    if not record:
        raise UsageError("--db, --patient-label and --append-to-damaged-chain are for storing a record; add --record")
    where = check_path(db)
    checked_text(patient_label, "patient label", MAX_LABEL)
    if isinstance(where, str):
        from engine.records.postgres import PostgresStore

        PostgresStore.check_writable(where)
        return
    if where.exists() and where.stat().st_size > 0:
        if not os.access(where, os.W_OK):
            raise UsageError(f"the records database {where} is read-only; nothing can be stored in it")
        with RecordStore.open(where, create=False) as store:
            store.check_appendable(append_to_damaged)


def _tighten(fd: int) -> None:
    """Make the file readable by its owner only; a reader who does not own it cannot, and need not."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        try:
            os.fchmod(fd, mode & 0o700)
        except PermissionError:
            pass  # someone else's database, opened to read: its owner keeps its mode


def _secure_file(path: Path, create: bool) -> bool:
    """Tighten an existing file's mode to 0600 (or create its folder); return whether it can be written.

    A missing database is not created here: `_create` builds it whole in a temporary file and
    moves it into place, so an interrupted first write never leaves an empty database behind.
    A reviewer's read-only copy can still be read.
    """
    if create and not path.exists() and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise UsageError(
                f"cannot create the folder {path.parent} for the records database: {exc.strerror}"
            ) from None
    if create and not path.exists():
        _create(path)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    writable = True
    try:
        try:
            fd = os.open(path, os.O_RDWR | nofollow)
        except PermissionError:
            fd, writable = os.open(path, os.O_RDONLY | nofollow), False
    except FileNotFoundError:
        raise UsageError(
            f"no records database at {path}; records are stored by `pain-sdm evaluate --record` or the interview"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot open the records database {path}: {exc.strerror}") from None
    try:
        _tighten(fd)
    finally:
        os.close(fd)
    return writable


def _create(path: Path) -> None:
    """A new, empty records database at `path`: schema and head written to a temporary file, then linked.

    The link never replaces a database that appeared meanwhile; the temporary file is removed
    however this ends (a kill -9 leaves a hidden `.NAME.*.creating` file, removed by the next open).
    """
    from engine.output import remove_stale_temporaries

    remove_stale_temporaries(path, ".creating")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".creating", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA journal_mode = DELETE")
            _write_schema(conn)
        finally:
            conn.close()
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            os.link(tmp, path)
        _fsync_folder(path.parent)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot create the records database {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot create the records database {path}: {exc.strerror or exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_schema(conn: sqlite3.Connection) -> None:
    """The tables, guards, views and head of an empty database, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(_SCHEMA):
            conn.execute(statement)
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('head', ?)", (canonical([0, GENESIS]),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --- Records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRecord:
    """What a caller gives to be stored; the store adds the id, time (unless given) and hashes."""

    answers: Mapping[str, Any]
    result: Mapping[str, Any]
    patient_label: str | None = None
    sure: Mapping[str, Any] | None = None
    decision: str | None = None
    notes: str | None = None
    time: str | None = None

    def columns(self) -> dict[str, str | None]:
        """The content columns as stored: JSON columns as canonical text."""
        profile = self.result.get("profile")
        version = self.result.get("rulebook_version")
        if not isinstance(profile, str) or not isinstance(version, str):
            raise UsageError("a record's result must carry its profile and rulebook_version")
        return {
            "time": parse_time(self.time, option="time") if self.time else utc_now(),
            "patient_label": checked_text(self.patient_label, "patient label", MAX_LABEL),
            "profile": profile,
            "rulebook_version": version,
            "answers": canonical(dict(self.answers)),
            "result": canonical(dict(self.result)),
            "sure": canonical(dict(self.sure)) if self.sure is not None else None,
            "decision": checked_text(self.decision, "decision", MAX_TEXT),
            "notes": checked_text(self.notes, "notes", MAX_TEXT),
        }


def checked_text(value: str | None, what: str, limit: int) -> str | None:
    """Free text as it may be stored or printed: UTF-8, no control characters, at most `limit` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"the {what} must be text, not {type(value).__name__}")
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise UsageError(f"the {what} is too long ({len(value)} characters; at most {limit})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 on the command line arrive as lone surrogates
        raise UsageError(f"the {what} is not UTF-8 text; type it again in UTF-8") from None
    if any(ord(ch) < 32 and ch not in "\n\t" or ch == "\x7f" for ch in value):
        raise UsageError(f"the {what} contains control characters")
    return value


@dataclass(frozen=True)
class StoredRecord:
    """One stored record, as read back (JSON columns parsed)."""

    id: int
    time: str
    patient_label: str | None
    profile: str
    rulebook_version: str
    answers: dict[str, Any]
    result: dict[str, Any]
    sure: dict[str, Any] | None
    decision: str | None
    notes: str | None
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredRecord:
        try:
            answers, result = json.loads(row["answers"]), json.loads(row["result"])
            sure = json.loads(row["sure"]) if row["sure"] is not None else None
        except (json.JSONDecodeError, TypeError):
            raise StoreError(
                f"record {row['id']} is damaged (a JSON column cannot be read); run `pain-sdm records verify`"
            ) from None
        return cls(
            id=row["id"],
            time=row["time"],
            patient_label=row["patient_label"],
            profile=row["profile"],
            rulebook_version=row["rulebook_version"],
            answers=answers,
            result=result,
            sure=sure,
            decision=row["decision"],
            notes=row["notes"],
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )

    def statuses(self) -> dict[str, str]:
        return {o["procedure"]: o["status"] for o in self.result.get("options", [])}

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, **{name: getattr(self, name) for name in _COLUMNS}}

    def result_model(self) -> Result:
        return result_from_json(self.result)


def exported(row: Any) -> dict[str, Any]:
    """A stored row as one exported line: JSON columns parsed, or kept as their stored text if damaged.

    A damaged record is still written whole (it is evidence); the export warns about it.
    """
    line: dict[str, Any] = {"format": RECORD_FORMAT, "hash_scheme": hash_scheme(row)}
    for name in _COLUMNS:
        value = row[name]
        if name in ("answers", "result", "sure") and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                line.setdefault("damaged", []).append(name)
        line[name] = value
    return line


def result_from_json(data: Mapping[str, Any]) -> Result:
    """A `Result` back from its JSON form (`Result.to_json()`)."""
    from engine.evaluation.result import Result

    return Result.model_validate(dict(data))


@dataclass
class Stats:
    """Counts over the records in a time window."""

    records: int = 0
    urgent: int = 0
    first: str | None = None
    last: str | None = None
    rules: Counter[tuple[str, bool]] = field(default_factory=Counter)
    rule_records: Counter[tuple[str, bool]] = field(default_factory=Counter)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, totals: Sequence[Any], firings: Iterable[Sequence[Any]], statuses: Iterable[Sequence[Any]]) -> Stats:
        """Stats from the rows of the three counting queries (the same for every backend)."""
        from engine.model.knowledge import PROCEDURE_IDS

        out = cls(records=totals[0], first=totals[1], last=totals[2], urgent=int(totals[3] or 0))
        for rid, holds, n, recs in firings:
            out.rules[(rid, bool(holds))] = n
            out.rule_records[(rid, bool(holds))] = recs
        for pid, status, n in statuses:
            out.statuses.setdefault(pid, Counter())[status] = n
        order = {pid: i for i, pid in enumerate(PROCEDURE_IDS)}
        out.statuses = dict(sorted(out.statuses.items(), key=lambda kv: order.get(kv[0], len(order))))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "urgent_assessment": self.urgent,
            "first": self.first,
            "last": self.last,
            "rules": [
                {"rule_id": rid, "holds": holds, "firings": n, "records": self.rule_records[(rid, holds)]}
                for (rid, holds), n in sorted(self.rules.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "statuses": {pid: dict(sorted(c.items())) for pid, c in self.statuses.items()},
        }


# --- The store -----------------------------------------------------------------------------------


FEEDBACK_COLUMNS = (
    "received",
    "service",
    "card",
    "outcome",
    "outcome_time",
    "override_reason",
    "user_comment",
    "procedure",
    "status",
    "rulebook_version",
    "hook_instance",
    "feedback",
)
_FEEDBACK_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cds_feedback (
    id INTEGER PRIMARY KEY,
    received TEXT NOT NULL,
    service TEXT NOT NULL,
    card TEXT NOT NULL,
    outcome TEXT NOT NULL,
    outcome_time TEXT NOT NULL,
    override_reason TEXT,
    user_comment TEXT,
    procedure TEXT,
    status TEXT,
    rulebook_version TEXT,
    hook_instance TEXT,
    feedback TEXT NOT NULL
)""",
    """CREATE TRIGGER IF NOT EXISTS cds_feedback_no_update BEFORE UPDATE ON cds_feedback
BEGIN SELECT RAISE(ABORT, 'CDS feedback is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS cds_feedback_no_delete BEFORE DELETE ON cds_feedback
BEGIN SELECT RAISE(ABORT, 'CDS feedback is append-only'); END""",
)
_FEEDBACK_INSERT = (
    f"INSERT INTO cds_feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join(':' + c for c in FEEDBACK_COLUMNS)})"  # noqa: S608 - constant names
)


class StoreError(PainSdmError):
    """The records database cannot be read as it should (damaged pages or columns): a message, never a traceback."""

    exit_code = 2


def _expected_schema() -> dict[tuple[str, str], str]:
    """Every table, index, trigger and view of a records database, with its definition as SQLite keeps it."""
    conn = sqlite3.connect(":memory:")
    try:
        for statement in _statements(_SCHEMA):
            conn.execute(statement)
        return _schema_of(conn)
    finally:
        conn.close()


def _schema_of(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    return {
        (str(kind), str(name)): " ".join(str(sql).replace("IF NOT EXISTS ", "").split()) for kind, name, sql in rows
    }


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """SQLite's errors while reading (a damaged page, malformed JSON in a column) as one clear message."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"the records database {path} cannot be read ({exc}): it is damaged. "
            f"Run `pain-sdm records verify --db {path}` and restore it from a copy"
        ) from None
    except OverflowError:
        raise StoreError("a record number or limit is too large (at most 9223372036854775807)") from None


class RecordStore:
    """An open records database. Use `RecordStore.open(...)` as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @property
    def where(self) -> str:
        """The database as it may be printed (a file path, or a URL without its password)."""
        return str(self.path)

    @classmethod
    def open(cls, path: Path | str | None = None, *, create: bool = True) -> RecordStore:
        """Open the database at `path`, `$PAIN_SDM_DB`, or the default place.

        With `create` it is created if missing; without, it must exist already (reviewers'
        commands only read it; it is still opened for writing when allowed, so that SQLite can
        roll back a transaction a killed writer left unfinished, and read-only otherwise).
        """
        where = check_path(path)
        if isinstance(where, str):
            from engine.records.postgres import PostgresStore

            return PostgresStore.connect(where, create=create)
        writable = _secure_file(where, create)
        try:
            mode = "rw" if writable else "ro"
            conn = sqlite3.connect(
                f"{where.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None, timeout=30
            )
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open the records database {where}: {exc}") from None
        conn.row_factory = sqlite3.Row
        store = cls(conn, where)
        try:
            store._prepare(writable)
        except sqlite3.DatabaseError as exc:
            conn.close()
            journal = where.with_name(where.name + "-journal")
            if not writable and journal.exists() and journal.stat().st_size > 0:
                raise UsageError(
                    f"{where} has a hot rollback journal beside it ({journal.name}): a writer was stopped in the "
                    "middle of a transaction, and SQLite must roll it back before the file can be read, which needs "
                    "write access. Ask its owner to run `pain-sdm records verify` on it, or copy the database "
                    "together with its journal to a folder you can write and read the copy"
                ) from None
            if "malformed" in str(exc):
                raise StoreError(f"the records database {where} is damaged ({exc}); restore it from a copy") from None
            raise UsageError(f"{where} is not a pain-sdm records database ({exc})") from None
        except BaseException:
            conn.close()
            raise
        return store

    def _prepare(self, writable: bool) -> None:
        conn = self.conn
        conn.execute("PRAGMA trusted_schema = OFF")
        if writable:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA journal_mode = DELETE")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "records" in tables:
            fmt = self._meta("format")
            if fmt != FORMAT:
                raise UsageError(f"{self.path} is not a pain-sdm records database (format {fmt!r}, expected {FORMAT})")
            return
        if tables - {"meta"} or not writable:
            raise UsageError(f"{self.path} is not a pain-sdm records database (it has no records table)")
        _write_schema(conn)  # an empty file someone made: a database from pain-sdm is created whole

    def _meta(self, key: str) -> str | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    def _head(self) -> tuple[int, str] | None:
        raw = self._meta("head")
        try:
            head = json.loads(raw) if raw is not None else None
            if isinstance(head, list) and len(head) == 2 and isinstance(head[0], int) and isinstance(head[1], str):
                return head[0], head[1]
        except json.JSONDecodeError:
            pass
        return None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---

    def append(self, record: NewRecord, *, past_damage: Sequence[str] = ()) -> StoredRecord:
        """Store one record in one transaction; it is on disk when this returns.

        `past_damage` lists the problems `verify` found when the user chose to append anyway
        (`--append-to-damaged-chain`); they are kept in the meta table beside the record's id.
        """
        with self._writing():
            rid = self._append_row(record, past_damage)
        return StoredRecord.from_row(self._row(rid))

    def append_verified(self, record: NewRecord, append_to_damaged: bool = False) -> StoredRecord:
        """Verify the whole chain and append one record, in one write transaction.

        No other writer can come between the check and the append (checked outside it, a record
        stored meanwhile by another process or thread made a sound chain look damaged, and the
        record was refused).
        """
        with self._writing():
            past = self.check_appendable(append_to_damaged)
            rid = self._append_row(record, past)
        return StoredRecord.from_row(self._row(rid))

    def _append_row(self, record: NewRecord, past_damage: Sequence[str]) -> int:
        """Link one record to the head and write it (inside `_writing`); returns its id."""
        content = record.columns()
        prev_id, prev_hash = self.check_head()
        rid = prev_id + 1
        digest = record_hash(rid, content, prev_hash)
        self._write({"id": rid, **content, "prev_hash": prev_hash, "hash": digest})
        if past_damage:
            notes = self._damage_notes()
            notes.append({"record": rid, "time": content["time"], "problems": list(past_damage)})
            self._set_meta(DAMAGE_NOTES, canonical(notes))
        return rid

    def copy_in(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append records copied from another store as stored: same ids, text and hashes, in one transaction.

        Each must extend this store's chain exactly (its id follows the head, its link is the head's
        hash) and its content must match its hash, so a copy can never fork or alter the chain.
        Returns how many were copied.
        """
        count = 0
        with self._writing():
            prev_id, prev_hash = self.check_head()
            for source in rows:
                row = {k: source[k] for k in _COLUMNS}
                rid = row["id"]
                if rid != prev_id + 1 or row["prev_hash"] != prev_hash:
                    raise PainSdmError(
                        f"record {rid} does not extend the chain of {self.where} (its last record is {prev_id}); "
                        "nothing was copied"
                    )
                if hash_scheme(row) is None:
                    raise PainSdmError(f"record {rid}: its content does not match its hash; nothing was copied")
                self._write(row)
                prev_id, prev_hash, count = rid, row["hash"], count + 1
        return count

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction that holds the database's single writer lock (SQLite: BEGIN IMMEDIATE)."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise OutputError(f"cannot write to the records database {self.path}: {exc}") from None
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise OutputError(f"cannot write to the records database {self.path}: {exc}") from None
            raise

    def _write(self, row: Mapping[str, Any]) -> None:
        """Insert one record row and move the stored head to it (inside `_writing`)."""
        self.conn.execute(_INSERT, row)
        self.conn.execute("UPDATE meta SET value = ? WHERE key = 'head'", (canonical([row["id"], row["hash"]]),))

    def _set_meta(self, key: str, value: str) -> None:
        """Set one meta entry (inside `_writing`)."""
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _damage_notes(self) -> builtins.list[dict[str, Any]]:
        raw = self._meta(DAMAGE_NOTES)
        try:
            notes = json.loads(raw) if raw is not None else []
        except json.JSONDecodeError:
            return []
        return notes if isinstance(notes, builtins.list) else []

    def check_head(self) -> tuple[int, str]:
        """The last record's id and hash, if they match the stored head; appending after a mismatch would hide it."""
        last = self.head()
        if self._head() != last:
            raise PainSdmError(
                f"the records database {self.where} fails its integrity check (its head does not match "
                f"the last record); nothing was stored. Run `pain-sdm records verify --db {self.where}`"
            )
        return last

    def check_appendable(self, append_to_damaged: bool = False) -> builtins.list[str]:
        """The whole chain must verify before a record is added to it, unless the user says so explicitly.

        Returns the problems found (empty for an intact chain) so that an explicit append can record them.
        """
        problems = self.verify()
        if problems and not append_to_damaged:
            listed = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            raise PainSdmError(
                f"the records database {self.path} fails its integrity check ({listed}); nothing was stored. "
                f"Run `pain-sdm records verify --db {self.path}`; to store this record in it anyway, and have "
                "that choice recorded in the database, add --append-to-damaged-chain"
            )
        return problems

    # --- reading ---

    def _row(self, rid: int) -> sqlite3.Row:
        with _reading(self.path):
            row = self.conn.execute("SELECT * FROM records WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise UsageError(f"no record {rid} in {self.where}")
        return row  # type: ignore[no-any-return]

    def get(self, rid: int) -> StoredRecord:
        return StoredRecord.from_row(self._row(rid))

    def _rows(self, since: str | None = None, until: str | None = None) -> Iterator[sqlite3.Row]:
        window = {"since": since, "until": until}
        with _reading(self.path):
            yield from self.conn.execute(_SELECT_ALL, window)

    def iter(self, since: str | None = None, until: str | None = None) -> Iterator[StoredRecord]:
        for row in self._rows(since, until):
            yield StoredRecord.from_row(row)

    def list(
        self, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> builtins.list[StoredRecord]:
        """Records in the window, oldest first; with `limit`, the most recent `limit` of them."""
        window = {"since": since, "until": until, "limit": -1 if limit is None else limit}
        with _reading(self.path):
            rows = self.conn.execute(_SELECT_LAST, window).fetchall()
        return [StoredRecord.from_row(r) for r in reversed(rows)]

    def count(self) -> int:
        with _reading(self.path):
            return int(self.conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def head(self) -> tuple[int, str]:
        """The last record's id and hash (0 and the genesis hash when empty)."""
        with _reading(self.path):
            last = self.conn.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        return (last[0], last[1]) if last else (0, GENESIS)

    def _schema_problems(self) -> builtins.list[str]:
        """Each table, guard trigger, index and view whose definition is not the one pain-sdm wrote."""
        problems: builtins.list[str] = []
        found = _schema_of(self.conn)
        missing = [g for g in _GUARDS if ("trigger", g) not in found]
        if missing:
            problems.append(f"the append-only guards were removed ({', '.join(missing)}): the file was altered")
        for (kind, name), sql in _expected_schema().items():
            if (kind, name) not in found:
                if name not in missing:
                    problems.append(f"the {kind} {name} was removed: the file was altered")
            elif found[(kind, name)] != sql:
                what = "append-only guard" if kind == "trigger" else kind
                problems.append(f"the {what} {name} was rewritten (its definition differs): the file was altered")
        expected = _expected_schema()
        for kind, name in sorted(set(found) - set(expected)):
            problems.append(f"an unexpected {kind} {name} was added: the file was altered")
        return problems

    def verify(self) -> builtins.list[str]:
        """Recompute the chain; one line per problem, naming the record. Empty means intact.

        The records and the head are read at one moment (`_snapshot`), so a record another writer
        adds meanwhile never makes the head look out of step with the chain.
        """
        try:
            with self._snapshot():
                return self._guard_problems() + chain_problems(self._chain(), self._head())
        except sqlite3.DatabaseError as exc:
            return [f"the database cannot be read to the end ({exc}): it is damaged"]

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Reads that see the database at one moment: a read transaction (inside a write, that one)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")  # it only read

    def _guard_problems(self) -> builtins.list[str]:
        """What is wrong with the database's own definitions (SQLite: every table, trigger, index and view)."""
        return self._schema_problems()

    def _chain(self) -> Iterator[Mapping[str, Any]]:
        """Every record row, in id order, as stored."""
        yield from self.conn.execute("SELECT * FROM records ORDER BY id")

    def _hash_of(self, rid: int) -> str | None:
        with _reading(self.path):
            row = self.conn.execute("SELECT hash FROM records WHERE id = ?", (rid,)).fetchone()
        return None if row is None else str(row[0])

    # --- CDS Hooks feedback (kept beside the records, outside their hash chain) ---

    def add_feedback(self, rows: Sequence[Mapping[str, str | None]]) -> int:
        """Append feedback rows (the columns of `FEEDBACK_COLUMNS`) in one transaction; returns how many."""
        with self._writing():
            for statement in _FEEDBACK_SCHEMA:
                self.conn.execute(statement)
            for row in rows:
                self.conn.execute(_FEEDBACK_INSERT, {k: row.get(k) for k in FEEDBACK_COLUMNS})
        return len(rows)

    def feedback(self) -> builtins.list[dict[str, Any]]:
        """Every stored feedback row, oldest first."""
        with _reading(self.path):
            try:
                return [dict(r) for r in self.conn.execute("SELECT * FROM cds_feedback ORDER BY id")]
            except sqlite3.OperationalError:  # no feedback was ever given: the table is made on first use
                return []

    def damage_notes(self) -> builtins.list[str]:
        """Records stored knowingly on a chain that already failed its check (`--append-to-damaged-chain`)."""
        return [
            f"record {n.get('record')} was stored at {n.get('time')} with --append-to-damaged-chain, "
            f"while the chain already failed its check ({len(n.get('problems', []))} problem(s))"
            for n in self._damage_notes()
            if isinstance(n, dict)
        ]

    def check_record(self, rid: int) -> builtins.list[str]:
        """One record's own integrity: its content against its hash, and its link to the record before it.

        Cheap enough for every `show` and `replay`; `verify` checks the whole chain.
        """
        row = self._row(rid)
        problems = []
        if hash_scheme(row) is None:
            problems.append(f"record {rid}: its content does not match its hash (edited)")
        expected = GENESIS if rid == 1 else self._hash_of(rid - 1)
        if row["prev_hash"] != expected:
            problems.append(
                f"record {rid}: its link to the record before it is broken (a record was edited or deleted)"
            )
        return problems

    def export_jsonl(self, path: Path, force: bool = False, since: str | None = None, until: str | None = None) -> int:
        """Write the records as JSON Lines, streamed and atomic; returns how many were written.

        Every record is written, a damaged one too (its unreadable JSON columns as their stored text).
        """
        from engine.output import open_atomic

        count = 0
        with open_atomic(path, force) as handle:
            for row in self._chain():  # every backend's rows, as stored; the window is applied here
                if (since is not None and row["time"] < since) or (until is not None and row["time"] > until):
                    continue
                line = exported(row)
                handle.write(
                    (json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode(
                        "utf-8", "backslashreplace"
                    )
                )
                count += 1
        return count

    def stats(self, since: str | None = None, until: str | None = None) -> Stats:
        """Per-rule firing counts (from the stored traces) and per-procedure status counts."""
        with _reading(self.path):
            return Stats.of(*self._stat_rows({"since": since, "until": until}))

    def _stat_rows(
        self, window: Mapping[str, Any]
    ) -> tuple[Sequence[Any], Iterable[Sequence[Any]], Iterable[Sequence[Any]]]:
        """The backend's three counting queries: totals; (rule, holds, firings, records); (procedure, status, n)."""
        return (
            self.conn.execute(_SELECT_TOTALS, window).fetchone(),
            self.conn.execute(_SELECT_FIRINGS, window).fetchall(),
            self.conn.execute(_SELECT_STATUSES, window).fetchall(),
        )


def chain_problems(rows: Iterable[Mapping[str, Any]], head: tuple[int, str] | None) -> list[str]:
    """Recompute a hash chain from its rows (id order) and its stored head; one line per problem.

    The one check of the chain, whatever the backend: both stores hand their rows here.
    """
    problems: list[str] = []
    expected_id, prev, newest = 1, GENESIS, 0
    for row in rows:
        rid = row["id"]
        if rid != expected_id:
            gone = f"record {expected_id}" if rid == expected_id + 1 else f"records {expected_id} to {rid - 1}"
            problems.append(f"{gone} missing before record {rid}: deleted")
        if row["prev_hash"] != prev:
            problems.append(
                f"record {rid}: its link to the record before it is broken "
                "(a record before it was edited, deleted, inserted or reordered)"
            )
        scheme = hash_scheme(row)
        if scheme is None:
            problems.append(f"record {rid}: its content does not match its hash (edited)")
        elif scheme < newest:
            problems.append(f"record {rid}: hashed by an older scheme than a record before it (rewritten)")
        newest = max(newest, scheme or 0)
        expected_id, prev = rid + 1, row["hash"]
    last = (expected_id - 1, prev)
    if head is None:
        problems.append("the database head (last id and hash) is missing or unreadable")
    elif head != last:
        if head[0] > last[0]:
            problems.append(
                f"the head names record {head[0]} but the last record is {last[0]}: "
                f"record{'s' if head[0] - last[0] > 1 else ''} {last[0] + 1}"
                f"{f' to {head[0]}' if head[0] - last[0] > 1 else ''} deleted from the end"
            )
        else:
            problems.append(f"the head (record {head[0]}) does not match the last record ({last[0]})")
    return problems


def _statements(script: str) -> list[str]:
    """Split the schema script into statements (triggers keep their inner `;`)."""
    out, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if line.rstrip().endswith(";") and (not buf.lstrip().startswith("CREATE TRIGGER") or "END;" in line):
            out.append(buf.strip())
            buf = ""
    return out


# --- Convenience for the CLI and the interview ---------------------------------------------------


def prepare_record(
    aid: DecisionAid,
    answers: BaseModel | Mapping[str, Any],
    result: Result,
    *,
    patient_label: str | None = None,
    sure: BaseModel | Mapping[str, Any] | None = None,
    decision: str | None = None,
    notes: str | None = None,
) -> NewRecord:
    """The record for one evaluation, every field checked (label, notes, ...) before anything is written.

    The patient label defaults to the answers' own `patient_label`, if any.
    """
    model = answers if isinstance(answers, BaseModel) else aid.parse_answers(dict(answers))
    if result.rulebook_version != aid.rulebook.version:
        raise UsageError("the result was made with another rulebook than this decision aid's; evaluate again")
    stored_answers = model.model_dump(mode="json", exclude_unset=True)
    if patient_label is None:
        label = stored_answers.get("patient_label")
        patient_label = label if isinstance(label, str) else None
    sure_data = sure.model_dump(mode="json") if isinstance(sure, BaseModel) else sure
    new = NewRecord(
        answers=stored_answers,
        result=result.to_json(),
        patient_label=patient_label,
        sure=sure_data,
        decision=decision,
        notes=notes,
    )
    new.columns()  # raises now, naming the field, rather than after an -o file was written
    return new


def store_record(new: NewRecord, db: Path | str | None = None, append_to_damaged: bool = False) -> StoredRecord:
    """Append a prepared record; the whole chain must verify first (unless `append_to_damaged`, then recorded)."""
    with RecordStore.open(db) as store:
        return store.append_verified(new, append_to_damaged)


def record_evaluation(
    aid: DecisionAid,
    answers: BaseModel | Mapping[str, Any],
    result: Result,
    *,
    db: Path | str | None = None,
    patient_label: str | None = None,
    sure: BaseModel | Mapping[str, Any] | None = None,
    decision: str | None = None,
    notes: str | None = None,
) -> StoredRecord:
    """Store one evaluation (answers and the `Result` they gave) in the records database.

    `db` defaults to `$PAIN_SDM_DB` or the user's data directory. The patient label defaults
    to the answers' own `patient_label`, if any. Returns the stored record (its `id` is the
    record number to quote). A chain that does not verify is refused (see `store_record`).
    """
    new = prepare_record(aid, answers, result, patient_label=patient_label, sure=sure, decision=decision, notes=notes)
    return store_record(new, db)


@dataclass(frozen=True)
class Copy:
    """What `records copy` did: how many records were copied, and the head both stores now share."""

    source: str
    target: str
    copied: int
    already: int
    head: tuple[int, str]


def copy_records(source: Path | str | None, target: Path | str) -> Copy:
    """Copy every record from one store to another (SQLite or PostgreSQL, either way), hashes unchanged.

    The source's chain must verify first; the target must be empty or hold the start of the same
    chain (a copy that was interrupted is carried on). The target is verified after, and its head
    must equal the source's.
    """
    with RecordStore.open(source, create=False) as src:
        problems = src.verify()
        if problems:
            raise PainSdmError(
                f"the source {src.where} fails its integrity check, so nothing was copied: " + "; ".join(problems)
            )
        with RecordStore.open(target) as dst:
            if src.where == dst.where:
                raise UsageError("--from and --to are the same database")
            have, _ = dst.check_head()
            if have and (have > src.count() or dst._hash_of(have) != src._hash_of(have)):
                raise PainSdmError(
                    f"the target {dst.where} already holds records that are not the start of {src.where}'s chain; "
                    "copy into an empty database"
                )
            copied = dst.copy_in(row for row in src._chain() if row["id"] > have)
            after = dst.verify()
            if after:
                raise PainSdmError(f"the copy in {dst.where} fails its integrity check: " + "; ".join(after))
            if dst.head() != src.head():
                raise PainSdmError(f"the copy's head {dst.head()} differs from the source's {src.head()}")
            return Copy(src.where, dst.where, copied, have, dst.head())


@dataclass(frozen=True)
class Replay:
    """A stored record re-evaluated with a (possibly different) rulebook."""

    record: StoredRecord
    result: Result
    changes: list[tuple[str, str, str | None, str | None]]  # procedure, name, old status, new status
    migrated: list[str] = field(default_factory=list)  # answers mapped from an older schema

    @property
    def same_rulebook(self) -> bool:
        return self.record.rulebook_version == self.result.rulebook_version

    @property
    def identical(self) -> bool:
        return self.result.to_json() == self.record.result


def replay(aid: DecisionAid, record: StoredRecord) -> Replay:
    """Re-evaluate a record's answers with `aid`'s rulebook, under the record's profile."""
    if record.profile not in aid.rulebook.profiles:
        raise UsageError(
            f"record {record.id} was evaluated under profile `{record.profile}`, which this rulebook does not have "
            f"(its profiles: {', '.join(aid.rulebook.profiles)})"
        )
    migrated: list[str] = []
    answers = aid.parse_answers(record.answers, f"record {record.id} answers", migrated)
    result = aid.evaluate(answers, record.profile)
    old = record.statuses()
    new = result.statuses()
    names = {o.procedure: o.name for o in result.options}
    names.update({o["procedure"]: o.get("name", o["procedure"]) for o in record.result.get("options", [])})
    changes = [(pid, names[pid], old.get(pid), new.get(pid)) for pid in dict.fromkeys([*old, *new])]
    return Replay(record, result, changes, migrated)


# --- Rendering (reviewer-facing plain text) ------------------------------------------------------

STATUS_SHORT = {"candidate": "cand", "after_prerequisite": "after", "not_indicated": "no", "deferred": "defer"}


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def _open_options(record: StoredRecord) -> str:
    opened = [
        f"{o['procedure']}{'' if o['status'] == 'candidate' else ' (after steps)'}"
        for o in record.result.get("options", [])
        if Status(o["status"]).is_open and o["procedure"] != "conservative_care"
    ]
    return ", ".join(opened) or "-"


def _set_by(option: Mapping[str, Any]) -> str:
    """The rule ids behind a stored option's status (the fallback said in words)."""
    from engine.evaluation.result import FALLBACK_ID

    ids = [r.get("rule_id", "?") for r in option.get("reasons", [])]
    if ids == [FALLBACK_ID]:
        return "no rule set a status: not indicated by default"
    return "set by " + (", ".join(ids) or "no rule")


def _trace_details(trace: list[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rule versions and threshold values used, from a trace in its JSON form."""
    versions = {f["rule_id"]: f.get("rule_version") for f in trace}
    params = {k: v for f in trace for k, v in (f.get("parameters") or {}).items()}
    return versions, params


def render_list(records: list[StoredRecord]) -> str:
    if not records:
        return "no records\n"
    rows = [
        [
            str(r.id),
            r.time,
            r.patient_label or "-",
            r.profile,
            r.rulebook_version[:12],
            "URGENT" if r.result.get("urgent_assessment") else "",
            _open_options(r),
        ]
        for r in records
    ]
    return _table(["id", "time (UTC)", "label", "profile", "rulebook", "urgent", "open options"], rows)


def render_record(record: StoredRecord) -> str:
    """One record for a reviewer: who/when, the rulebook version, the answers, every status."""
    lines = [
        f"record {record.id}",
        f"time (UTC):       {record.time}",
        f"patient label:    {record.patient_label or '-'}",
        f"profile:          {record.profile}",
        f"rulebook version: {record.rulebook_version}",
        f"urgent assessment: {'YES' if record.result.get('urgent_assessment') else 'no'}",
        f"hash:             {record.hash}",
        f"previous hash:    {record.prev_hash}",
        "",
        "statuses:",
    ]
    lines += [f"  {o['procedure']}: {o['status']} ({_set_by(o)})" for o in record.result.get("options", [])]
    answered = {k: v for k, v in record.answers.items() if v != "unknown"}
    unknown = sorted(k for k, v in record.answers.items() if v == "unknown")
    lines += ["", f"answers ({len(answered)} given; questions not listed were not answered):"]
    lines += [f"  {k}: {json.dumps(v, ensure_ascii=False)}" for k, v in answered.items()]
    if unknown:
        lines.append(f"  marked not sure: {', '.join(unknown)}")
    if record.sure is not None:
        score = sum(1 for v in record.sure.values() if v is True)
        items = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in record.sure.items())
        lines += ["", f"SURE: {score} of {len(record.sure)} ({items})"]
    if record.decision:
        lines += ["", f"decision: {record.decision}"]
    if record.notes:
        lines += ["", "notes:", *(f"  {line}" for line in record.notes.splitlines())]
    return "\n".join(lines) + "\n"


def render_stats(stats: Stats) -> str:
    if not stats.records:
        return "no records in this period\n"
    lines = [
        f"{stats.records} records from {stats.first} to {stats.last}; urgent assessment in {stats.urgent}",
        "",
        "statuses per procedure:",
    ]
    statuses = list(STATUS_SHORT)
    rows = [[pid, *(str(c.get(s, 0)) for s in statuses)] for pid, c in stats.statuses.items()]
    lines.append(_table(["procedure", *statuses], rows))
    lines.append("rule firings (a rule that fired as 'not the case' is listed separately):")
    rows = [
        [rid + ("" if holds else " (not the case)"), str(n), str(stats.rule_records[(rid, holds)])]
        for (rid, holds), n in sorted(stats.rules.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    lines.append(_table(["rule", "firings", "records"], rows))
    return "\n".join(lines)


def render_replay(rp: Replay) -> str:
    rec = rp.record
    lines = [f"record {rec.id} ({rec.time}), profile {rec.profile}"]
    if rp.same_rulebook:
        lines.append(f"rulebook version: {rec.rulebook_version} (the same as when stored)")
    else:
        lines.append(
            f"rulebook version: {rec.rulebook_version} when stored, {rp.result.rulebook_version} now (differs)"
        )
    lines += [f"answers stored in an older schema: {note}" for note in rp.migrated]
    rows = [[pid, old or "-", new or "-", "" if old == new else "CHANGED"] for pid, _name, old, new in rp.changes]
    lines += ["", _table(["procedure", "stored status", "status now", ""], rows).rstrip("\n"), ""]
    changed = sum(1 for _p, _n, old, new in rp.changes if old != new)
    urgent_old = bool(rec.result.get("urgent_assessment"))
    if urgent_old != rp.result.urgent_assessment:
        lines.append(
            f"urgent assessment: {'yes' if urgent_old else 'no'} -> {'yes' if rp.result.urgent_assessment else 'no'}"
        )
    before = {(f["rule_id"], f.get("holds", True)) for f in rec.result.get("trace", [])}
    now = {(f.rule_id, f.holds) for f in rp.result.trace}
    stored_options = {o["procedure"]: o for o in rec.result.get("options", [])}
    for option in rp.result.options:
        old_option = stored_options.get(option.procedure)
        if old_option is not None and old_option["status"] != option.status:
            now_by = _set_by({"reasons": [{"rule_id": r.rule_id} for r in option.reasons]})
            lines.append(
                f"{option.procedure}: {old_option['status']} ({_set_by(old_option)}) -> {option.status} ({now_by})"
            )
    for label, keys in (("fired only when stored", before - now), ("fire only now", now - before)):
        if keys:
            names = ", ".join(rid + ("" if holds else " (not the case)") for rid, holds in sorted(keys))
            lines.append(f"rules that {label}: {names}")
    old_versions, old_params = _trace_details(rec.result.get("trace", []))
    new_versions, new_params = _trace_details([f.model_dump() for f in rp.result.trace])
    bumped = [f"{rid} v{old_versions[rid]} -> v{v}" for rid, v in new_versions.items() if old_versions.get(rid, v) != v]
    if bumped:
        lines.append(f"rules whose version differs: {', '.join(bumped)}")
    moved = [f"{pid} {old_params[pid]} -> {v}" for pid, v in new_params.items() if old_params.get(pid, v) != v]
    if moved:
        lines.append(f"thresholds that differ: {', '.join(moved)}")
    if rp.identical:
        lines.append("the result is identical to the stored one")
    elif changed:
        lines.append(f"{changed} status{'es' if changed != 1 else ''} changed")
    else:
        lines.append("no status changed, but the result differs in its details (reasons, cautions or steps)")
    return "\n".join(lines) + "\n"
