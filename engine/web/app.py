"""The clinic's web app: configuration, security middleware, error pages, the evaluation worker, `serve`.

`create_app(config)` builds the Starlette app; `serve(...)` checks the bind address, loads the
decision aid and runs uvicorn. Security, because this serves patient data:

- Loopback by default. Any other address needs clinician accounts (`--accounts FILE`); without
  them the app also refuses any request that does not come from this computer, or that names
  another host (DNS rebinding).
- Every response carries a strict Content-Security-Policy (no script at all, nothing from
  elsewhere, frame-ancestors 'none'), X-Content-Type-Options, no-referrer and no-store.
- No patient data in URLs (answers are posted; visit ids are random) or logs (the access log
  names the method, the first part of the path and the status only), and error pages say in
  plain words what happened, never what was typed.
- Evaluations run on two threads of their own, each with its own engines (the decision aid makes
  one per profile per thread); records, PDFs and sign-ins run in Starlette's thread pool.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount

from engine.errors import UsageError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Result
from engine.presentation.templating import environment
from engine.web.auth import COOKIE, Accounts, CookieSigner, WebSession
from engine.web.visits import VisitStore

log = logging.getLogger("pain_sdm.web")
T = TypeVar("T")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
ERRORS = {
    400: ("Something in that request was not right", "Go back and try again."),
    403: (
        "This page is not open to you",
        "A patient link opens only that patient's own form. Clinicians: sign in first. "
        "If you were filling in a form, go back, reload the page and try again.",
    ),
    404: ("We could not find that page", "Check the link, or go back to the start."),
    405: ("That cannot be done here", "Go back and use the buttons on the page."),
    500: (
        "Something went wrong on our side",
        "Nothing you typed is lost: every answer is saved as you go. Please try again in a moment.",
    ),
}


def is_loopback(host: str) -> bool:
    """Whether an address or host name is this computer only."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host named by a Host header, without its port: '[::1]:8000' -> '[::1]', 'localhost:80' -> 'localhost'."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


