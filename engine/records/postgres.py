"""The records store on a PostgreSQL server: the same records, chain and checks as the SQLite file.

A clinic network points every machine's `--db` (or `PAIN_SDM_DB`) at one server with a
`postgresql://` URL. This backend only moves rows: the record model, the hashes
(`record_hash`), the chain check (`chain_problems`) and copying (`copy_in`) are the SQLite
store's own, inherited, so a record copied between backends keeps its hash.

What differs, and why:

- **Content is stored as text**, byte for byte what was hashed (never `jsonb`, which would
  reorder keys); the views cast it to `jsonb` for the statistics.
- **The head is an append-only table** (`record_heads`, one row per append) rather than an
  updated row, so the application's role needs only INSERT and SELECT. Deleting records from
  the end is caught because the last head then names a record that is gone.
- **One writer at a time, by a transaction-level advisory lock** (`pg_advisory_xact_lock`),
  taken before the head is read: writers from any number of processes and machines queue, each
  gets the next id and links to the hash before it, so the chain never forks and has no gap. A
  lock is simpler and cheaper here than SERIALIZABLE with retries, which under several writers
  would abort most appends (they all read and extend the same head); the lock is released by
  COMMIT or ROLLBACK, and by the server when a killed writer's connection drops.
- **Triggers refuse UPDATE, DELETE and TRUNCATE** on both tables, and `verify` checks that they
  exist, are enabled and still run the refusing function, whose source it compares.
"""

from __future__ import annotations

import builtins
import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from engine.errors import OutputError, UsageError
from engine.records.store import FEEDBACK_COLUMNS, FORMAT, GENESIS, RecordStore, StoredRecord

if TYPE_CHECKING:
    import psycopg

# An arbitrary constant key for pg_advisory_xact_lock: the one writer lock of a records database.
WRITER_LOCK = 7_240_115_301

_GUARD_FUNCTION = "pain_sdm_append_only"
_GUARD_BODY = "BEGIN RAISE EXCEPTION 'pain-sdm records are append-only: % on % is refused', TG_OP, TG_TABLE_NAME; END"
# (trigger, table, timing and events, row or statement)
_GUARDS = (
    ("records_no_change", "records", "BEFORE DELETE OR UPDATE", "ROW"),
    ("records_no_truncate", "records", "BEFORE TRUNCATE", "STATEMENT"),
    ("record_heads_no_change", "record_heads", "BEFORE DELETE OR UPDATE", "ROW"),
    ("record_heads_no_truncate", "record_heads", "BEFORE TRUNCATE", "STATEMENT"),
    ("pain_sdm_meta_no_change", "pain_sdm_meta", "BEFORE DELETE OR UPDATE", "ROW"),
    ("cds_feedback_no_change", "cds_feedback", "BEFORE DELETE OR UPDATE", "ROW"),
)
_FEEDBACK_REQUIRED = ("received", "service", "card", "outcome", "outcome_time", "feedback")

