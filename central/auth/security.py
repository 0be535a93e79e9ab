"""The token check every route depends on, the audit log middleware, and the login page.

`authorize` is an app-level dependency (`FastAPI(dependencies=[...])`), so it guards every route
of every router, including routes added later; `central/auth/policy.py` says who may call what.
Pages read the same token from a cookie that `/login` sets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.auth.models import AuditEntry
from central.auth.policy import RESEARCHER, TEACHER, allowed_roles, is_public
from central.auth.tokens import Principal, issue_token, lookup
from central.roster.scope import class_students, taught_classes

logger = logging.getLogger(__name__)

COOKIE = "classink_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_LOGIN_BODY = 4096


@dataclass(frozen=True)
class Access:
    """The caller and what they may see; `classes`/`students` are None when unrestricted."""

    principal: Principal
    classes: frozenset[str] | None
    students: frozenset[str] | None

    @property
    def pseudonymise(self) -> bool:
        return self.principal.role == RESEARCHER

    def sees_student(self, student_id: str | None) -> bool:
        if self.students is None:
            return True
        return student_id is not None and student_id in self.students

    def sees_class(self, class_id: str) -> bool:
        return self.classes is None or class_id in self.classes

    def require_student(self, student_id: str | None) -> None:
        if not self.sees_student(student_id):
            raise HTTPException(403, f"student {student_id!r} is not in a class you teach")

    def require_class(self, class_id: str) -> None:
        if not self.sees_class(class_id):
            raise HTTPException(403, f"class {class_id!r} is not one you teach")


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _token(request: Request) -> tuple[str | None, bool]:
    """The presented token and whether it came from the cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorised("the Authorization header must be 'Bearer <token>'")
        return value.strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin.rstrip("/") == str(request.base_url).rstrip("/")


def authorize(request: Request) -> None:
    """Refuses (401) a missing or unknown token and (403) a role the policy does not allow."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    method = "GET" if request.method == "HEAD" else request.method
    if is_public(method, path):
        return
    token, from_cookie = _token(request)
    if token is None:
        raise _unauthorised("this endpoint needs a token: 'Authorization: Bearer <token>'")
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        principal = lookup(session, token)
        if principal is None:
            raise _unauthorised("the token is unknown or revoked")
        request.state.principal = principal
        if from_cookie and method not in SAFE_METHODS and not _same_origin(request):
            raise HTTPException(403, "cross-site request refused")
        roles = allowed_roles(method, path)
        if principal.role not in roles:
            raise HTTPException(
                403,
                f"role {principal.role!r} may not {method} {path}; "
                f"allowed: {', '.join(sorted(roles))}",
            )
        access = _access(session, principal)
    request.state.access = access
    student_id = request.path_params.get("student_id")
    if student_id is not None:
        access.require_student(student_id)
    class_id = request.path_params.get("class_id")
    if class_id is not None:
        access.require_class(class_id)


def _access(session: Session, principal: Principal) -> Access:
    if principal.role != TEACHER:
        return Access(principal, None, None)
    classes = frozenset(taught_classes(session, principal.user_id, principal.classes))
    return Access(principal, classes, frozenset(class_students(session, classes)))


def current_access(request: Request) -> Access:
    access = getattr(request.state, "access", None)
    if access is None:
        raise HTTPException(401, "not authenticated")
    return access


CurrentAccess = Annotated[Access, Depends(current_access)]


class AuditLog:
    """ASGI middleware: one audit row per request, after the response, with the final status."""

    def __init__(self, app: ASGIApp, skip: Iterable[str] = ("/healthz",)) -> None:
        self.app = app
        self.skip = frozenset(skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            principal: Principal | None = state.get("principal")
            entry = {
                "at": datetime.now(UTC),
                "method": scope["method"],
                "path": scope["path"][:2000],
                "query": scope.get("query_string", b"").decode("latin-1")[:2000],
                "user_id": principal.user_id if principal else None,
                "role": principal.role if principal else None,
                "status": status,
            }
            await anyio.to_thread.run_sync(_write_audit, scope["app"].state.sessions, entry)


def _write_audit(sessions: sessionmaker[Session], entry: dict[str, Any]) -> None:
    try:
        with sessions.begin() as session:
            session.add(AuditEntry(**entry))
    except Exception:
        # The response has gone already; a lost audit row must at least be loud.
        logger.exception("could not write the audit row for %s %s", entry["method"], entry["path"])


login_router = APIRouter(tags=["auth"])

_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>classink: sign in</title>
<style>body{{font-family:sans-serif;margin:3em auto;max-width:28em}}input{{width:100%}}</style>
</head><body><h1>Sign in to classink</h1>{message}
<form method="post" action="{root}/login" id="login">
<label>Access token <input type="password" name="token" autocomplete="off" required></label>
<input type="hidden" name="next" value="{next}">
<p><button type="submit">Sign in</button></p></form>
<script>
// A sign-in link carries the token after '#', which browsers never send to a server or log.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) {{
  history.replaceState(null, "", location.pathname + location.search);
  const form = document.getElementById("login");
  form.token.value = token;
  form.submit();
}}
</script></body></html>"""


def _safe_next(value: str | None) -> str:
    # Only paths on this site, so that a crafted link cannot send a signed-in user elsewhere.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/dashboard"
    return value


def _login_page(request: Request, next_path: str, message: str = "", status: int = 200):
    root = request.scope.get("root_path", "")
    body = _LOGIN_PAGE.format(
        message=f"<p role='alert'>{escape(message)}</p>" if message else "",
        root=escape(root),
        next=escape(_safe_next(next_path)),
    )
    return HTMLResponse(body, status_code=status)


@login_router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, next or "/dashboard")


@login_router.post("/login", response_class=HTMLResponse, responses={303: {}, 401: {}})
async def login(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        raise HTTPException(413, "the sign-in form is too large")
    form = parse_qs(body.decode("utf-8", errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    next_path = _safe_next((form.get("next") or [""])[0])

    def check() -> Principal | None:
        with request.app.state.sessions() as session:
            return lookup(session, token)

    principal = await anyio.to_thread.run_sync(check)
    if principal is None:
        return _login_page(request, next_path, "That token is unknown or revoked.", 401)
    request.state.principal = principal
    root = request.scope.get("root_path", "")
    response = RedirectResponse(root + next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=12 * 3600,
    )
    return response


@login_router.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@login_router.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="classink central API")


@login_router.post("/logout", responses={303: {}})
def logout(request: Request) -> RedirectResponse:
    response = RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def install_security(app: FastAPI) -> None:
    """Audit log, login page, and `app.state.issue_token(role, user, classes=())` for tests and
    tools running in the same process. The app must have been built with `dependencies=
    [Depends(authorize)]` so that every route is guarded."""
    sessions = app.state.sessions
    app.add_middleware(AuditLog)
    app.include_router(login_router)

    def issue(role: str, user_id: str, classes: Iterable[str] = ()) -> str:
        return issue_token(sessions, role, user_id, classes)

    app.state.issue_token = issue
