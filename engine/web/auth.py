"""Who may see what: clinician accounts, signed session cookies, CSRF tokens and patient links.

- Clinician accounts live in one JSON file (`pain-sdm accounts add NAME --accounts FILE`), with
  passwords hashed by argon2 (argon2-cffi) and the key that signs cookies. Without accounts the
  app serves only this computer (loopback), and anyone at it is taken to be the clinician.
- The session is one cookie, signed with itsdangerous (a forged or altered cookie reads as no
  session), HttpOnly and SameSite=Strict, Secure over TLS. It carries a role (`clinician`,
  `patient` or `anon`), who it is, when it expires and the CSRF token every form must send back.
- A patient link holds a random token; only its SHA-256 is stored. It opens one visit's form,
  expires, and gives a `patient` session that no clinician or reviewer page accepts.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from engine.errors import UsageError
from engine.output import write_atomic

ACCOUNTS_FORMAT = "pain-sdm/accounts/1"
COOKIE = "pain_sdm"
CLINICIAN_HOURS = 12
MIN_PASSWORD = 10
Role = Literal["clinician", "patient", "anon"]

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to check an unknown name against, so that it takes as long as a wrong password."""
    return _hasher.hash("not a real password, for constant-time refusals")


def token_digest(token: str) -> str:
    """What is stored for a link token or resume code: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Accounts:
    """Clinician accounts: name -> argon2 hash, and the secret that signs cookies."""

    path: Path
    secret: str
    clinicians: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> Accounts:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(
                f"no accounts file at {path}; add one with: pain-sdm accounts add NAME --accounts {path}"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the accounts file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != ACCOUNTS_FORMAT:
            raise UsageError(f"{path}: not a pain-sdm accounts file (expected format {ACCOUNTS_FORMAT})")
        secret, clinicians = data.get("secret"), data.get("clinicians")
        if not isinstance(secret, str) or len(secret) < 32 or not isinstance(clinicians, dict) or not clinicians:
            raise UsageError(f"{path}: the accounts file needs a `secret` and at least one clinician")
        if os.stat(path).st_mode & 0o077:
            raise UsageError(f"{path}: the accounts file must be readable by its owner only (chmod 600 {path})")
        return cls(path, secret, {str(k): str(v) for k, v in clinicians.items()})

    def check(self, name: str, password: str) -> bool:
        """Whether the password is this clinician's; an unknown name costs the same time as a wrong password."""
        stored = self.clinicians.get(name)
        try:
            return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


def add_account(path: Path, name: str, password: str) -> None:
    """Add or replace one clinician's password in the accounts file (created mode 0600 with a new secret)."""
    name = name.strip()
    if not name or len(name) > 80 or any(c.isspace() for c in name):
        raise UsageError("a clinician's account name is one word of at most 80 characters")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if path.exists():
        accounts = Accounts.load(path)
        secret, clinicians = accounts.secret, accounts.clinicians
    else:
        secret, clinicians = secrets.token_urlsafe(48), {}
    clinicians[name] = _hasher.hash(password)
    text = json.dumps({"format": ACCOUNTS_FORMAT, "secret": secret, "clinicians": clinicians}, indent=2) + "\n"
    write_atomic(path, text, force=True)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class WebSession:
    """What the session cookie says: the role, who (a clinician's name or a visit id), expiry, CSRF token."""

    role: Role
    who: str
    expires: float
    csrf: str

    @classmethod
    def anonymous(cls) -> WebSession:
        return cls("anon", "", time.time() + CLINICIAN_HOURS * 3600, secrets.token_urlsafe(24))

    @classmethod
    def clinician(cls, name: str) -> WebSession:
        return cls("clinician", name, time.time() + CLINICIAN_HOURS * 3600, secrets.token_urlsafe(24))

    @classmethod
    def patient(cls, visit_id: str, expires: float) -> WebSession:
        return cls("patient", visit_id, expires, secrets.token_urlsafe(24))

    def csrf_ok(self, sent: Any) -> bool:
        return isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class CookieSigner:
    """Signs and reads the session cookie; anything forged, altered, expired or malformed reads as None."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="pain-sdm-session")

    def dumps(self, session: WebSession) -> str:
        return self._serializer.dumps([session.role, session.who, session.expires, session.csrf])

    def loads(self, cookie: str | None) -> WebSession | None:
        if not cookie:
            return None
        try:
            role, who, expires, csrf = self._serializer.loads(cookie, max_age=CLINICIAN_HOURS * 3600 * 14)
        except (BadSignature, ValueError, TypeError):
            return None
        if role not in ("clinician", "patient", "anon") or not isinstance(who, str) or not isinstance(csrf, str):
            return None
        if not isinstance(expires, int | float) or expires < time.time():
            return None
        return WebSession(role, who, float(expires), csrf)