_SCHEMA = [
    # Append-only too: a key's value is its latest row, so the application's role never updates.
    "CREATE TABLE pain_sdm_meta (id bigserial PRIMARY KEY, key text NOT NULL, value text NOT NULL)",
    """CREATE TABLE records (
        id bigint PRIMARY KEY,
        time text NOT NULL,
        patient_label text,
        profile text NOT NULL,
        rulebook_version text NOT NULL,
        answers text NOT NULL,
        result text NOT NULL,
        sure text,
        decision text,
        notes text,
        prev_hash text NOT NULL,
        hash text NOT NULL UNIQUE
    )""",
    "CREATE INDEX records_time ON records (time)",
    "CREATE TABLE record_heads (id bigint PRIMARY KEY, hash text NOT NULL)",
    f"""CREATE TABLE cds_feedback (
        id bigserial PRIMARY KEY,
        {", ".join(f"{c} text{' NOT NULL' if c in _FEEDBACK_REQUIRED else ''}" for c in FEEDBACK_COLUMNS)}
    )""",
    f"CREATE FUNCTION {_GUARD_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $guard${_GUARD_BODY}$guard$",
    *(
        f"CREATE TRIGGER {name} {events} ON {table} FOR EACH {level} EXECUTE FUNCTION {_GUARD_FUNCTION}()"
        for name, table, events, level in _GUARDS
    ),
    """CREATE VIEW firings AS
        SELECT r.id AS record_id, r.time AS time, t ->> 'rule_id' AS rule_id,
               (t ->> 'rule_version')::int AS rule_version, (t ->> 'holds')::boolean AS holds
        FROM records AS r, jsonb_array_elements(r.result::jsonb -> 'trace') AS t""",
    """CREATE VIEW option_statuses AS
        SELECT r.id AS record_id, r.time AS time, o ->> 'procedure' AS procedure, o ->> 'status' AS status
        FROM records AS r, jsonb_array_elements(r.result::jsonb -> 'options') AS o""",
]

_WINDOW = """WITH w AS (
    SELECT * FROM records
    WHERE (%(since)s::text IS NULL OR time >= %(since)s) AND (%(until)s::text IS NULL OR time <= %(until)s)
)"""
_INSERT = (
    "INSERT INTO records (id, time, patient_label, profile, rulebook_version, answers, result, sure, decision, "
    "notes, prev_hash, hash) VALUES (%(id)s, %(time)s, %(patient_label)s, %(profile)s, %(rulebook_version)s, "
    "%(answers)s, %(result)s, %(sure)s, %(decision)s, %(notes)s, %(prev_hash)s, %(hash)s)"
)


def redact(url: str) -> str:
    """The URL without its password, for messages and output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = f"{parts.username}:***@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, parts.query, parts.fragment))


def check_url(url: str) -> str:
    """A `postgresql://` URL, checked for its form (the server is asked only when the store opens)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UsageError(f"--db {redact(url)}: not a valid PostgreSQL URL ({exc})") from None
    if not parts.hostname and "host=" not in parts.query:
        raise UsageError(
            f"--db {redact(url)}: give the server, as in postgresql://USER@HOST:5432/DATABASE "
            "(or ?host=/path/to/socket)"
        )
    return url


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        raise UsageError("a postgresql:// database needs the psycopg package: pip install 'psycopg[binary]'") from None
    return psycopg


class NoRecordsYet(UsageError):
    """The database answers but holds no pain-sdm tables yet (a reader's error; a writer makes them)."""


