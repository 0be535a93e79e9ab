"""Tables for access control: issued tokens (hashed), the audit log, and server secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base

ROLES = ("admin", "teacher", "marker", "researcher")


class ApiToken(Base):
    """One issued token; only its SHA-256 is kept, so a leaked table grants nothing."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    # Classes a teacher is given explicitly, besides those the roster says they teach.
    classes: Mapped[list[Any]]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One request: who (if anyone could be identified) did what, and how it ended."""

    __tablename__ = "auth_audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime]
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_auth_audit_user_at", "user_id", "at"),)


class ServerSecret(Base):
    """Random keys central makes once (the pseudonymisation key) and keeps across restarts."""

    __tablename__ = "auth_server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
