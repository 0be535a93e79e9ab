"""Issuing, looking up and revoking bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.auth.models import ROLES, ApiToken, ServerSecret

TOKEN_PREFIX = "cit_"


@dataclass(frozen=True)
class Principal:
    """The caller, as established from their token."""

    user_id: str
    role: str
    # Explicit classes from the token; a teacher's roster classes are added when scoping.
    classes: frozenset[str]


class TokenError(ValueError):
    """A token cannot be issued as asked."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    sessions: sessionmaker[Session], role: str, user_id: str, classes: Iterable[str] = ()
) -> str:
    """A new random token for `user_id` with `role`; returned once, only its hash is kept."""
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    user_id = user_id.strip()
    if not user_id or len(user_id) > 128:
        raise TokenError("the user id must be 1 to 128 characters")
    class_list = sorted({c.strip() for c in classes if c.strip()})
    if class_list and role != "teacher":
        raise TokenError("only teacher tokens are limited to classes")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with sessions.begin() as session:
        session.add(
            ApiToken(
                token_sha256=digest(token),
                role=role,
                user_id=user_id,
                classes=class_list,
                created_at=datetime.now(UTC),
                revoked_at=None,
            )
        )
    return token


def lookup(session: Session, token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.user_id, row.role, frozenset(row.classes or ()))


def revoke_user(sessions: sessionmaker[Session], user_id: str) -> int:
    """Revokes every live token of `user_id`; returns how many."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        ).all()
        for row in rows:
            row.revoked_at = now
        return len(rows)


def server_secret(sessions: sessionmaker[Session], name: str) -> bytes:
    """A random key made on first use and then kept, so pseudonyms are stable across exports."""
    with sessions() as session:
        existing = session.get(ServerSecret, name)
        if existing is not None:
            return bytes.fromhex(existing.value)
    try:
        with sessions.begin() as session:
            session.add(ServerSecret(name=name, value=secrets.token_hex(32)))
    except IntegrityError:
        pass  # another worker made it first; use theirs
    with sessions() as session:
        row = session.get(ServerSecret, name)
        assert row is not None
        return bytes.fromhex(row.value)


def pseudonym(key: bytes, value: str) -> str:
    """A stable stand-in for an identifier that cannot be turned back without the key."""
    return "p-" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:20]