class EvaluationWorker:
    """Runs every evaluation on a small, fixed pool of threads.

    A `DecisionAid` makes one engine per profile in each thread that evaluates; a pool of a few
    threads (not Starlette's forty) keeps that to a few engines, all built by `warm` at start.
    """

    def __init__(self, aid: DecisionAid, threads: int = 2) -> None:
        self.aid = aid
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pain-sdm-engine")
        self.threads = threads

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """`func(aid, *args)` on one of the evaluation threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, self.aid, *args)

    async def evaluate(self, answers: BaseModel, profile: str | None) -> Result:
        return await self.run(DecisionAid.evaluate, answers, profile)

    def warm(self) -> list[Future[None]]:
        """Build every profile's engines on every worker thread, in the background, before the first requests.

        Requests that arrive meanwhile queue behind this work on the same threads.
        """
        answers = self.aid.parse_answers({})
        barrier = threading.Barrier(self.threads)

        def build() -> None:
            barrier.wait(timeout=30)  # one task per thread
            for profile in self.aid.rulebook.profiles:
                self.aid.evaluate(answers, profile, compare_profiles=False)

        return [self._pool.submit(build) for _ in range(self.threads)]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class WebConfig:
    aid: DecisionAid
    records_db: Path | str
    visits_db: Path
    accounts: Accounts | None = None
    link_hours: float = 72.0
    tls: bool = False
    state: dict[str, Any] = field(default_factory=dict)


class WebApp:
    """What every handler needs: the aid, the stores, the cookie signer, the worker, the settings."""

    def __init__(self, config: WebConfig) -> None:
        self.aid = config.aid
        self.records_db = config.records_db
        self.accounts = config.accounts
        self.link_hours = config.link_hours
        self.tls = config.tls
        self.visits = VisitStore(config.visits_db)
        secret = config.accounts.secret if config.accounts else self.visits.secret()
        self.signer = CookieSigner(secret)
        self.worker = EvaluationWorker(config.aid)

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: WebSession = request.state.session
        html = (
            environment()
            .get_template(f"web/{template}")
            .render(session=session, csrf=session.csrf, accounts=self.accounts is not None, **context)
        )
        return HTMLResponse(html, status_code=status)


def web(request: Request) -> WebApp:
    app: WebApp = request.app.state.web
    return app


def error_page(request: Request, status: int) -> HTMLResponse:
    title, advice = ERRORS.get(status, ERRORS[400 if status < 500 else 500])
    if not hasattr(request.state, "session"):
        request.state.session = WebSession.anonymous()
    return web(request).render(request, "error.html", status=status, title=title, advice=advice)


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error_page(request, status)


async def server_error(request: Request, exc: Exception) -> Response:
    # The exception's text may hold an answer; the log names its kind and the page says nothing of it.
    log.error("error %s on %s %s", type(exc).__name__, request.method, first_segment(request.url.path))
    return error_page(request, 500)


def first_segment(path: str) -> str:
    """The part of a path that is safe to log: '/visits/...' for '/visits/3f2a.../sure'."""
    parts = path.split("/")
    return "/" + parts[1] + ("/..." if len(parts) > 2 else "")


class SecurityMiddleware(BaseHTTPMiddleware):
    """Loopback-only without accounts; the session cookie read and written; security headers on everything."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        app = web(request)
        client = request.client.host if request.client else ""
        host = host_name(request.headers.get("host", ""))
        cookie = request.cookies.get(COOKIE)
        session = app.signer.loads(cookie)
        request.state.session = session or WebSession.anonymous()
        request.state.forged = cookie is not None and session is None
        if app.accounts is None and not (is_loopback(client) and is_loopback(host)):
            response: Response = error_page(request, 403)
        else:
            response = await call_next(request)
        fresh: WebSession = request.state.session
        if fresh is not session:
            response.set_cookie(
                COOKIE,
                app.signer.dumps(fresh),
                max_age=max(int(fresh.expires - time.time()), 0),
                httponly=True,
                samesite="strict",
                secure=app.tls,
                path="/",
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        log.info(
            "%s %s %d %.0f ms",
            request.method,
            first_segment(request.url.path),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response


def create_app(config: WebConfig) -> Starlette:
    from engine.fhir.cds_hooks import cds_router
    from engine.web.routes import routes

    app_state = WebApp(config)
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: http_error,
        Exception: server_error,
    }
    route_list: list[BaseRoute] = routes()
    # CDS Hooks (engine/fhir/cds_hooks.py) last: a Mount at "" would otherwise take every path.
    cds = cds_router(config.aid, config.records_db, evaluate=app_state.worker.evaluate, clinician_path="/")
    route_list.append(Mount("", routes=cds.routes))
    app = Starlette(routes=route_list, middleware=[Middleware(SecurityMiddleware)], exception_handlers=handlers)
    app.state.web = app_state
    return app


def check_bind(host: str, accounts: Accounts | None) -> None:
    """Any address but loopback serves patient data to a network: it needs clinician accounts."""
    if not is_loopback(host) and accounts is None:
        raise UsageError(
            f"--host {host} would serve patient data to other computers, so it needs clinician accounts: "
            "add one with `pain-sdm accounts add NAME --accounts FILE`, then run "
            f"`pain-sdm serve --host {host} --accounts FILE` (and --tls-cert/--tls-key for HTTPS)"
        )


def visits_path(records_db: Path | str) -> Path:
    """The visits database sits beside the records database: records.sqlite3 -> records.visits.sqlite3.

    With records on a PostgreSQL server, the visits (forms in progress) stay on this machine, in
    the user's data folder.
    """
    if isinstance(records_db, str):
        from platformdirs import user_data_dir

        return Path(user_data_dir("pain-sdm")) / "visits.sqlite3"
    return records_db.with_name(records_db.stem + ".visits.sqlite3")


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound to `host` and `port` (0 for any free port).

    It names IPPROTO_TCP, so asyncio sets TCP_NODELAY on every connection it accepts (it checks the
    protocol number): without it, on a kept-alive connection, a page's body waits for the browser's
    delayed acknowledgement of its headers, about 40 ms a page.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(
    *,
    host: str,
    port: int,
    db: Path | str | None,
    accounts_file: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    link_hours: float,
    rules: Path | None,
    knowledge: Path | None,
    say: Callable[[str], None],
) -> None:
    """`pain-sdm serve`: check everything, bind, print the address, and serve until Ctrl-C."""
    import uvicorn

    from engine.records.store import check_path, display

    accounts = Accounts.load(accounts_file) if accounts_file is not None else None
    check_bind(host, accounts)
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("give both --tls-cert and --tls-key, or neither")
    where = check_path(db)
    records_db = where if isinstance(where, str) else where.resolve()
    visits = visits_path(records_db)
    if not visits.parent.exists():
        visits.parent.mkdir(parents=True, mode=0o700)
    aid = DecisionAid.load(rules, knowledge)
    config = WebConfig(aid, records_db, visits, accounts, link_hours, tls=tls_cert is not None)
    app = create_app(config)
    app.state.web.worker.warm()
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    uv = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    server = uvicorn.Server(uv)
    say(f"pain-sdm is serving on {scheme}://{shown}:{bound}/ (records in {display(records_db)}; Ctrl-C to stop)")
    try:
        server.run(sockets=[sock])
    finally:
        app.state.web.worker.close()
        app.state.web.visits.close()