class PostgresStore(RecordStore):
    """An open records database on a PostgreSQL server (see the module docstring)."""

    def __init__(self, conn: psycopg.Connection[Any], url: str) -> None:  # noqa: D107
        self.pg = conn
        self.url = url
        self.path = Path(redact(url))  # for callers that only print it; `where` is the exact form

    @property
    def where(self) -> str:
        return redact(self.url)

    @classmethod
    def connect(cls, url: str, *, create: bool = True) -> PostgresStore:
        """Connect; with `create`, make the tables if this database has none (as a role allowed to)."""
        psycopg = _driver()
        from psycopg.rows import dict_row  # rows by column name, as the shared chain code reads SQLite's

        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=15, row_factory=dict_row)
        except psycopg.Error as exc:
            raise UsageError(f"cannot connect to the records database {redact(url)}: {_first_line(exc)}") from None
        store = cls(conn, url)
        try:
            store._prepare_pg(create)
        except psycopg.Error as exc:
            conn.close()
            raise UsageError(f"{redact(url)}: cannot use it as a records database: {_first_line(exc)}") from None
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def check_writable(cls, url: str) -> None:
        """For `evaluate --record`: the server answers, and an existing chain's head is sound."""
        try:
            store = cls.connect(url, create=False)
        except NoRecordsYet:  # the first record will make the tables
            return
        with store:
            store.check_head()

    def _prepare_pg(self, create: bool) -> None:
        with self.pg.transaction():
            if create:
                # Two first writers at once must not both create the tables.
                self.pg.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            exists = self._one("SELECT to_regclass('records') IS NOT NULL AS x")["x"]
            if exists:
                fmt = self._meta("format")
                if fmt != FORMAT:
                    raise UsageError(
                        f"{self.where} is not a pain-sdm records database (format {fmt!r}, expected {FORMAT})"
                    )
                return
            if not create:
                raise NoRecordsYet(
                    f"no pain-sdm records in {self.where} (it has no records table); records are stored by "
                    "`pain-sdm evaluate --record`, the interview, or `pain-sdm records copy`"
                )
            for statement in _SCHEMA:
                self.pg.execute(statement)
            self.pg.execute("INSERT INTO pain_sdm_meta (key, value) VALUES ('format', %s)", (FORMAT,))

    def _one(self, query: str, params: Mapping[str, Any] | None = None) -> Any:
        """The one row an aggregate query returns."""
        row = self.pg.execute(query, params).fetchone()
        assert row is not None, query  # noqa: S101 - aggregates always return a row
        return row

    # --- the primitives the shared store code calls -------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.pg.execute(
            "SELECT value FROM pain_sdm_meta WHERE key = %s ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()
        return None if row is None else str(row["value"])

    def _head(self) -> tuple[int, str] | None:
        row = self.pg.execute("SELECT id, hash FROM record_heads ORDER BY id DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row["id"]), str(row["hash"]))

    def close(self) -> None:
        self.pg.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        psycopg = _driver()
        try:
            with self.pg.transaction():
                self.pg.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
                yield
        except psycopg.Error as exc:
            raise OutputError(f"cannot write to the records database {self.where}: {_first_line(exc)}") from None

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Reads that see the database at one moment: a REPEATABLE READ transaction (inside a write, that one)."""
        from psycopg import pq

        if self.pg.info.transaction_status != pq.TransactionStatus.IDLE:
            yield
            return
        with self.pg.transaction():
            self.pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def _write(self, row: Mapping[str, Any]) -> None:
        self.pg.execute(_INSERT, dict(row))
        self.pg.execute("INSERT INTO record_heads (id, hash) VALUES (%s, %s)", (row["id"], row["hash"]))

    def _set_meta(self, key: str, value: str) -> None:
        self.pg.execute("INSERT INTO pain_sdm_meta (key, value) VALUES (%s, %s)", (key, value))

    def add_feedback(self, rows: Sequence[Mapping[str, str | None]]) -> int:
        with self._writing():
            for row in rows:
                self.pg.execute(
                    f"INSERT INTO cds_feedback ({', '.join(FEEDBACK_COLUMNS)}) "  # noqa: S608 - constant names
                    f"VALUES ({', '.join(f'%({c})s' for c in FEEDBACK_COLUMNS)})",
                    {k: row.get(k) for k in FEEDBACK_COLUMNS},
                )
        return len(rows)

    def feedback(self) -> builtins.list[dict[str, Any]]:
        return [dict(r) for r in self.pg.execute("SELECT * FROM cds_feedback ORDER BY id")]

    def _row(self, rid: int) -> Any:
        row = self.pg.execute("SELECT * FROM records WHERE id = %s", (rid,)).fetchone()
        if row is None:
            raise UsageError(f"no record {rid} in {self.where}")
        return row

    def _chain(self) -> Iterator[Mapping[str, Any]]:
        yield from self._stream("SELECT * FROM records ORDER BY id", {})

    def _stream(self, query: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Rows through a server-side cursor, a few hundred at a time: a large store is never held in memory."""
        with self.pg.transaction(), self.pg.cursor(name="pain_sdm_rows") as cur:
            cur.itersize = 500
            cur.execute(query, params)
            yield from cur

    def _hash_of(self, rid: int) -> str | None:
        row = self.pg.execute("SELECT hash FROM records WHERE id = %s", (rid,)).fetchone()
        return None if row is None else str(row["hash"])

    def _guard_problems(self) -> builtins.list[str]:
        problems = []
        found = {
            r["name"]: r
            for r in self.pg.execute(
                "SELECT t.tgname AS name, c.relname AS table_name, t.tgenabled AS enabled, p.proname AS function, "
                "pg_get_triggerdef(t.oid) AS definition FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal AND c.relname = ANY(%s)",
                (sorted({table for _name, table, _events, _level in _GUARDS}),),
            )
        }
        for name, table, events, level in _GUARDS:
            trigger = found.get(name)
            expected = f"{events} ON public.{table} FOR EACH {level} EXECUTE FUNCTION {_GUARD_FUNCTION}()"
            if trigger is None:
                problems.append(f"the append-only guard {name} was removed: the database was altered")
            elif trigger["enabled"] == "D":
                problems.append(f"the append-only guard {name} is disabled: the database was altered")
            elif not _same_sql(trigger["definition"].split(name, 1)[-1], expected):
                problems.append(f"the append-only guard {name} was redefined: the database was altered")
        body = self.pg.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = %s AND prorettype = 'trigger'::regtype", (_GUARD_FUNCTION,)
        ).fetchall()
        if len(body) != 1 or not _same_sql(body[0]["prosrc"], _GUARD_BODY):
            problems.append(f"the guard function {_GUARD_FUNCTION} was redefined: the database was altered")
        return problems

    # --- reading ---

    def _rows(self, since: str | None = None, until: str | None = None) -> Iterator[Any]:
        yield from self._stream(_WINDOW + " SELECT * FROM w ORDER BY id", {"since": since, "until": until})  # noqa: S608

    def list(
        self, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> builtins.list[StoredRecord]:
        rows = self.pg.execute(
            _WINDOW + " SELECT * FROM w ORDER BY id DESC LIMIT %(limit)s",  # noqa: S608
            {"since": since, "until": until, "limit": limit},
        ).fetchall()
        return [StoredRecord.from_row(r) for r in reversed(rows)]

    def count(self) -> int:
        return int(self._one("SELECT count(*) AS n FROM records")["n"])

    def head(self) -> tuple[int, str]:
        last = self.pg.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        return (int(last["id"]), str(last["hash"])) if last else (0, GENESIS)

    def _stat_rows(
        self, window: Mapping[str, Any]
    ) -> tuple[Sequence[Any], Iterable[Sequence[Any]], Iterable[Sequence[Any]]]:
        totals = self._one(
            _WINDOW  # noqa: S608
            + " SELECT count(*) AS n, min(time) AS first, max(time) AS last, "
            "sum(CASE WHEN (result::jsonb ->> 'urgent_assessment')::boolean THEN 1 ELSE 0 END) AS urgent FROM w",
            window,
        )
        firings = self.pg.execute(
            _WINDOW  # noqa: S608
            + " SELECT t ->> 'rule_id' AS rule_id, coalesce((t ->> 'holds')::boolean, false) AS holds, "
            "count(*) AS n, count(DISTINCT w.id) AS recs FROM w, jsonb_array_elements(w.result::jsonb -> 'trace') t "
            "GROUP BY 1, 2",
            window,
        ).fetchall()
        statuses = self.pg.execute(
            _WINDOW  # noqa: S608
            + " SELECT o ->> 'procedure' AS procedure, o ->> 'status' AS status, count(*) AS n "
            "FROM w, jsonb_array_elements(w.result::jsonb -> 'options') o GROUP BY 1, 2",
            window,
        ).fetchall()
        return tuple(totals.values()), [tuple(r.values()) for r in firings], [tuple(r.values()) for r in statuses]


def _same_sql(a: str, b: str) -> bool:
    """Two SQL texts equal but for whitespace and letter case."""
    return re.sub(r"\s+", " ", a).strip().lower() == re.sub(r"\s+", " ", b).strip().lower()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
