"""The visits the web app keeps: each patient's draft session, saved after every answer.

One SQLite file beside the records database (mode 0600, WAL). A visit holds an
`engine.interview.session.Session` (the same draft the terminal interview saves), the digests of
its patient link and resume code (never the link or code), when they expire, where the patient
and the clinician are in the form, and whether the notes go on the patient's summary. Visit ids
are random and say nothing about the patient, so they may appear in a clinician's URLs.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UsageError
from engine.interview.session import Session
from engine.web.auth import token_digest

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
"""Resume codes avoid letters and digits that look alike (I/1, O/0, L, U)."""
CODE_LENGTH = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
  id TEXT PRIMARY KEY,
  created REAL NOT NULL,
  link_digest TEXT UNIQUE,
  code_digest TEXT UNIQUE,
  link_expires REAL NOT NULL,
  session TEXT NOT NULL,
  patient_cursor TEXT,
  clinician_cursor TEXT,
  notes_on_summary INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_COLUMNS = "id, created, link_expires, session, patient_cursor, clinician_cursor, notes_on_summary"
_SELECT = {key: f"SELECT {_COLUMNS} FROM visits WHERE {key} = ?" for key in ("id", "link_digest", "code_digest")}  # noqa: S608 (fixed column names)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(typed: str) -> str:
    """A resume code as typed: case, spaces and dashes do not matter."""
    return "".join(c for c in typed.upper() if c.isalnum())


def show_code(code: str) -> str:
    """A code in groups, easier to read aloud and type: 'ABCDE-FGHJK'."""
    return f"{code[:5]}-{code[5:]}"


@dataclass
class Visit:
    id: str
    created: float
    link_expires: float
    session: Session
    patient_cursor: str | None
    clinician_cursor: str | None
    notes_on_summary: bool


@dataclass(frozen=True)
class Link:
    """A fresh patient link token and resume code: shown once to the clinician, never stored."""

    token: str
    code: str
    expires: float


class VisitStore:
    """Visits in one SQLite file; one connection behind a lock (every statement is short)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir() or not path.parent.is_dir():
            raise UsageError(f"cannot keep the visits in {path}: give a file in an existing folder")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.fchmod(fd, 0o600)
        os.close(fd)
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{path} is not a pain-sdm visits database ({exc})") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def secret(self) -> str:
        """The key that signs cookies when no accounts file gives one; kept so links survive a restart."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
            if row is not None:
                return str(row[0])
            value = secrets.token_urlsafe(48)
            self._conn.execute("INSERT INTO meta (key, value) VALUES ('secret', ?)", (value,))
            return value

    def create(self, link_hours: float) -> tuple[Visit, Link]:
        visit_id = secrets.token_hex(12)
        session = Session()
        with self._lock:
            self._conn.execute(
                "INSERT INTO visits (id, created, link_expires, session) VALUES (?, ?, 0, ?)",
                (visit_id, time.time(), session.model_dump_json()),
            )
        link = self.new_link(visit_id, link_hours)
        return self.get(visit_id), link

    def new_link(self, visit_id: str, link_hours: float) -> Link:
        """A new link and code for the visit; the old ones stop working."""
        link = Link(secrets.token_urlsafe(32), new_code(), time.time() + link_hours * 3600)
        with self._lock:
            self._conn.execute(
                "UPDATE visits SET link_digest = ?, code_digest = ?, link_expires = ? WHERE id = ?",
                (token_digest(link.token), token_digest(link.code), link.expires, visit_id),
            )
        return link

    def _visit(self, where: str, value: str) -> Visit | None:
        with self._lock:
            row = self._conn.execute(_SELECT[where], (value,)).fetchone()
        if row is None:
            return None
        return Visit(row[0], row[1], row[2], Session.model_validate_json(row[3]), row[4], row[5], bool(row[6]))

    def get(self, visit_id: str) -> Visit:
        visit = self._visit("id", visit_id)
        if visit is None:
            raise KeyError(visit_id)
        return visit

    def find(self, visit_id: str) -> Visit | None:
        return self._visit("id", visit_id)

    def by_link(self, token: str) -> Visit | None:
        """The visit a link opens, if the link is current."""
        visit = self._visit("link_digest", token_digest(token))
        return visit if visit is not None and visit.link_expires > time.time() else None

    def by_code(self, typed: str) -> Visit | None:
        visit = self._visit("code_digest", token_digest(normal_code(typed)))
        return visit if visit is not None and visit.link_expires > time.time() else None

    def save(self, visit: Visit) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE visits SET session = ?, patient_cursor = ?, clinician_cursor = ?, notes_on_summary = ? "
                "WHERE id = ?",
                (
                    visit.session.model_copy(update={"updated": Session().updated}).model_dump_json(),
                    visit.patient_cursor,
                    visit.clinician_cursor,
                    int(visit.notes_on_summary),
                    visit.id,
                ),
            )

    def recent(self, limit: int = 50) -> list[Visit]:
        with self._lock:
            ids = [r[0] for r in self._conn.execute("SELECT id FROM visits ORDER BY created DESC LIMIT ?", (limit,))]
        return [self.get(i) for i in ids]
