"""Which roles may call which routes: one table, read top to bottom, first match wins.

Routes are matched by method and by the start of their path template (`route.path`), so a new
route is admin-only until a rule here opens it to another role.
"""

from __future__ import annotations

ADMIN, TEACHER, MARKER, RESEARCHER = "admin", "teacher", "marker", "researcher"
READ = frozenset({"GET", "HEAD"})
WRITE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Reachable without a token: liveness, the login page, and the gateway claim exchange (which is
# protected by its own one-time token).
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("POST", "/api/fleet/claim"),
    }
)

RULES: tuple[tuple[frozenset[str], str, frozenset[str]], ...] = (
    (READ, "/api/auth/me", frozenset({ADMIN, TEACHER, MARKER, RESEARCHER})),
    (READ, "/openapi.json", frozenset({ADMIN, TEACHER, MARKER, RESEARCHER})),
    (READ, "/docs", frozenset({ADMIN, TEACHER, MARKER, RESEARCHER})),
    # Exports for research are pseudonymised for researchers (central/school/xapi.py).
    # Teachers get their own classes' students, under their names (central/school/api.py).
    (READ, "/api/export/xapi", frozenset({ADMIN, TEACHER, RESEARCHER})),
    (READ, "/api/matching/export", frozenset({ADMIN, RESEARCHER})),
    # Item statistics carry no student identity; a teacher's are over their own students.
    (READ, "/api/exams/{exam_id:path}/items", frozenset({ADMIN, TEACHER, MARKER, RESEARCHER})),
    (READ, "/api/classes/{class_id}/items", frozenset({ADMIN, TEACHER, MARKER, RESEARCHER})),
    # Per class and per student: teachers only within their own classes (central/auth/security.py).
    (READ, "/api/classes/", frozenset({ADMIN, TEACHER, MARKER})),
    (READ, "/api/students/", frozenset({ADMIN, TEACHER, MARKER})),
    (READ, "/api/roster/", frozenset({ADMIN, TEACHER})),
    (READ, "/api/pens", frozenset({ADMIN, TEACHER})),
    (frozenset({"PUT"}), "/api/pens/", frozenset({ADMIN, TEACHER})),
    # The review queue: markers decide; a teacher decides for their own students.
    (READ | WRITE, "/api/review/{event_id}", frozenset({ADMIN, MARKER, TEACHER})),
    # Exams, results and the review list: a teacher's are filtered to the students of their
    # classes (central/auth/security.py `Access.students`); researchers get no per-student rows.
    (READ, "/api/review", frozenset({ADMIN, MARKER, TEACHER})),
    (READ, "/review", frozenset({ADMIN, MARKER, TEACHER})),
    (READ, "/api/exams", frozenset({ADMIN, MARKER, TEACHER})),
    (READ, "/exams/", frozenset({ADMIN, MARKER, TEACHER})),
    (READ, "/dashboard/fleet", frozenset({ADMIN})),
    (READ, "/dashboard/exams/", frozenset({ADMIN, MARKER, TEACHER})),
    (READ | WRITE, "/dashboard/review", frozenset({ADMIN, MARKER, TEACHER})),
    (READ, "/dashboard/classes/", frozenset({ADMIN, MARKER, TEACHER})),
    (READ, "/dashboard", frozenset({ADMIN, TEACHER, MARKER, RESEARCHER})),
    # Mastery of one student: teachers within their classes.
    (READ, "/api/tracing/students/", frozenset({ADMIN, TEACHER})),
    (READ, "/tracing/students/", frozenset({ADMIN, TEACHER})),
    (READ, "/api/tracing/skills", frozenset({ADMIN, TEACHER, RESEARCHER})),
    (READ, "/api/tracing/items", frozenset({ADMIN, TEACHER, RESEARCHER})),
    (READ, "/api/tracing/resources", frozenset({ADMIN, TEACHER, RESEARCHER})),
)


# Rules for one path exactly, where a prefix would open every route below it.
EXACT_RULES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): frozenset({ADMIN, MARKER, TEACHER}),  # the exam list, filtered for a teacher
}


def allowed_roles(method: str, path: str) -> frozenset[str]:
    """Admins may call everything; the rules open routes to other roles."""
    exact = EXACT_RULES.get(("GET" if method == "HEAD" else method, path))
    if exact is not None:
        return exact | {ADMIN}
    for methods, prefix, roles in RULES:
        if method in methods and (path == prefix or path.startswith(prefix)):
            return roles | {ADMIN}
    return frozenset({ADMIN})


def is_public(method: str, path: str) -> bool:
    return (method, path) in PUBLIC
