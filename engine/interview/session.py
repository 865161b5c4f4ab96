"""A saved interview session: the answers so far, plus what the patient and clinician decided.

The interview saves a draft after every answer (so nothing is lost) and the final session
at the end; `summary` and `records` read it. Answers inside may be partial while the
session is a draft; they are validated strictly when evaluated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import AnswersError
from engine.model.loading import problems_from, read_data
from engine.output import write_atomic
from engine.records.store import MAX_LABEL, MAX_TEXT

TEXT_LIMITS = {
    "decision": MAX_TEXT,
    "notes": MAX_TEXT,
    "clinician": MAX_LABEL,
    "others": MAX_TEXT,
    "next_step": MAX_TEXT,
}
"""The most characters of each free text a session keeps (as the records store keeps them)."""

SESSION_FORMAT = "pain-sdm/session/1"

SURE_ITEMS: dict[str, str] = {
    "sure": "Do you feel SURE about the best choice for you?",
    "understand": "Do you know the benefits and risks of each option?",
    "values": "Are you clear about which benefits and risks matter most to you?",
    "support": "Do you have enough support and advice to make a choice?",
}
"""The SURE test (Légaré et al., 2010): four yes/no items; any 'no' suggests decisional conflict."""


class SureResult(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sure: bool
    understand: bool
    values: bool
    support: bool

    @property
    def score(self) -> int:
        return sum((self.sure, self.understand, self.values, self.support))

    @property
    def conflict(self) -> bool:
        """A score below 4 flags possible decisional conflict: talk more before deciding."""
        return self.score < 4


OTTAWA_CHOICES: dict[str, tuple[str, dict[str, str]]] = {
    "when": (
        "When does this choice need to be made?",
        {"days": "Within days", "weeks": "Within weeks", "months": "Within months", "no_rush": "There is no rush"},
    ),
    "stage": (
        "How far along are you with this choice?",
        {
            "not_started": "I have not thought about it yet",
            "considering": "I am thinking about the options",
            "close": "I am close to choosing",
            "made": "I have made a choice",
        },
    ),
    "role": (
        "How would you like to make this choice?",
        {
            "myself": "I will decide, after hearing what others think",
            "shared": "I will decide together with my clinician",
            "clinician": "I would like my clinician to decide",
        },
    ),
    "pressure": ("Do you feel pressure from others to pick one option?", {"no": "No", "yes": "Yes"}),
}
"""The Ottawa Personal Decision Guide's items beyond SURE (O'Connor et al.): timing, stage, role, pressure."""
OTTAWA_TEXTS: dict[str, str] = {
    "others": "Who else is part of this choice, if anyone? (optional)",
    "next_step": "What will you do next, given what is still unclear? (optional)",
}


class OttawaGuide(BaseModel):
    """The patient's answers to the Ottawa guide's items; printed on the summary with the next step."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    when: Literal["days", "weeks", "months", "no_rush"]
    stage: Literal["not_started", "considering", "close", "made"]
    role: Literal["myself", "shared", "clinician"]
    pressure: Literal["no", "yes"]
    others: str = Field(default="", max_length=TEXT_LIMITS["others"])
    next_step: str = Field(default="", max_length=TEXT_LIMITS["next_step"])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Session(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["pain-sdm/session/1"] = "pain-sdm/session/1"
    created: dt.datetime = Field(default_factory=_now)
    updated: dt.datetime = Field(default_factory=_now)
    complete: bool = False
    profile: str | None = None
    answers: dict[str, Any] = {}
    leaning: str | None = None
    sure: SureResult | None = None
    ottawa: OttawaGuide | None = None
    clinician: str = Field(default="", max_length=TEXT_LIMITS["clinician"])
    notes: str = Field(default="", max_length=TEXT_LIMITS["notes"])
    decision: str = Field(default="", max_length=TEXT_LIMITS["decision"])
    record_id: int | None = Field(default=None, description="the records-database record this session was stored as")
    record_of: str = Field(default="", description="digest of what that record holds: a re-run stores no copy")


def too_long(raw: str, limit: int) -> str | None:
    """What to tell someone whose free text is longer than a session keeps; None when it fits."""
    length = len(raw.strip())
    return f"Please keep this to {limit:,} characters or fewer (it has {length:,})." if length > limit else None


def load_session(path: Path) -> Session:
    """Read a saved session; a bad file is an AnswersError naming each problem."""
    data = read_data(path, AnswersError)
    try:
        return Session.model_validate(data)
    except ValidationError as exc:
        raise AnswersError(problems_from(exc, str(path), data, Session)) from exc


def save_session(session: Session, path: Path) -> None:
    """Save atomically (a draft is overwritten in place; a crash never leaves half a file)."""
    updated = session.model_copy(update={"updated": _now()})
    write_atomic(path, json.dumps(updated.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n", force=True)


def record_digest(db: Path | str, profile: str, rulebook: str, answers: dict[str, Any], session: Session) -> str:
    """A digest of what a record of this session would hold: a session stores a new record only when it changes."""
    stored = {
        "db": db if isinstance(db, str) else str(db.resolve()),
        "profile": profile,
        "rulebook": rulebook,
        "answers": answers,
        **session.model_dump(mode="json", include={"sure", "decision", "notes", "clinician"}),
    }
    return hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()
