"""Helpers for the web app's tests: an app on a temporary database, and a client that fills in forms.

`Visitor` is one browser without a browser: it keeps its cookie, reads the CSRF token from the
last page, and answers the form question by question from an answers mapping, posting each
answer as the page's own fields would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from engine.evaluation.aid import DecisionAid
from engine.model.questionnaire import UNKNOWN
from engine.web.app import WebConfig, create_app, visits_path
from engine.web.auth import Accounts
from engine.web.forms import form_fields

LOCAL = "http://127.0.0.1"


def make_app(aid: DecisionAid, folder: Path, accounts: Accounts | None = None, link_hours: float = 72) -> Starlette:
    db = folder / "records.sqlite3"
    return create_app(WebConfig(aid, db, visits_path(db), accounts, link_hours))


class Visitor:
    """One person's browser session against the app."""

    def __init__(self, app: Starlette, client: tuple[str, int] = ("127.0.0.1", 50000), base: str = LOCAL) -> None:
        self.http = TestClient(app, base_url=base, client=client, follow_redirects=True)
        self.page = ""

    def get(self, url: str, **kwargs: Any) -> Any:
        response = self.http.get(url, **kwargs)
        self.page = response.text
        return response

    def csrf(self) -> str:
        if "csrf" not in self.page:
            self.get("/start")
        match = re.search(r'name="csrf" value="([^"]+)"', self.page)
        assert match, "no CSRF token on the page"
        return match.group(1)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        response = self.http.post(url, data={"csrf": self.csrf(), **(data or {})}, **kwargs)
        self.page = response.text
        return response

    def shown_question(self) -> str | None:
        if 'id="question-form"' not in self.page:
            return None
        match = re.search(r'name="question" value="([a-z0-9_]+)"', self.page)
        assert match
        return match.group(1)

    def answer_all(self, aid: DecisionAid, answers: dict[str, Any], action: str = "/form") -> list[str]:
        """Answer every question the form shows, from `answers` ('not sure' where none is given)."""
        asked = []
        while (qid := self.shown_question()) is not None:
            q = aid.questionnaire.questions[qid]
            value = answers.get(qid, "" if q.type == "text" else UNKNOWN)
            response = self.post(action, {"question": qid, **form_fields(q, value)})
            assert response.status_code == 200, (qid, response.status_code)
            asked.append(qid)
            assert len(asked) < 200, "the form never ended"
        return asked


def new_visit(clinician: Visitor) -> tuple[str, str, str]:
    """A new visit from the clinician's dashboard: its id, the patient's link path and the resume code."""
    clinician.get("/")
    page = clinician.post("/visits").text
    link = re.search(r'id="patient-link" class="long" href="http://[^/]+(/p/[^"]+)"', page)
    code = re.search(r"Code: <strong>([A-Z0-9-]+)</strong>", page)
    vid = re.search(r"/visits/([0-9a-f]+)/open", page)
    assert link and code and vid
    return vid.group(1), link.group(1), code.group(1)


def statuses(page: str) -> dict[str, str]:
    """The status of every option on a clinician's results page."""
    return dict(re.findall(r'data-procedure="(\w+)" data-status="(\w+)"', page))
