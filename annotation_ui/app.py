"""The annotator web app: FastAPI, server-rendered Jinja2 pages, one SQLite file.

Every request opens its own SQLite connection in a worker thread (`_db`); pages are
plain HTML forms, so the app works without JavaScript, and `static/app.js` adds the
keyboard shortcuts and draft autosave on top.

Anyone who reaches the port can send requests, so the outermost layer (`limits.BodyLimit`)
bounds request bodies before anything parses them or asks who is sending, and logins are
throttled per account and per client address (`limits.LoginThrottle`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi import Path as PathValue
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from annotation_ui import export, limits, security, store
from annotation_ui.render import markdown
from annotation_ui.tasks import (
    ATTRIBUTE_SPECS,
    EDIT,
    MAX_TEXT,
    MIN_FEEDBACK,
    MIN_JUSTIFICATION,
    NOT_RATABLE,
    PAIR_TASKS,
    PREFERENCE_CHOICES,
    SCALE,
    AnswerError,
    form_values,
    parse_answer,
)
from helpsteer.conversation import flat_to_messages

HERE = Path(__file__).parent
SESSION_COOKIE = "hs_session"
LOGIN_COOKIE = "hs_login_csrf"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
T = TypeVar("T")
ItemId = Annotated[int, PathValue(ge=1, le=2**63 - 1)]
"""SQLite integers are 64-bit: a larger id would be an OverflowError, not a missing item."""
log = logging.getLogger("annotation_ui.login")


@dataclass(frozen=True)
class Settings:
    db: Path
    guidelines: str
    synchronous: str = "FULL"
    secure_cookies: bool = False
    title: str = "HelpSteer annotation"
    max_body_bytes: int = limits.DEFAULT_MAX_BODY
    max_form_fields: int = limits.DEFAULT_MAX_FIELDS
    login_window: float = 300.0
    """Seconds a lockout lasts, and the span in which failed logins are counted."""
    login_per_account: int = 5
    login_per_address: int = 20


class Refused(Exception):
    """Stop handling a request with this status and one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class LoginNeeded(Exception):
    pass


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title=settings.title, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.guidelines_html = markdown(settings.guidelines)
    templates = Jinja2Templates(directory=HERE / "templates")
    app.state.templates = templates
    app.state.throttle = limits.LoginThrottle(
        settings.login_window, settings.login_per_account, settings.login_per_address
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _add_handlers(app)
    _add_pages(app)
    _add_item_routes(app)
    _add_admin_routes(app)
    app.add_middleware(SecurityHeaders)
    # Added last, so it is the outermost middleware: sizes are checked before anything else.
    app.add_middleware(limits.BodyLimit, max_bytes=settings.max_body_bytes)
    return app


# --- plumbing -------------------------------------------------------------------------------


async def _db(request: Request, work: Callable[[sqlite3.Connection], T]) -> T:
    settings: Settings = request.app.state.settings

    def run() -> T:
        conn = store.connect(settings.db, settings.synchronous)
        try:
            return work(conn)
        finally:
            conn.close()

    return await run_in_threadpool(run)


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("session", None)
    context["title"] = request.app.state.settings.title
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


def _session(conn: sqlite3.Connection, request: Request) -> store.Session:
    session = store.session_for(conn, request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.method == "GET":
            raise LoginNeeded
        raise Refused(403, "Your session has expired or you are not logged in; log in again.")
    return session


def _admin(conn: sqlite3.Connection, request: Request) -> store.Session:
    session = _session(conn, request)
    if not session.is_admin:
        raise Refused(403, "This page is for project admins.")
    return session


def _check_csrf(session: store.Session, request: Request, form: dict[str, str]) -> None:
    sent = form.get("csrf_token") or request.headers.get("x-csrf-token")
    if not security.same(sent, session.csrf):
        raise Refused(403, "The form's security token is missing or stale; reload the page.")


async def _form(request: Request) -> dict[str, str]:
    """The form's text fields. The body is at most `max_body_bytes` (BodyLimit); its fields
    are counted before parsing, since each parsed field costs far more than its bytes."""
    settings: Settings = request.app.state.settings
    body = await request.body()
    fields = limits.count_fields(body, request.headers.get("content-type", ""))
    if fields > settings.max_form_fields:
        raise Refused(413, f"The form has too many fields (at most {settings.max_form_fields}).")
    try:
        data = await request.form(
            max_files=0,
            max_fields=settings.max_form_fields,
            max_part_size=settings.max_body_bytes,
        )
    except StarletteHTTPException as exc:
        raise Refused(400, f"The form could not be read: {exc.detail}") from None
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return _render(
            request, "message.html", exc.status, heading="Not possible", text=exc.message
        )

    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, exc: LoginNeeded) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(limits.BodyTooLarge)
    async def too_large(request: Request, exc: limits.BodyTooLarge) -> Response:
        response = await refused(request, Refused(413, str(exc)))
        # The rest of the body is still on the wire; the connection cannot be reused.
        response.headers["Connection"] = "close"
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_path(request: Request, exc: RequestValidationError) -> Response:
        # The only validated values are ids in paths; one out of range names nothing.
        return await refused(request, Refused(404, "There is no such page or item."))


class SecurityHeaders:
    """Pure ASGI (not `@app.middleware("http")`): Starlette's BaseHTTPMiddleware reads the
    body in a task group of its own, which would wrap BodyTooLarge in an ExceptionGroup
    that no handler matches."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
                if not cacheable:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


def _set_cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
        path="/",
    )


# --- login and home -------------------------------------------------------------------------


def _add_pages(app: FastAPI) -> None:
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        return await _login_form(request)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        presession = request.cookies.get(LOGIN_COOKIE)
        fresh = await _db(
            request, lambda conn: store.use_login_form(conn, presession, form.get("csrf_token"))
        )
        if not fresh:
            raise Refused(403, "The login form expired; reload the page and try again.")
        username, address = form.get("username", ""), _address(request)
        throttle: limits.LoginThrottle = request.app.state.throttle
        wait = throttle.begin(username, address)
        if wait:
            error = f"Too many failed logins; try again in {wait} seconds."
            response = await _login_form(request, error=error, status=429)
            response.headers["Retry-After"] = str(wait)
            return response

        def work(conn: sqlite3.Connection) -> str | None:
            user_id = store.authenticate(conn, username, form.get("password", ""))
            return None if user_id is None else store.create_session(conn, user_id)

        token = await _db(request, work)
        if token is None:
            log.info("failed login: account %r, address %s", username[:64], address)
            error = "Unknown user name or wrong password."
            return await _login_form(request, error=error, status=401)
        throttle.succeeded(username, address)
        response = RedirectResponse("/", status_code=303)
        _set_cookie(response, request, SESSION_COOKIE, token, store.SESSION_DAYS * 86400)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await _form(request)

        def work(conn: sqlite3.Connection) -> None:
            session = _session(conn, request)
            _check_csrf(session, request, form)
            store.end_session(conn, request.cookies[SESSION_COOKIE])

        await _db(request, work)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        def work(conn: sqlite3.Connection):
            session = _session(conn, request)
            return session, store.own_progress(conn, session.user_id), store.project_progress(conn)

        session, mine, project = await _db(request, work)
        return _render(request, "home.html", session=session, mine=mine, project=project)

    @app.get("/next")
    async def next_item(request: Request) -> Response:
        def work(conn: sqlite3.Connection):
            session = _session(conn, request)
            return session, store.next_item(conn, session.user_id)

        session, item_id = await _db(request, work)
        if item_id is None:
            return _render(
                request,
                "message.html",
                session=session,
                heading="All done",
                text="There is nothing left for you to annotate. Thank you!",
            )
        return RedirectResponse(f"/item/{item_id}", status_code=303)


async def _login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    presession, token = await _db(request, store.open_login_form)
    response = _render(request, "login.html", status, csrf=token, error=error)
    _set_cookie(response, request, LOGIN_COOKIE, presession, store.LOGIN_FORM_SECONDS)
    return response


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- one item -------------------------------------------------------------------------------


def _own_item(conn: sqlite3.Connection, session: store.Session, item_id: int) -> store.Item:
    """The item, if it is assigned to this annotator; otherwise the same 404 as a missing
    item, so nobody learns about items (or answers) that are not theirs."""
    status = store.assignment_status(conn, item_id, session.user_id)
    item = store.get_item(conn, item_id) if status in ("open", "done") else None
    if item is None:
        raise Refused(404, f"Item {item_id} is not one of your items.")
    return item


def _item_context(item: store.Item) -> dict[str, Any]:
    messages = item.context if item.context is not None else flat_to_messages(item.prompt)
    turns = [{"role": m["role"], "html": markdown(m["content"])} for m in messages]
    pair = item.kind in PAIR_TASKS
    responses = [item.response_1, item.response_2] if pair else [item.response]
    return {
        "item": item,
        "turns": turns,
        "responses": [markdown(r or "") for r in responses],
        "feedback": [markdown(f) for f in item.feedback or []],
        "min_feedback": MIN_FEEDBACK,
        "max_text": MAX_TEXT,
        "attributes": ATTRIBUTE_SPECS,
        "scale": SCALE,
        "not_ratable": NOT_RATABLE,
        "choices": PREFERENCE_CHOICES,
        "min_justification": MIN_JUSTIFICATION,
    }


def _item_page(
    request: Request,
    session: store.Session,
    item: store.Item,
    saved: tuple[str, dict] | None,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    state = saved[0] if saved else None
    if values is None:
        values = form_values(item.kind, saved[1]) if saved else {}
        if item.kind == EDIT and not values.get("edited_response"):
            values["edited_response"] = item.response or ""  # an edit starts from the original
    return _render(
        request,
        f"{item.kind}.html",
        status,
        session=session,
        csrf=session.csrf,
        values=values,
        error=error,
        state=state,
        pair_rated=any(k.startswith(("r1_", "r2_")) for k in values),
        guidelines=request.app.state.guidelines_html,
        **_item_context(item),
    )


def _add_item_routes(app: FastAPI) -> None:
    @app.get("/item/{item_id}", response_class=HTMLResponse)
    async def show(request: Request, item_id: ItemId) -> Response:
        def work(conn: sqlite3.Connection):
            session = _session(conn, request)
            item = _own_item(conn, session, item_id)
            return session, item, store.saved_answer(conn, item_id, session.user_id)

        session, item, saved = await _db(request, work)
        return _item_page(request, session, item, saved)

    @app.post("/item/{item_id}/submit")
    async def submit(request: Request, item_id: ItemId) -> Response:
        form = await _form(request)

        def work(conn: sqlite3.Connection):
            session = _session(conn, request)
            _check_csrf(session, request, form)
            item = _own_item(conn, session, item_id)
            try:
                answer = parse_answer(item.kind, form, original=item.response)
            except AnswerError as exc:
                return session, item, str(exc)
            following = _store_call(store.submit, conn, item_id, session.user_id, answer, True)
            return session, item, following

        session, item, result = await _db(request, work)
        if isinstance(result, str):
            if _wants_json(request):
                return JSONResponse({"error": result}, status_code=422)
            return _item_page(request, session, item, None, values=form, error=result, status=422)
        if _wants_json(request):
            return JSONResponse({"saved": True, "item_id": item_id, "next": result})
        return RedirectResponse("/next" if result is None else f"/item/{result}", status_code=303)

    @app.post("/item/{item_id}/skip")
    async def skip(request: Request, item_id: ItemId) -> Response:
        form = await _form(request)

        def work(conn: sqlite3.Connection) -> None:
            session = _session(conn, request)
            _check_csrf(session, request, form)
            _store_call(store.skip, conn, item_id, session.user_id)

        await _db(request, work)
        return RedirectResponse("/next", status_code=303)

    @app.post("/item/{item_id}/draft")
    async def draft(request: Request, item_id: ItemId) -> Response:
        form = await _form(request)

        def work(conn: sqlite3.Connection) -> None:
            session = _session(conn, request)
            _check_csrf(session, request, form)
            item = _own_item(conn, session, item_id)
            try:
                answer = parse_answer(item.kind, form, partial=True, original=item.response)
            except AnswerError as exc:
                raise Refused(422, str(exc)) from None
            _store_call(store.save_draft, conn, item_id, session.user_id, answer)

        await _db(request, work)
        if _wants_json(request):
            return JSONResponse({"saved": True, "at": store.now()})
        return RedirectResponse(f"/item/{item_id}", status_code=303)


def _store_call(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except store.NotAssigned as exc:
        raise Refused(409, str(exc)) from None
    except store.StoreError as exc:
        raise Refused(409, str(exc)) from None


# --- admin ----------------------------------------------------------------------------------


def _admin_data(conn: sqlite3.Connection) -> dict[str, Any]:
    frames = export.tables(conn)
    return {
        "project": store.project_progress(conn),
        "users": store.user_progress(conn),
        "agreement": export.agreement(frames),
        "counts": {name: frame.height for name, frame in frames.items()},
    }


def _add_admin_routes(app: FastAPI) -> None:
    @app.get("/admin", response_class=HTMLResponse)
    async def admin(request: Request, msg: str | None = None, error: str | None = None):
        def work(conn: sqlite3.Connection):
            return _admin(conn, request), _admin_data(conn)

        session, data = await _db(request, work)
        return _render(
            request, "admin.html", session=session, csrf=session.csrf, msg=msg, error=error, **data
        )

    @app.get("/admin/panel", response_class=HTMLResponse)
    async def admin_panel(request: Request):
        def work(conn: sqlite3.Connection):
            return _admin(conn, request), _admin_data(conn)

        session, data = await _db(request, work)
        return _render(request, "admin_panel.html", session=session, **data)

    @app.post("/admin/users")
    async def add_user(request: Request) -> Response:
        form = await _form(request)

        def work(conn: sqlite3.Connection) -> str | None:
            session = _admin(conn, request)
            _check_csrf(session, request, form)
            try:
                store.add_user(
                    conn,
                    form.get("username", ""),
                    form.get("password", ""),
                    form.get("is_admin") == "on",
                )
            except store.StoreError as exc:
                return str(exc)
            return None

        error = await _db(request, work)
        if error:
            return RedirectResponse(f"/admin?error={quote(error)}", status_code=303)
        created = quote(f"Created user {form.get('username', '').strip()}.")
        return RedirectResponse(f"/admin?msg={created}", status_code=303)

    @app.get("/admin/export/{name}.{fmt}")
    async def download(request: Request, name: str, fmt: str) -> Response:
        if name not in export.TABLE_NAMES or fmt not in export.FORMATS:
            names = ", ".join(export.TABLE_NAMES)
            raise Refused(404, f"Exports are {names}, as .jsonl or .parquet.")

        def work(conn: sqlite3.Connection) -> bytes:
            _admin(conn, request)
            frames = export.tables(conn)
            if name not in frames:
                raise Refused(404, f"This project has no items of the task {name!r} exports.")
            return export.to_bytes(frames[name], fmt)

        body = await _db(request, work)
        media = "application/x-ndjson" if fmt == "jsonl" else "application/vnd.apache.parquet"
        return Response(
            body,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
        )
